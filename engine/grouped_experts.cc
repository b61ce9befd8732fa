#include "engine/grouped_experts.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/elementwise/elementwise.h"

namespace yard::engine {

void GroupedSwiGlu::Run(absl::Span<const SwiGluViews* const> experts,
                        absl::Span<const float* const> rows,
                        absl::Span<const int32_t> expert_of_row, int64_t hidden, float* out) {
  YARD_CHECK(rows.size() == expert_of_row.size(), "GroupedSwiGlu: rows and experts differ");
  const int64_t total = static_cast<int64_t>(rows.size());
  if (total == 0) return;
  rows_of_expert_.resize(experts.size());
  for (auto& r : rows_of_expert_) r.clear();
  int64_t inner = 0;
  for (int64_t i = 0; i < total; ++i) {
    const int32_t e = expert_of_row[i];
    YARD_CHECK(e >= 0 && static_cast<size_t>(e) < experts.size() && experts[e] != nullptr,
               "GroupedSwiGlu: row names no expert");
    rows_of_expert_[e].push_back(i);
    inner = experts[e]->gate.n;
  }
  // Rows grouped by expert, expert after expert: [total, hidden] gathered inputs.
  gathered_.resize(total * hidden);
  gate_.resize(total * inner);
  up_.resize(total * inner);
  down_.resize(total * hidden);
  std::vector<kernels::cpu::GemmProblem> gate_up, down;
  int64_t row = 0;
  for (size_t e = 0; e < experts.size(); ++e) {
    const std::vector<int64_t>& mine = rows_of_expert_[e];
    if (mine.empty()) continue;
    const int64_t m = static_cast<int64_t>(mine.size());
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(&gathered_[(row + i) * hidden], rows[mine[i]], hidden * sizeof(float));
    }
    const SwiGluViews& ffn = *experts[e];
    const float* x = &gathered_[row * hidden];
    gate_up.push_back({x, m, hidden, ffn.gate, &gate_[row * inner], inner});
    gate_up.push_back({x, m, hidden, ffn.up, &up_[row * inner], inner});
    down.push_back({&gate_[row * inner], m, inner, ffn.down, &down_[row * hidden], hidden});
    row += m;
  }
  // The call's precision follows its distinct tokens, as a dense matmul's follows its
  // rows: a prefill-sized call takes BF16 activations for every expert, however few
  // rows each one gets; a decode-sized one keeps FP32 (see GemmOptionsFor).
  kernels::cpu::GemmOptions gemm = gemm_;
  if (gemm.precision == kernels::cpu::ActivationPrecision::kAuto) {
    distinct_.assign(rows.begin(), rows.end());
    std::sort(distinct_.begin(), distinct_.end());
    const int64_t tokens = std::unique(distinct_.begin(), distinct_.end()) - distinct_.begin();
    gemm.precision = kernels::cpu::ResolvePrecision(gemm, tokens);
  }
  kernels::cpu::GemmBatch(gate_up, gemm);
  kernels::cpu::SiluMul(gate_.data(), inner, up_.data(), inner, total, inner, gate_.data(), inner,
                        gemm.pool);
  kernels::cpu::GemmBatch(down, gemm);
  row = 0;
  for (const std::vector<int64_t>& mine : rows_of_expert_) {
    for (int64_t i : mine) {
      std::memcpy(out + i * hidden, &down_[row * hidden], hidden * sizeof(float));
      ++row;
    }
  }
}

}  // namespace yard::engine
