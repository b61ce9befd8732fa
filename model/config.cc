#include "model/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace yard::model {
namespace {

using Json = nlohmann::json;

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config.json: field '", field, "': ", what));
}

// Typed, validating reads of one JSON object; every error names the field.
class Fields {
 public:
  Fields(const Json& object, std::string prefix)
      : object_(object), prefix_(std::move(prefix)) {}

  bool Has(const std::string& key) const {
    return object_.contains(key) && !object_.at(key).is_null();
  }
  const Json& Raw(const std::string& key) const { return object_.at(key); }
  std::string Name(const std::string& key) const { return prefix_ + key; }

  absl::StatusOr<int64_t> Int(const std::string& key,
                              std::optional<int64_t> fallback) const {
    if (!Has(key)) {
      if (fallback) return *fallback;
      return FieldError(Name(key), "missing");
    }
    const Json& v = object_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
        return static_cast<int64_t>(d);
      }
    }
    return FieldError(Name(key), absl::StrCat("expected an integer, got ", v.dump()));
  }

  absl::StatusOr<int64_t> PositiveInt(const std::string& key,
                                      std::optional<int64_t> fallback) const {
    ASSIGN_OR_RETURN(int64_t v, Int(key, fallback));
    if (v <= 0) return FieldError(Name(key), absl::StrCat("must be > 0, got ", v));
    return v;
  }

  absl::StatusOr<int64_t> NonNegativeInt(const std::string& key,
                                         std::optional<int64_t> fallback) const {
    ASSIGN_OR_RETURN(int64_t v, Int(key, fallback));
    if (v < 0) return FieldError(Name(key), absl::StrCat("must be >= 0, got ", v));
    return v;
  }

  absl::StatusOr<double> Number(const std::string& key,
                                std::optional<double> fallback) const {
    if (!Has(key)) {
      if (fallback) return *fallback;
      return FieldError(Name(key), "missing");
    }
    const Json& v = object_.at(key);
    if (!v.is_number()) {
      return FieldError(Name(key), absl::StrCat("expected a number, got ", v.dump()));
    }
    double d = v.get<double>();
    if (!std::isfinite(d)) return FieldError(Name(key), "must be finite");
    return d;
  }

  absl::StatusOr<bool> Bool(const std::string& key, bool fallback) const {
    if (!Has(key)) return fallback;
    const Json& v = object_.at(key);
    if (!v.is_boolean()) {
      return FieldError(Name(key), absl::StrCat("expected true or false, got ", v.dump()));
    }
    return v.get<bool>();
  }

  absl::StatusOr<std::string> String(const std::string& key,
                                     std::optional<std::string> fallback) const {
    if (!Has(key)) {
      if (fallback) return *fallback;
      return FieldError(Name(key), "missing");
    }
    const Json& v = object_.at(key);
    if (!v.is_string()) {
      return FieldError(Name(key), absl::StrCat("expected a string, got ", v.dump()));
    }
    return v.get<std::string>();
  }

 private:
  const Json& object_;
  std::string prefix_;
};

absl::StatusOr<YarnScaling> ParseRopeScaling(const Json& object) {
  if (!object.is_object()) {
    return FieldError("rope_scaling", "expected an object or null");
  }
  Fields f(object, "rope_scaling.");
  // HF writes the kind as "type"; newer transformers as "rope_type".
  std::string type_key = f.Has("type") ? "type" : "rope_type";
  ASSIGN_OR_RETURN(std::string type, f.String(type_key, std::nullopt));
  if (type != "yarn") {
    return FieldError(f.Name(type_key),
                      absl::StrCat("unsupported value \"", type, "\" (only yarn)"));
  }
  YarnScaling y;
  ASSIGN_OR_RETURN(y.factor, f.Number("factor", std::nullopt));
  if (y.factor < 1.0) return FieldError(f.Name("factor"), "must be >= 1");
  ASSIGN_OR_RETURN(y.original_max_position_embeddings,
                   f.PositiveInt("original_max_position_embeddings", 4096));
  ASSIGN_OR_RETURN(y.beta_fast, f.Number("beta_fast", 32.0));
  ASSIGN_OR_RETURN(y.beta_slow, f.Number("beta_slow", 1.0));
  if (y.beta_fast <= 0 || y.beta_slow <= 0) {
    return FieldError(f.Name("beta_fast"), "beta_fast and beta_slow must be > 0");
  }
  ASSIGN_OR_RETURN(y.mscale, f.Number("mscale", 1.0));
  ASSIGN_OR_RETURN(y.mscale_all_dim, f.Number("mscale_all_dim", 0.0));
  return y;
}

