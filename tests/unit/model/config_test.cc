#include "model/config.h"

#include <cmath>
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "model/presets.h"
#include "model/weight_layout.h"

namespace yard::model {
namespace {

// The config.json that DeepSeek-V3 ships (all fields that matter to the math).
constexpr char kDeepseekV3[] = R"json({
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 0, "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 3,
  "hidden_act": "silu",
  "hidden_size": 7168,
  "intermediate_size": 18432,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 2048,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 61,
  "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1,
  "q_lora_rank": 1536,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128]
  },
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32, "beta_slow": 1, "factor": 40,
    "mscale": 1.0, "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096, "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 129280
})json";

// DeepSeek-V2-Lite's config.json: no q_lora_rank, greedy softmax routing.
constexpr char kDeepseekV2Lite[] = R"json({
  "model_type": "deepseek_v2", "hidden_act": "silu", "attention_bias": false,
  "vocab_size": 102400, "hidden_size": 2048, "intermediate_size": 10944,
  "moe_intermediate_size": 1408, "num_hidden_layers": 27, "num_attention_heads": 16,
  "num_key_value_heads": 16, "n_shared_experts": 2, "n_routed_experts": 64,
  "ep_size": 1, "routed_scaling_factor": 1.0, "kv_lora_rank": 512,
  "q_lora_rank": null, "qk_rope_head_dim": 64, "v_head_dim": 128,
  "qk_nope_head_dim": 128, "topk_method": "greedy", "n_group": 1, "topk_group": 1,
  "num_experts_per_tok": 6, "moe_layer_freq": 1, "first_k_dense_replace": 1,
  "norm_topk_prob": false, "scoring_func": "softmax", "aux_loss_alpha": 0.001,
  "seq_aux": true, "max_position_embeddings": 163840, "rms_norm_eps": 1e-06,
  "rope_theta": 10000, "tie_word_embeddings": false,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707,
                   "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096,
                   "type": "yarn"}
})json";

TEST(ConfigTest, ParsesDeepseekV3) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kDeepseekV3);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, ModelType::kDeepseekV3);
  EXPECT_EQ(c->hidden_size, 7168);
  EXPECT_EQ(c->q_lora_rank, 1536);
  EXPECT_EQ(c->topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c->n_group, 8);
  EXPECT_EQ(c->topk_group, 4);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_EQ(c->num_nextn_predict_layers, 1);
  ASSERT_TRUE(c->quantization.has_value());
  EXPECT_EQ(c->quantization->block_rows, 128);
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 40.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_TRUE(c->IsMoeLayer(3));
  EXPECT_TRUE(c->IsMoeLayer(61));  // the MTP layer is MoE too
  // mscale = 0.1 * 1.0 * ln(40) + 1; softmax scale = mscale² / sqrt(192).
  double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c->SoftmaxScale(), m * m / std::sqrt(192.0), 1e-12);
}

TEST(ConfigTest, ParsesDeepseekV2LiteWithNullQLora) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kDeepseekV2Lite);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, ModelType::kDeepseekV2);
  EXPECT_FALSE(c->q_lora_rank.has_value());
  EXPECT_EQ(c->topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(c->quantization.has_value());
  EXPECT_EQ(c->num_nextn_predict_layers, 0);
}

TEST(ConfigTest, JsonRoundTripOfEveryPreset) {
  for (std::string name : {"tiny-v2", "tiny-v3", "v2-lite-layers=4"}) {
    absl::StatusOr<ModelConfig> preset = PresetConfig(name);
    ASSERT_TRUE(preset.ok()) << preset.status();
    absl::StatusOr<ModelConfig> back = ParseModelConfig(ModelConfigToJson(*preset));
    ASSERT_TRUE(back.ok()) << name << ": " << back.status();
    EXPECT_EQ(ModelConfigToJson(*back), ModelConfigToJson(*preset)) << name;
  }
}

TEST(ConfigTest, PresetsRejectBadNames) {
  EXPECT_FALSE(PresetConfig("tiny-v4").ok());
  EXPECT_FALSE(PresetConfig("v2-lite-layers=0").ok());
  EXPECT_FALSE(PresetConfig("v2-lite-layers=x").ok());
  EXPECT_TRUE(PresetConfig("v2-lite-layers=27").ok());
}

// Each malformed variant of the V3 config must fail with InvalidArgument whose
// message names the offending field.
struct BadCase {
  std::string from;
  std::string to;
  std::string field;
};

