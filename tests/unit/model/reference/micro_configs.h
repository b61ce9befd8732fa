// Small DeepSeek-V2/V3-shaped configs that run in milliseconds on the reference, with
// every feature of the tiny presets (q_lora or not, YaRN, groups, shared experts,
// dense first layer, MTP) but a 64-token vocabulary.
#ifndef SWITCHYARD_TESTS_UNIT_MODEL_REFERENCE_MICRO_CONFIGS_H_
#define SWITCHYARD_TESTS_UNIT_MODEL_REFERENCE_MICRO_CONFIGS_H_

#include "model/config.h"

namespace yard::model {

inline ModelConfig MicroV3() {
  ModelConfig c;
  c.model_type = ModelType::kDeepseekV3;
  c.vocab_size = 64;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.moe_intermediate_size = 12;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 2;
  c.max_position_embeddings = 32;
  c.q_lora_rank = 12;
  c.kv_lora_rank = 8;
  c.qk_nope_head_dim = 6;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 6;
  c.n_routed_experts = 8;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 3;
  c.n_group = 4;
  c.topk_group = 2;
  c.topk_method = TopkMethod::kNoauxTc;
  c.scoring_func = ScoringFunc::kSigmoid;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  c.first_k_dense_replace = 1;
  c.rope_scaling = YarnScaling{.factor = 4.0,
                               .original_max_position_embeddings = 8,
                               .beta_fast = 32.0,
                               .beta_slow = 1.0,
                               .mscale = 1.0,
                               .mscale_all_dim = 0.5};
  c.num_nextn_predict_layers = 1;
  return c;
}

inline ModelConfig MicroV2() {
  ModelConfig c = MicroV3();
  c.model_type = ModelType::kDeepseekV2;
  c.q_lora_rank.reset();
  c.n_shared_experts = 2;
  c.topk_method = TopkMethod::kGroupLimitedGreedy;
  c.scoring_func = ScoringFunc::kSoftmax;
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 16.0;
  c.num_nextn_predict_layers = 0;
  return c;
}

}  // namespace yard::model

#endif  // SWITCHYARD_TESTS_UNIT_MODEL_REFERENCE_MICRO_CONFIGS_H_
