// The fast CPU model runner: a batch of sequences' new tokens through every layer of
// a DeepSeek-V2/V3 model, on kernels/cpu, reading the weights straight from the
// memory-mapped checkpoint and keeping attention state in the paged latent cache.
//
// Per layer, for all T new tokens of the batch at once:
//   h = RMSNorm(x); q = W_q·h (via q_lora when present); [c_kv | k_rope] = W_kva·h;
//   c_kv = RMSNorm(c_kv); RoPE(q_rope, k_rope); cache rows ← bf16([c_kv | k_rope]);
//   q' = W_ukᵀ·q_nope (absorbed); o = MLA(q', q_rope; cache); v = W_uv·o; x += W_o·v;
//   h = RMSNorm(x); x += dense FFN(h), or Σ_j w_j·expert_j(h) (top-k order) + shared(h).
// The routed experts go through an ExpertBackendInterface (local here, remote in the
// attention worker). MTP layers are not run.
#ifndef SWITCHYARD_ENGINE_FAST_MODEL_H_
#define SWITCHYARD_ENGINE_FAST_MODEL_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/batch_forward.h"
#include "engine/dispatch_precision.h"
#include "engine/expert_backend.h"
#include "engine/kv_cache.h"
#include "engine/model_weights.h"
#include "kernels/cpu/elementwise/rope.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/router/router.h"
#include "kernels/cpu/thread_pool.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"

namespace yard::engine {

struct FastModelOptions {
  // Every activation in FP32 through the matmuls and attention, so a sequence's logits
  // are bitwise the same whatever batch it shares and whatever the thread count (for
  // a given ISA). Off: the rows of prefill chunks (128 tokens and more in a step) round
  // activations to BF16 for the BF16 dot-product instructions — about twice the
  // FLOP/s, small numeric drift; decode rows keep FP32 even beside them.
  bool deterministic = false;
  // Longest sequence the RoPE table covers (positions [0, max_context)).
  int64_t max_context = 4096;
  // Threads for the kernels; nullptr means kernels::cpu::DefaultThreadPool().
  kernels::cpu::ThreadPool* pool = nullptr;
  // The routed experts see their inputs rounded as a dispatch in this precision would
  // carry them (the shared experts and the router see FP32). A remote expert backend
  // rounds on the wire itself; set this on a single process to reproduce a cluster's
  // numerics exactly.
  DispatchPrecision dispatch_precision = DispatchPrecision::kFp32;
  // 2: split each batch of two or more sequences into two micro-batches that take
  // turns per MoE layer (DESIGN.md ping-pong): one's attention runs while the other's
  // routed experts are away. For a remote expert backend; in-process experts gain
  // nothing. With `deterministic`, the logits are the same bits either way.
  int micro_batches = 1;
};

// The matmul options the fast model uses for these options; an expert backend
// outside the model (the bench's, an expert worker's) takes the same so that its
// numerics and speed match the in-process experts'.
kernels::cpu::GemmOptions GemmOptionsFor(const FastModelOptions& options);

// The lm_head's options, given GemmOptionsFor's: it may round activations to BF16 from
// fewer rows on (it feeds only the logits).
kernels::cpu::GemmOptions LmHeadGemmOptions(const kernels::cpu::GemmOptions& gemm);

// Not thread-safe: one Forward at a time, from the engine's thread (the kernels fan
// out to the pool). Borrows the checkpoint and the cache, which must outlive it.
class FastModel : public BatchForwardInterface {
 public:
  // Binds the checkpoint's tensors (it should have passed Validate(config)) and checks
  // that the cache has one layer per decoder layer with the model's latent width.
  // experts: nullptr runs the routed experts in-process (LocalExpertBackend);
  // otherwise borrowed, must outlive the model.
  static absl::StatusOr<std::unique_ptr<FastModel>> Create(
      const model::ModelConfig& config, const model::Checkpoint& checkpoint,
      PagedLatentCache& cache, const FastModelOptions& options,
      ExpertBackendInterface* experts = nullptr);

  absl::StatusOr<ForwardResult> Forward(const ForwardBatch& batch) override;

  const model::ModelConfig& config() const { return config_; }

 private:
  FastModel(const model::ModelConfig& config, PagedLatentCache& cache,
            const FastModelOptions& options, ModelViews views, kernels::cpu::RopeTable rope);

  // A part of the batch that goes through the layers as a unit, and the state it
  // keeps while its routed experts are away.
  struct MicroBatch {
    int index = 0;            // 0 or 1: the expert backend's micro-batch
    ForwardBatch batch;       // its sequences
    int64_t first_token = 0;  // its rows of the batch's activations
    int64_t tokens = 0;
    // Its leading rows that belong to prefill chunks (the sequences of more than one
    // token come first), and its matmul options: only those rows may take BF16.
    int64_t prefill_tokens = 0;
    kernels::cpu::GemmOptions gemm;
    bool experts_started = false;  // its routed experts for layer experts_layer are away
    int64_t experts_layer = 0;
    std::vector<float> h, delta, expert_in, expert_out, route_weights;
    std::vector<int32_t> route_ids;
  };

  // Splits the sequences (in the order given) into micro_batches_ (1 or 2)
  // micro-batches of whole sequences, balanced by tokens.
  int SplitBatch(absl::Span<const ForwardSequence* const> sequences);
  // A layer up to its routed experts: attention, then the dense FFN (done: x updated)
  // or the router and the experts' Start. x: the micro-batch's rows [tokens, hidden].
  absl::Status LayerBegin(int64_t index, MicroBatch& mb, float* x);
  // The rest of a MoE layer: shared experts, the routed experts' Finish, combine.
  // The micro-batch's next LayerBegin comes after it; the other's may come between.
  absl::Status LayerEnd(int64_t index, MicroBatch& mb, float* x);
  void Attention(int64_t index, const MicroBatch& mb, const int64_t* positions, const float* h,
                 float* out);
  void Ffn(const SwiGluViews& ffn, const float* h, int64_t tokens,
           const kernels::cpu::GemmOptions& gemm, float* out);

  model::ModelConfig config_;
  PagedLatentCache& cache_;
  FastModelOptions options_;
  ModelViews views_;
  kernels::cpu::RopeTable rope_;
  kernels::cpu::RouterParams router_;
  kernels::cpu::GemmOptions gemm_;
  std::unique_ptr<ExpertBackendInterface> own_experts_;
  ExpertBackendInterface* experts_ = nullptr;

  // Per-call scratch, sized for the batch: the sequences in the order their rows take
  // (prefill chunks first), token positions and activations.
  std::vector<const ForwardSequence*> ordered_;
  std::vector<int64_t> last_row_;
  std::vector<int64_t> positions_;
  std::vector<float> x_, last_, q_a_, q_, kv_a_, q_absorbed_, q_rope_, o_latent_, values_;
  std::vector<float> ffn_gate_, ffn_up_, router_logits_;
  MicroBatch micro_[kMaxMicroBatches];
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_FAST_MODEL_H_
