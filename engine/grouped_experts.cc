#include "engine/grouped_experts.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/elementwise/elementwise.h"

namespace yard::engine {

void GroupedSwiGlu::Run(absl::Span<const SwiGluViews* const> experts,
                        absl::Span<const float* const> rows,
                        absl::Span<const int32_t> expert_of_row,
                        absl::Span<const uint8_t> from_prefill, int64_t hidden, float* out) {
  using kernels::cpu::ActivationPrecision;
  YARD_CHECK(rows.size() == expert_of_row.size(), "GroupedSwiGlu: rows and experts differ");
  YARD_CHECK(from_prefill.empty() || from_prefill.size() == rows.size(),
             "GroupedSwiGlu: rows and prefill flags differ");
  const int64_t total = static_cast<int64_t>(rows.size());
  if (total == 0) return;
  // The precision of the prefill rows follows their distinct tokens, as a dense
  // matmul's follows its prefill rows: a prefill-sized call takes BF16 activations for
  // them in every expert, however few rows each one gets. Decode rows keep FP32 (see
  // GemmOptionsFor); an explicit precision applies to every row.
  const bool bf16_allowed = gemm_.precision == ActivationPrecision::kAuto;
  distinct_.clear();
  if (bf16_allowed && !from_prefill.empty()) {
    for (int64_t i = 0; i < total; ++i) {
      if (from_prefill[i]) distinct_.push_back(rows[i]);
    }
    std::sort(distinct_.begin(), distinct_.end());
  }
  const int64_t prefill_tokens =
      std::unique(distinct_.begin(), distinct_.end()) - distinct_.begin();
  const bool split = bf16_allowed && kernels::cpu::ResolvePrecision(gemm_, prefill_tokens) ==
                                         ActivationPrecision::kBf16;
  // The options of part 0 (the BF16 prefill rows of a split call) and of part 1 (every
  // other row).
  kernels::cpu::GemmOptions part_gemm[2] = {gemm_, gemm_};
  part_gemm[0].precision = ActivationPrecision::kBf16;
  if (bf16_allowed) part_gemm[1].precision = ActivationPrecision::kFp32;

  rows_of_expert_.resize(experts.size());
  for (auto& r : rows_of_expert_) r.clear();
  bf16_rows_of_expert_.assign(experts.size(), 0);
  int64_t inner = 0;
  for (int64_t i = 0; i < total; ++i) {
    const int32_t e = expert_of_row[i];
    YARD_CHECK(e >= 0 && static_cast<size_t>(e) < experts.size() && experts[e] != nullptr,
               "GroupedSwiGlu: row names no expert");
    rows_of_expert_[e].push_back(i);
    inner = experts[e]->gate.n;
  }
  if (split) {
    // Part 0's rows (the prefill rows) first in each expert's list, then part 1's.
    for (size_t e = 0; e < experts.size(); ++e) {
      std::vector<int64_t>& mine = rows_of_expert_[e];
      bf16_rows_of_expert_[e] =
          std::stable_partition(mine.begin(), mine.end(),
                                [&](int64_t i) { return from_prefill[i] != 0; }) -
          mine.begin();
    }
  }
  // Rows grouped by expert, expert after expert: [total, hidden] gathered inputs.
  gathered_.resize(total * hidden);
  gate_.resize(total * inner);
  up_.resize(total * inner);
  down_.resize(total * hidden);
  std::vector<kernels::cpu::GemmProblem> gate_up[2], down[2];  // by part
  int64_t row = 0;
  for (size_t e = 0; e < experts.size(); ++e) {
    const std::vector<int64_t>& mine = rows_of_expert_[e];
    const SwiGluViews* ffn = experts[e];
    for (int part = 0; part < 2; ++part) {
      const int64_t m = part == 0 ? bf16_rows_of_expert_[e]
                                  : static_cast<int64_t>(mine.size()) - bf16_rows_of_expert_[e];
      if (m == 0) continue;
      const int64_t first = part == 0 ? 0 : bf16_rows_of_expert_[e];
      for (int64_t i = 0; i < m; ++i) {
        std::memcpy(&gathered_[(row + i) * hidden], rows[mine[first + i]],
                    hidden * sizeof(float));
      }
      const float* x = &gathered_[row * hidden];
      gate_up[part].push_back({x, m, hidden, ffn->gate, &gate_[row * inner], inner});
      gate_up[part].push_back({x, m, hidden, ffn->up, &up_[row * inner], inner});
      down[part].push_back({&gate_[row * inner], m, inner, ffn->down, &down_[row * hidden], hidden});
      row += m;
    }
  }
  for (int part = 0; part < 2; ++part) kernels::cpu::GemmBatch(gate_up[part], part_gemm[part]);
  kernels::cpu::SiluMul(gate_.data(), inner, up_.data(), inner, total, inner, gate_.data(), inner,
                        gemm_.pool);
  for (int part = 0; part < 2; ++part) kernels::cpu::GemmBatch(down[part], part_gemm[part]);
  row = 0;
  for (const std::vector<int64_t>& mine : rows_of_expert_) {
    for (int64_t i : mine) {
      std::memcpy(out + i * hidden, &down_[row * hidden], hidden * sizeof(float));
      ++row;
    }
  }
}

}  // namespace yard::engine
