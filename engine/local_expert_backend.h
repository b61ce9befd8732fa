// Routed experts computed in this process with GroupedSwiGlu (each active expert's
// weights read once per call for all the tokens routed to it).
#ifndef SWITCHYARD_ENGINE_LOCAL_EXPERT_BACKEND_H_
#define SWITCHYARD_ENGINE_LOCAL_EXPERT_BACKEND_H_

#include <vector>

#include "engine/expert_backend.h"
#include "engine/grouped_experts.h"
#include "engine/model_weights.h"
#include "kernels/cpu/gemm.h"

namespace yard::engine {

// Not thread-safe (scratch buffers); used from the engine's thread. `views` must
// outlive it. gemm: how the expert matmuls take activations (kFp32 is batch-invariant).
// The work runs in Finish; Start only validates and records the request.
class LocalExpertBackend : public ExpertBackendInterface {
 public:
  LocalExpertBackend(const ModelViews& views, kernels::cpu::GemmOptions gemm)
      : views_(views), experts_(gemm) {}

  absl::Status Start(const ExpertRequest& request) override;
  absl::Status Finish(int micro_batch, float* out) override;

 private:
  const ModelViews& views_;
  GroupedSwiGlu experts_;
  ExpertRequest pending_[kMaxMicroBatches];
  bool started_[kMaxMicroBatches] = {};
  std::vector<const SwiGluViews*> candidates_;
  std::vector<const float*> rows_;
  std::vector<uint8_t> from_prefill_;  // per row: its token is part of a prefill chunk
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_LOCAL_EXPERT_BACKEND_H_
