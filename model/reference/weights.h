// The FP32 weights of the reference forward, grouped the way the forward uses them,
// and their loading from a WeightSourceInterface with shape checks against
// model/weight_layout.h.
#ifndef SWITCHYARD_MODEL_REFERENCE_WEIGHTS_H_
#define SWITCHYARD_MODEL_REFERENCE_WEIGHTS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/reference/ops.h"
#include "model/weight_source.h"

namespace yard::model::reference {

// One MLA block (`self_attn.`). Shapes with H = num_attention_heads.
struct AttentionWeights {
  // With q_lora_rank: q = q_b·RMSNorm(q_a·x); without: q = q_proj·x.
  std::optional<Matrix> q_a;          // [q_lora_rank, hidden]
  std::vector<float> q_a_norm;        // [q_lora_rank]
  std::optional<Matrix> q_b;          // [H * qk_head_dim, q_lora_rank]
  std::optional<Matrix> q_proj;       // [H * qk_head_dim, hidden]
  Matrix kv_a;                        // [kv_lora_rank + qk_rope_head_dim, hidden]
  std::vector<float> kv_a_norm;       // [kv_lora_rank]
  // Per head h, rows [h*(nope+v), h*(nope+v)+nope) are W_uk and the next v_head_dim
  // rows are W_uv.
  Matrix kv_b;                        // [H * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  Matrix o;                           // [hidden, H * v_head_dim]
};

// A MoE FFN (`mlp.` of a layer where config.IsMoeLayer).
struct MoeWeights {
  Matrix gate;                                  // [n_routed_experts, hidden]
  std::vector<float> e_score_correction_bias;   // [n_routed_experts]; noaux_tc only
  std::vector<SwiGluWeights> experts;           // n_routed_experts, inner moe_intermediate
  std::optional<SwiGluWeights> shared;          // inner n_shared * moe_intermediate
};

// One decoder layer (also the block inside an MTP module).
struct LayerWeights {
  std::vector<float> input_norm;           // [hidden]
  AttentionWeights attn;
  std::vector<float> post_attention_norm;  // [hidden]
  std::optional<SwiGluWeights> dense;      // set iff !config.IsMoeLayer(layer)
  std::optional<MoeWeights> moe;           // set iff config.IsMoeLayer(layer)
};

// MTP module k (layer index num_hidden_layers + k).
struct MtpWeights {
  Matrix embed;                   // [vocab, hidden]: its own copy, as released
  std::vector<float> enorm;       // [hidden]
  std::vector<float> hnorm;       // [hidden]
  Matrix eh_proj;                 // [hidden, 2 * hidden]: input [enorm(emb) | hnorm(h)]
  LayerWeights block;
  std::vector<float> head_norm;   // [hidden]: shared_head.norm
  Matrix head;                    // [vocab, hidden]: shared_head.head
};

struct ModelWeights {
  Matrix embed;                   // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  // [vocab, hidden]; unset when tie_word_embeddings (then `embed` is the head).
  std::optional<Matrix> lm_head;
  std::optional<MtpWeights> mtp;  // only MTP module 0; set iff num_nextn_predict_layers > 0
};

// Reads every weight the reference forward needs, as FP32. Errors: the source's own
// (NotFound for a missing tensor), or InvalidArgument naming the tensor when its shape
// differs from model/weight_layout.h, e.g. "tensor model.norm.weight: shape [8],
// expected [192]".
absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config,
                                              const WeightSourceInterface& source);

}  // namespace yard::model::reference

#endif  // SWITCHYARD_MODEL_REFERENCE_WEIGHTS_H_