TEST(ConfigTest, MalformedConfigsNameTheField) {
  const BadCase cases[] = {
      {R"("model_type": "deepseek_v3")", R"("model_type": "llama")", "model_type"},
      {R"("model_type": "deepseek_v3")", R"("model_type": 3)", "model_type"},
      {R"("hidden_size": 7168)", R"("hidden_size": -1)", "hidden_size"},
      {R"("hidden_size": 7168)", R"("hidden_size": "big")", "hidden_size"},
      {R"("hidden_size": 7168)", R"("hidden_size": 7168.5)", "hidden_size"},
      {R"("vocab_size": 129280)", R"("vocab_sizes": 129280)", "vocab_size"},
      {R"("topk_method": "noaux_tc")", R"("topk_method": "magic")", "topk_method"},
      {R"("scoring_func": "sigmoid")", R"("scoring_func": "tanh")", "scoring_func"},
      {R"("n_group": 8)", R"("n_group": 7)", "n_group"},
      {R"("topk_group": 4)", R"("topk_group": 9)", "topk_group"},
      {R"("num_experts_per_tok": 8)", R"("num_experts_per_tok": 300)",
       "num_experts_per_tok"},
      {R"("norm_topk_prob": true)", R"("norm_topk_prob": "yes")", "norm_topk_prob"},
      {R"("hidden_act": "silu")", R"("hidden_act": "gelu")", "hidden_act"},
      {R"("attention_bias": false)", R"("attention_bias": true)", "attention_bias"},
      {R"("type": "yarn")", R"("type": "linear")", "rope_scaling.type"},
      {R"("factor": 40)", R"("factor": 0.5)", "rope_scaling.factor"},
      {R"("quant_method": "fp8")", R"("quant_method": "gptq")",
       "quantization_config.quant_method"},
      {R"("fmt": "e4m3")", R"("fmt": "e5m2")", "quantization_config.fmt"},
      {R"("weight_block_size": [128, 128])", R"("weight_block_size": [128])",
       "quantization_config.weight_block_size"},
      {R"("qk_rope_head_dim": 64)", R"("qk_rope_head_dim": 63)", "qk_rope_head_dim"},
      {R"("rms_norm_eps": 1e-06)", R"("rms_norm_eps": 0)", "rms_norm_eps"},
      {R"("routed_scaling_factor": 2.5)", R"("routed_scaling_factor": -1)",
       "routed_scaling_factor"},
      {R"("moe_layer_freq": 1)", R"("moe_layer_freq": 0)", "moe_layer_freq"},
  };
  for (const BadCase& bad : cases) {
    std::string text = absl::StrReplaceAll(kDeepseekV3, {{bad.from, bad.to}});
    ASSERT_NE(text, kDeepseekV3) << "case did not apply: " << bad.from;
    absl::StatusOr<ModelConfig> c = ParseModelConfig(text);
    ASSERT_FALSE(c.ok()) << bad.to;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << bad.to;
    EXPECT_NE(c.status().message().find("'" + bad.field + "'"), std::string::npos)
        << "message '" << c.status().message() << "' does not name " << bad.field;
  }
}

TEST(ConfigTest, RejectsNonJsonAndNonObjects) {
  for (const char* text : {"", "{", "[1,2]", "null", "\"str\"", "{\"a\":}"}) {
    absl::StatusOr<ModelConfig> c = ParseModelConfig(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ConfigTest, LoadReportsMissingFile) {
  absl::StatusOr<ModelConfig> c = LoadModelConfig("/nonexistent/dir");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/dir/config.json"), std::string::npos);
}

TEST(WeightLayoutTest, DeepseekV3HasReleasedNamesAndShapes) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kDeepseekV3);
  ASSERT_TRUE(c.ok());
  std::vector<WeightSpec> weights = ExpectedWeights(*c);
  auto find = [&](const std::string& name) -> const WeightSpec* {
    for (const WeightSpec& w : weights) {
      if (w.name == name) return &w;
    }
    return nullptr;
  };
  const WeightSpec* gate = find("model.layers.3.mlp.gate.weight");
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->shape, (std::vector<int64_t>{256, 7168}));
  EXPECT_FALSE(gate->fp8_when_quantized);
  const WeightSpec* kv_b = find("model.layers.0.self_attn.kv_b_proj.weight");
  ASSERT_NE(kv_b, nullptr);
  EXPECT_EQ(kv_b->shape, (std::vector<int64_t>{128 * 256, 512}));
  EXPECT_TRUE(kv_b->fp8_when_quantized);
  EXPECT_NE(find("model.layers.0.mlp.down_proj.weight"), nullptr);      // dense
  EXPECT_EQ(find("model.layers.0.mlp.gate.weight"), nullptr);
  EXPECT_NE(find("model.layers.60.mlp.experts.255.down_proj.weight"), nullptr);
  EXPECT_NE(find("model.layers.61.eh_proj.weight"), nullptr);           // MTP
  EXPECT_NE(find("model.layers.61.mlp.shared_experts.up_proj.weight"), nullptr);
  const WeightSpec* bias = find("model.layers.61.mlp.gate.e_score_correction_bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_TRUE(bias->always_fp32);
  EXPECT_NE(find("lm_head.weight"), nullptr);
  EXPECT_EQ(ScaleShape({7168, 2048}, *c->quantization), (std::vector<int64_t>{56, 16}));
  EXPECT_EQ(ScaleShape({576, 7168}, *c->quantization), (std::vector<int64_t>{5, 56}));
}

}  // namespace
}  // namespace yard::model
