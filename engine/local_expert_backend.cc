#include "engine/local_expert_backend.h"

#include "absl/strings/str_cat.h"

namespace yard::engine {

absl::Status LocalExpertBackend::Start(const ExpertRequest& r) {
  if (r.micro_batch < 0 || r.micro_batch >= kMaxMicroBatches) {
    return absl::InvalidArgumentError(absl::StrCat("micro-batch ", r.micro_batch));
  }
  if (started_[r.micro_batch]) {
    return absl::FailedPreconditionError("Start while the micro-batch is in flight");
  }
  if (r.layer < 0 || r.layer >= static_cast<int64_t>(views_.layers.size()) ||
      !views_.layers[r.layer].moe) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", r.layer, " has no experts"));
  }
  const int64_t num_experts = static_cast<int64_t>(views_.layers[r.layer].moe->experts.size());
  for (int64_t i = 0; i < r.tokens * r.top_k; ++i) {
    if (r.expert_ids[i] < 0 || r.expert_ids[i] >= num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("expert id ", r.expert_ids[i], " out of range"));
    }
  }
  pending_[r.micro_batch] = r;
  started_[r.micro_batch] = true;
  return absl::OkStatus();
}

absl::Status LocalExpertBackend::Finish(int micro_batch, float* out) {
  if (micro_batch < 0 || micro_batch >= kMaxMicroBatches || !started_[micro_batch]) {
    return absl::FailedPreconditionError("Finish without Start");
  }
  started_[micro_batch] = false;
  const ExpertRequest& r = pending_[micro_batch];
  const MoeViews& moe = *views_.layers[r.layer].moe;
  candidates_.clear();
  for (const SwiGluViews& e : moe.experts) candidates_.push_back(&e);
  const int64_t total = r.tokens * r.top_k;
  rows_.resize(total);
  from_prefill_.resize(total);
  for (int64_t i = 0; i < total; ++i) {
    rows_[i] = r.x + (i / r.top_k) * r.hidden;
    from_prefill_[i] = i / r.top_k < r.prefill_tokens;
  }
  experts_.Run(candidates_, rows_, absl::MakeConstSpan(r.expert_ids, total), from_prefill_,
               r.hidden, out);
  return absl::OkStatus();
}

}  // namespace yard::engine
