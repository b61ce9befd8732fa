#include "engine/local_expert_backend.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/elementwise/elementwise.h"

namespace yard::engine {

absl::Status LocalExpertBackend::Compute(const ExpertRequest& r, float* out) {
  if (r.layer < 0 || r.layer >= static_cast<int64_t>(views_.layers.size()) ||
      !views_.layers[r.layer].moe) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", r.layer, " has no experts"));
  }
  const MoeViews& moe = *views_.layers[r.layer].moe;
  const int64_t num_experts = static_cast<int64_t>(moe.experts.size());
  rows_of_expert_.resize(num_experts);
  for (auto& rows : rows_of_expert_) rows.clear();
  for (int64_t i = 0; i < r.tokens * r.top_k; ++i) {
    const int32_t e = r.expert_ids[i];
    if (e < 0 || e >= num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert id ", e, " out of range"));
    }
    rows_of_expert_[e].push_back(i);
  }
  // Rows grouped by expert, expert after expert: [total, hidden] gathered inputs.
  const int64_t total = r.tokens * r.top_k;
  const int64_t inner = moe.experts.front().gate.n;
  gathered_.resize(total * r.hidden);
  gate_.resize(total * inner);
  up_.resize(total * inner);
  down_.resize(total * r.hidden);
  std::vector<kernels::cpu::GemmProblem> gate_up, down;
  int64_t row = 0;
  for (int64_t e = 0; e < num_experts; ++e) {
    const std::vector<int64_t>& rows = rows_of_expert_[e];
    if (rows.empty()) continue;
    const int64_t m = static_cast<int64_t>(rows.size());
    for (int64_t i = 0; i < m; ++i) {
      const int64_t token = rows[i] / r.top_k;
      std::memcpy(&gathered_[(row + i) * r.hidden], r.x + token * r.hidden,
                  r.hidden * sizeof(float));
    }
    const SwiGluViews& ffn = moe.experts[e];
    const float* x = &gathered_[row * r.hidden];
    gate_up.push_back({x, m, r.hidden, ffn.gate, &gate_[row * inner], inner});
    gate_up.push_back({x, m, r.hidden, ffn.up, &up_[row * inner], inner});
    down.push_back({&gate_[row * inner], m, inner, ffn.down, &down_[row * r.hidden], r.hidden});
    row += m;
  }
  // Two passes over the pool for the whole layer: every active expert's gate and up
  // weights stream together, then every down weight.
  kernels::cpu::GemmBatch(gate_up, gemm_);
  kernels::cpu::SiluMul(gate_.data(), inner, up_.data(), inner, total, inner, gate_.data(), inner,
                        gemm_.pool);
  kernels::cpu::GemmBatch(down, gemm_);
  row = 0;
  for (int64_t e = 0; e < num_experts; ++e) {
    for (int64_t flat : rows_of_expert_[e]) {
      std::memcpy(out + flat * r.hidden, &down_[row * r.hidden], r.hidden * sizeof(float));
      ++row;
    }
  }
  return absl::OkStatus();
}

}  // namespace yard::engine
