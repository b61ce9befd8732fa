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
  for (int64_t e = 0; e < num_experts; ++e) {
    const std::vector<int64_t>& rows = rows_of_expert_[e];
    if (rows.empty()) continue;
    const SwiGluViews& ffn = moe.experts[e];
    const int64_t m = static_cast<int64_t>(rows.size());
    const int64_t inner = ffn.gate.n;
    gathered_.resize(m * r.hidden);
    gate_.resize(m * inner);
    up_.resize(m * inner);
    down_.resize(m * r.hidden);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t token = rows[i] / r.top_k;
      std::memcpy(&gathered_[i * r.hidden], r.x + token * r.hidden, r.hidden * sizeof(float));
    }
    kernels::cpu::Gemm(gathered_.data(), m, ffn.gate, gate_.data(), gemm_);
    kernels::cpu::Gemm(gathered_.data(), m, ffn.up, up_.data(), gemm_);
    kernels::cpu::SiluMul(gate_.data(), inner, up_.data(), inner, m, inner, gate_.data(), inner,
                          gemm_.pool);
    kernels::cpu::Gemm(gate_.data(), m, ffn.down, down_.data(), gemm_);
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(out + rows[i] * r.hidden, &down_[i * r.hidden], r.hidden * sizeof(float));
    }
  }
  return absl::OkStatus();
}

}  // namespace yard::engine