absl::StatusOr<Fp8Quantization> ParseQuantization(const Json& object) {
  if (!object.is_object()) {
    return FieldError("quantization_config", "expected an object or null");
  }
  Fields f(object, "quantization_config.");
  ASSIGN_OR_RETURN(std::string method, f.String("quant_method", std::nullopt));
  if (method != "fp8") {
    return FieldError(f.Name("quant_method"),
                      absl::StrCat("unsupported value \"", method, "\" (only fp8)"));
  }
  ASSIGN_OR_RETURN(std::string fmt, f.String("fmt", std::string("e4m3")));
  if (fmt != "e4m3") {
    return FieldError(f.Name("fmt"),
                      absl::StrCat("unsupported value \"", fmt, "\" (only e4m3)"));
  }
  ASSIGN_OR_RETURN(std::string scheme,
                   f.String("activation_scheme", std::string("dynamic")));
  if (scheme != "dynamic") {
    return FieldError(f.Name("activation_scheme"),
                      absl::StrCat("unsupported value \"", scheme, "\" (only dynamic)"));
  }
  Fp8Quantization q;
  if (f.Has("weight_block_size")) {
    const Json& b = f.Raw("weight_block_size");
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() ||
        !b[1].is_number_integer() || b[0].get<int64_t>() <= 0 ||
        b[1].get<int64_t>() <= 0) {
      return FieldError(f.Name("weight_block_size"),
                        absl::StrCat("expected two positive integers, got ", b.dump()));
    }
    q.block_rows = b[0].get<int64_t>();
    q.block_cols = b[1].get<int64_t>();
  }
  return q;
}

absl::StatusOr<TopkMethod> ParseTopkMethod(const std::string& s) {
  // "gready" is the default spelled in DeepSeek-V2's own configuration class.
  if (s == "greedy" || s == "gready") return TopkMethod::kGreedy;
  if (s == "group_limited_greedy") return TopkMethod::kGroupLimitedGreedy;
  if (s == "noaux_tc") return TopkMethod::kNoauxTc;
  return FieldError("topk_method",
                    absl::StrCat("unsupported value \"", s,
                                 "\" (greedy, group_limited_greedy or noaux_tc)"));
}

absl::Status Validate(const ModelConfig& c) {
  if (c.n_routed_experts == 0) return absl::OkStatus();
  if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.n_routed_experts) {
    return FieldError("num_experts_per_tok",
                      absl::StrCat("must be in [1, n_routed_experts=",
                                   c.n_routed_experts, "], got ", c.num_experts_per_tok));
  }
  if (c.moe_intermediate_size <= 0) {
    return FieldError("moe_intermediate_size", "must be > 0 when experts are routed");
  }
  if (c.n_routed_experts % c.n_group != 0) {
    return FieldError("n_group", absl::StrCat("must divide n_routed_experts=",
                                              c.n_routed_experts, ", got ", c.n_group));
  }
  if (c.topk_group > c.n_group) {
    return FieldError("topk_group", absl::StrCat("must be <= n_group=", c.n_group,
                                                 ", got ", c.topk_group));
  }
  if (c.topk_method != TopkMethod::kGreedy &&
      c.topk_group * (c.n_routed_experts / c.n_group) < c.num_experts_per_tok) {
    return FieldError("topk_group",
                      "the kept groups hold fewer experts than num_experts_per_tok");
  }
  if (c.topk_method == TopkMethod::kNoauxTc && c.n_routed_experts / c.n_group < 2) {
    return FieldError("n_group", "noaux_tc ranks groups by their top-2: need >= 2 "
                                 "experts per group");
  }
  return absl::OkStatus();
}

}  // namespace

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace &&
         layer % moe_layer_freq == 0;
}

