#include "model/presets.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace yard::model {
namespace {

constexpr int64_t kDeepseekV3Vocab = 129280;

ModelConfig TinyV3() {
  ModelConfig c;
  c.model_type = ModelType::kDeepseekV3;
  c.vocab_size = kDeepseekV3Vocab;
  c.hidden_size = 192;
  c.intermediate_size = 320;
  c.moe_intermediate_size = 96;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.max_position_embeddings = 4096;
  c.q_lora_rank = 96;
  c.kv_lora_rank = 64;
  c.qk_nope_head_dim = 32;
  c.qk_rope_head_dim = 16;
  c.v_head_dim = 32;
  c.n_routed_experts = 16;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 4;
  c.n_group = 4;
  c.topk_group = 2;
  c.topk_method = TopkMethod::kNoauxTc;
  c.scoring_func = ScoringFunc::kSigmoid;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  c.first_k_dense_replace = 1;
  c.moe_layer_freq = 1;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.rope_scaling = YarnScaling{.factor = 40.0,
                               .original_max_position_embeddings = 64,
                               .beta_fast = 32.0,
                               .beta_slow = 1.0,
                               .mscale = 1.0,
                               .mscale_all_dim = 1.0};
  c.num_nextn_predict_layers = 1;
  return c;
}

ModelConfig TinyV2() {
  ModelConfig c = TinyV3();
  c.model_type = ModelType::kDeepseekV2;
  c.q_lora_rank.reset();
  c.n_shared_experts = 2;
  c.topk_method = TopkMethod::kGroupLimitedGreedy;
  c.scoring_func = ScoringFunc::kSoftmax;
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 16.0;
  c.rope_scaling->mscale = 0.707;
  c.rope_scaling->mscale_all_dim = 0.707;
  c.num_nextn_predict_layers = 0;
  return c;
}

ModelConfig V2Lite(int64_t layers) {
  ModelConfig c;
  c.model_type = ModelType::kDeepseekV2;
  c.vocab_size = 102400;
  c.hidden_size = 2048;
  c.intermediate_size = 10944;
  c.moe_intermediate_size = 1408;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 16;
  c.max_position_embeddings = 163840;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.n_routed_experts = 64;
  c.n_shared_experts = 2;
  c.num_experts_per_tok = 6;
  c.n_group = 1;
  c.topk_group = 1;
  c.topk_method = TopkMethod::kGreedy;
  c.scoring_func = ScoringFunc::kSoftmax;
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 1.0;
  c.first_k_dense_replace = 1;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.rope_scaling = YarnScaling{.factor = 40.0,
                               .original_max_position_embeddings = 4096,
                               .beta_fast = 32.0,
                               .beta_slow = 1.0,
                               .mscale = 0.707,
                               .mscale_all_dim = 0.707};
  return c;
}

}  // namespace

absl::StatusOr<ModelConfig> PresetConfig(absl::string_view name) {
  if (name == "tiny-v3") return TinyV3();
  if (name == "tiny-v2") return TinyV2();
  constexpr absl::string_view kLite = "v2-lite-layers=";
  if (absl::StartsWith(name, kLite)) {
    int64_t layers = 0;
    if (!absl::SimpleAtoi(name.substr(kLite.size()), &layers) || layers < 1 ||
        layers > 27) {
      return absl::InvalidArgumentError(
          absl::StrCat("preset '", name, "': N must be an integer in [1, 27]"));
    }
    return V2Lite(layers);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown preset '", name, "' (tiny-v2, tiny-v3 or v2-lite-layers=N)"));
}

std::vector<std::string> PresetNames() {
  return {"tiny-v2", "tiny-v3", "v2-lite-layers=N"};
}

}  // namespace yard::model
