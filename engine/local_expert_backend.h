// Routed experts computed in this process, grouped by expert: each active expert's
// weights are read once per call for all the tokens routed to it, and all active
// experts' matmuls share two passes over the thread pool (GemmBatch).
#ifndef SWITCHYARD_ENGINE_LOCAL_EXPERT_BACKEND_H_
#define SWITCHYARD_ENGINE_LOCAL_EXPERT_BACKEND_H_

#include <vector>

#include "engine/expert_backend.h"
#include "engine/model_weights.h"
#include "kernels/cpu/gemm.h"

namespace yard::engine {

// Not thread-safe (scratch buffers); used from the engine's thread. `views` must
// outlive it. gemm: how the expert matmuls take activations (kFp32 is batch-invariant).
class LocalExpertBackend : public ExpertBackendInterface {
 public:
  LocalExpertBackend(const ModelViews& views, kernels::cpu::GemmOptions gemm)
      : views_(views), gemm_(gemm) {}

  absl::Status Compute(const ExpertRequest& request, float* out) override;

 private:
  const ModelViews& views_;
  const kernels::cpu::GemmOptions gemm_;
  // Scratch, grown as needed: rows gathered expert after expert, and intermediates.
  std::vector<float> gathered_, gate_, up_, down_;
  std::vector<std::vector<int64_t>> rows_of_expert_;  // flat (t·top_k + j) indices
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_LOCAL_EXPERT_BACKEND_H_
