// The fast engine's view of a checkpoint: per layer, the kernels' WeightViews over the
// memory-mapped tensors (BF16, or FP8 e4m3 with 128×128 block scales) — no copy of any
// matrix — plus FP32 copies of the small vectors (norms, router bias).
#ifndef SWITCHYARD_ENGINE_MODEL_WEIGHTS_H_
#define SWITCHYARD_ENGINE_MODEL_WEIGHTS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/weight_view.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"

namespace yard::engine {

// A SwiGLU FFN: down(silu(gate·x) ⊙ up·x).
struct SwiGluViews {
  kernels::cpu::WeightView gate;  // [inner, hidden]
  kernels::cpu::WeightView up;    // [inner, hidden]
  kernels::cpu::WeightView down;  // [hidden, inner]
};

struct AttentionViews {
  std::optional<kernels::cpu::WeightView> q_a;  // [q_lora, hidden]; absent without q_lora
  std::vector<float> q_a_norm;                  // [q_lora] fp32
  kernels::cpu::WeightView q;     // q_b_proj [heads·(nope+rope), q_lora] or q_proj
  kernels::cpu::WeightView kv_a;  // [kv_lora + rope, hidden]
  std::vector<float> kv_a_norm;   // [kv_lora] fp32
  kernels::cpu::WeightView kv_b;  // [heads·(nope+v), kv_lora]
  kernels::cpu::WeightView o;     // [hidden, heads·v]
};

struct MoeViews {
  kernels::cpu::WeightView router;  // mlp.gate.weight [n_experts, hidden]
  std::vector<float> bias;          // e_score_correction_bias [n_experts]; noaux_tc only
  std::vector<SwiGluViews> experts;  // [n_routed_experts]
  std::optional<SwiGluViews> shared;
};

struct LayerViews {
  std::vector<float> input_norm;      // [hidden] fp32
  std::vector<float> post_attn_norm;  // [hidden] fp32
  AttentionViews attention;
  std::optional<SwiGluViews> dense;  // layers before first_k_dense_replace (etc.)
  std::optional<MoeViews> moe;
};

// Borrowed from a Checkpoint, which must outlive this object.
struct ModelViews {
  const uint16_t* embedding = nullptr;  // [vocab, hidden] bf16 bits
  std::vector<LayerViews> layers;       // [num_hidden_layers]; MTP layers are not loaded
  std::vector<float> final_norm;        // [hidden] fp32
  kernels::cpu::WeightView lm_head;     // [vocab, hidden] (the embedding when tied)
};

// Binds every tensor the fast engine reads. InvalidArgument, naming the tensor, for a
// dtype the kernels do not take (linear weights must be BF16 or FP8 with 128×128
// blocks; the embedding BF16) — such checkpoints still run on the reference engine.
// The checkpoint should have passed Validate(config).
absl::StatusOr<ModelViews> BindModelViews(const model::ModelConfig& config,
                                          const model::Checkpoint& checkpoint);

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_MODEL_WEIGHTS_H_