double ModelConfig::SoftmaxScale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling && rope_scaling->mscale_all_dim != 0.0 && rope_scaling->factor > 1.0) {
    double m = 0.1 * rope_scaling->mscale_all_dim * std::log(rope_scaling->factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text) {
  Json root = Json::parse(json_text.begin(), json_text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError("config.json: not valid JSON");
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError("config.json: expected a JSON object");
  }
  Fields f(root, "");
  ModelConfig c;
  ASSIGN_OR_RETURN(std::string model_type, f.String("model_type", std::nullopt));
  if (model_type == "deepseek_v2") {
    c.model_type = ModelType::kDeepseekV2;
  } else if (model_type == "deepseek_v3") {
    c.model_type = ModelType::kDeepseekV3;
  } else {
    return FieldError("model_type", absl::StrCat("unsupported value \"", model_type,
                                                 "\" (deepseek_v2 or deepseek_v3)"));
  }
  ASSIGN_OR_RETURN(std::string act, f.String("hidden_act", std::string("silu")));
  if (act != "silu") {
    return FieldError("hidden_act", absl::StrCat("unsupported value \"", act,
                                                 "\" (only silu)"));
  }
  ASSIGN_OR_RETURN(bool attention_bias, f.Bool("attention_bias", false));
  if (attention_bias) return FieldError("attention_bias", "true is not supported");

  ASSIGN_OR_RETURN(c.vocab_size, f.PositiveInt("vocab_size", std::nullopt));
  ASSIGN_OR_RETURN(c.hidden_size, f.PositiveInt("hidden_size", std::nullopt));
  ASSIGN_OR_RETURN(c.intermediate_size, f.PositiveInt("intermediate_size", std::nullopt));
  ASSIGN_OR_RETURN(c.num_hidden_layers, f.PositiveInt("num_hidden_layers", std::nullopt));
  ASSIGN_OR_RETURN(c.num_attention_heads,
                   f.PositiveInt("num_attention_heads", std::nullopt));
  ASSIGN_OR_RETURN(c.max_position_embeddings,
                   f.PositiveInt("max_position_embeddings", 2048));
  if (f.Has("q_lora_rank")) {
    ASSIGN_OR_RETURN(c.q_lora_rank, f.PositiveInt("q_lora_rank", std::nullopt));
  }
  ASSIGN_OR_RETURN(c.kv_lora_rank, f.PositiveInt("kv_lora_rank", std::nullopt));
  ASSIGN_OR_RETURN(c.qk_nope_head_dim, f.PositiveInt("qk_nope_head_dim", std::nullopt));
  ASSIGN_OR_RETURN(c.qk_rope_head_dim, f.PositiveInt("qk_rope_head_dim", std::nullopt));
  if (c.qk_rope_head_dim % 2 != 0) {
    return FieldError("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  }
  ASSIGN_OR_RETURN(c.v_head_dim, f.PositiveInt("v_head_dim", std::nullopt));

  ASSIGN_OR_RETURN(c.n_routed_experts, f.NonNegativeInt("n_routed_experts", 0));
  ASSIGN_OR_RETURN(c.n_shared_experts, f.NonNegativeInt("n_shared_experts", 0));
  ASSIGN_OR_RETURN(c.moe_intermediate_size, f.NonNegativeInt("moe_intermediate_size", 0));
  ASSIGN_OR_RETURN(c.num_experts_per_tok, f.NonNegativeInt("num_experts_per_tok", 0));
  ASSIGN_OR_RETURN(c.n_group, f.PositiveInt("n_group", 1));
  ASSIGN_OR_RETURN(c.topk_group, f.PositiveInt("topk_group", 1));
  ASSIGN_OR_RETURN(std::string topk_method, f.String("topk_method", std::string("greedy")));
  ASSIGN_OR_RETURN(c.topk_method, ParseTopkMethod(topk_method));
  ASSIGN_OR_RETURN(std::string scoring, f.String("scoring_func", std::string("softmax")));
  if (scoring == "softmax") {
    c.scoring_func = ScoringFunc::kSoftmax;
  } else if (scoring == "sigmoid") {
    c.scoring_func = ScoringFunc::kSigmoid;
  } else {
    return FieldError("scoring_func", absl::StrCat("unsupported value \"", scoring,
                                                   "\" (softmax or sigmoid)"));
  }
  ASSIGN_OR_RETURN(c.norm_topk_prob, f.Bool("norm_topk_prob", false));
  ASSIGN_OR_RETURN(c.routed_scaling_factor, f.Number("routed_scaling_factor", 1.0));
  if (c.routed_scaling_factor <= 0) {
    return FieldError("routed_scaling_factor", "must be > 0");
  }
  ASSIGN_OR_RETURN(c.first_k_dense_replace, f.NonNegativeInt("first_k_dense_replace", 0));
  ASSIGN_OR_RETURN(c.moe_layer_freq, f.PositiveInt("moe_layer_freq", 1));

  ASSIGN_OR_RETURN(c.rms_norm_eps, f.Number("rms_norm_eps", 1e-6));
  if (c.rms_norm_eps <= 0) return FieldError("rms_norm_eps", "must be > 0");
  ASSIGN_OR_RETURN(c.rope_theta, f.Number("rope_theta", 10000.0));
  if (c.rope_theta <= 1.0) return FieldError("rope_theta", "must be > 1");
  if (f.Has("rope_scaling")) {
    ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(f.Raw("rope_scaling")));
  }
  ASSIGN_OR_RETURN(c.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(c.num_nextn_predict_layers,
                   f.NonNegativeInt("num_nextn_predict_layers", 0));
  if (f.Has("quantization_config")) {
    ASSIGN_OR_RETURN(c.quantization, ParseQuantization(f.Raw("quantization_config")));
  }
  RETURN_IF_ERROR(Validate(c));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<ModelConfig> config = ParseModelConfig(buffer.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  Json j;
  j["architectures"] = {c.model_type == ModelType::kDeepseekV2 ? "DeepseekV2ForCausalLM"
                                                               : "DeepseekV3ForCausalLM"};
  j["model_type"] = c.model_type == ModelType::kDeepseekV2 ? "deepseek_v2" : "deepseek_v3";
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_attention_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["q_lora_rank"] = c.q_lora_rank ? Json(*c.q_lora_rank) : Json(nullptr);
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  switch (c.topk_method) {
    case TopkMethod::kGreedy: j["topk_method"] = "greedy"; break;
    case TopkMethod::kGroupLimitedGreedy: j["topk_method"] = "group_limited_greedy"; break;
    case TopkMethod::kNoauxTc: j["topk_method"] = "noaux_tc"; break;
  }
  j["scoring_func"] = c.scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax";
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", y.factor},
                         {"original_max_position_embeddings",
                          y.original_max_position_embeddings},
                         {"beta_fast", y.beta_fast},
                         {"beta_slow", y.beta_slow},
                         {"mscale", y.mscale},
                         {"mscale_all_dim", y.mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["bos_token_id"] = 0;
  j["eos_token_id"] = 1;
  j["torch_dtype"] = "bfloat16";
  if (c.quantization) {
    j["quantization_config"] = {
        {"quant_method", "fp8"},
        {"fmt", "e4m3"},
        {"activation_scheme", "dynamic"},
        {"weight_block_size", {c.quantization->block_rows, c.quantization->block_cols}}};
  }
  return j.dump(2) + "\n";
}

}  // namespace yard::model
