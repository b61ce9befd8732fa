// The model hyper-parameters that change the math, parsed from a Hugging Face
// `config.json` of `model_type` deepseek_v2 or deepseek_v3.
#ifndef SWITCHYARD_MODEL_CONFIG_H_
#define SWITCHYARD_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace yard::model {

enum class ModelType { kDeepseekV2, kDeepseekV3 };

// How `mlp.gate` picks experts (DESIGN.md, "Routing").
enum class TopkMethod {
  kGreedy,              // plain top-k of the scores
  kGroupLimitedGreedy,  // V2: keep topk_group groups ranked by their max score
  kNoauxTc,             // V3: groups ranked by the sum of their top-2 biased scores
};

enum class ScoringFunc { kSoftmax, kSigmoid };

// `rope_scaling` with type "yarn"; absent means plain RoPE.
struct YarnScaling {
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

// `quantization_config` of the released DeepSeek-V3: FP8 e4m3 weights with one FP32
// `weight_scale_inv` per block (value = fp8 * scale).
struct Fp8Quantization {
  int64_t block_rows = 128;  // weight_block_size[0]: output dimension
  int64_t block_cols = 128;  // weight_block_size[1]: input dimension
};

struct ModelConfig {
  ModelType model_type = ModelType::kDeepseekV3;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense FFN layers
  int64_t moe_intermediate_size = 0;  // one routed (or shared) expert
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t max_position_embeddings = 0;

  // MLA. q_lora_rank is absent (null) in V2-Lite: queries use q_proj directly.
  std::optional<int64_t> q_lora_rank;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;

  // MoE.
  int64_t n_routed_experts = 0;  // 0: every layer is dense
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  TopkMethod topk_method = TopkMethod::kGreedy;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;

  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<YarnScaling> rope_scaling;
  bool tie_word_embeddings = false;
  int64_t num_nextn_predict_layers = 0;  // MTP modules, stored as layers after the last
  std::optional<Fp8Quantization> quantization;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // True when decoder layer `layer` has routed experts (as HF's modeling code decides).
  bool IsMoeLayer(int64_t layer) const;
  // 1/sqrt(qk_head_dim), times mscale² under YaRN (DESIGN.md, "MLA").
  double SoftmaxScale() const;
};

// Parses and validates config.json text. Errors are InvalidArgument naming the field,
// e.g. "config.json: field 'topk_method': unsupported value \"foo\"".
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);

// Reads `<dir>/config.json`.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

// Writes a config.json that ParseModelConfig reads back to the same config, in the
// field names of the released checkpoints.
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_CONFIG_H_
