// Where the MoE layer's routed experts run: in this process (LocalExpertBackend) or,
// in the distributed runtime, on expert workers over the data plane.
#ifndef SWITCHYARD_ENGINE_EXPERT_BACKEND_H_
#define SWITCHYARD_ENGINE_EXPERT_BACKEND_H_

#include <cstdint>

#include "absl/status/status.h"

namespace yard::engine {

// One MoE layer's routed-expert work for a batch of tokens.
struct ExpertRequest {
  int64_t layer = 0;
  int64_t tokens = 0;
  int64_t hidden = 0;
  int64_t top_k = 0;
  // x: [tokens, hidden] fp32, row-major: the post-attention-norm activations.
  const float* x = nullptr;
  // expert_ids: [tokens, top_k] int32 logical expert ids, in top-k order.
  const int32_t* expert_ids = nullptr;
  // Which of the caller's micro-batches (0 or 1) this is: two may be in flight at once,
  // one each (DESIGN.md: ping-pong).
  int micro_batch = 0;
  // Tokens [0, prefill_tokens) of x belong to prefill chunks: those rows may take BF16
  // activations (GroupedSwiGlu); the decode tokens after them keep FP32.
  int64_t prefill_tokens = 0;
};

inline constexpr int kMaxMicroBatches = 2;

// Computes routed experts in two halves, so that the caller can work while a remote
// backend's dispatch is on the wire:
//   Start(request for micro-batch m) → (caller works) → Finish(m, out).
// Implementations are used from the engine's thread only. At most one request per
// micro-batch is in flight; the request's x and expert_ids must stay valid until its
// Finish. A caller that started a request must finish it, even after an error.
class ExpertBackendInterface {
 public:
  virtual ~ExpertBackendInterface() = default;

  // Begins the request (a remote backend sends it; a local one may only record it).
  // InvalidArgument for a layer without experts or an expert id out of range.
  virtual absl::Status Start(const ExpertRequest& request) = 0;

  // Waits for micro-batch `micro_batch`'s started request. out: [tokens, top_k, hidden]
  // fp32, row-major:
  // out[t, j] = expert expert_ids[t, j] applied to x[t], UNWEIGHTED (DESIGN.md: the
  // caller applies the routing weights and sums in top-k order, so the result does
  // not depend on where or how the experts were batched).
  virtual absl::Status Finish(int micro_batch, float* out) = 0;

  absl::Status Compute(const ExpertRequest& request, float* out) {
    if (absl::Status s = Start(request); !s.ok()) return s;
    return Finish(request.micro_batch, out);
  }
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_EXPERT_BACKEND_H_
