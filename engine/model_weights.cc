#include "engine/model_weights.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/weight_layout.h"

namespace yard::engine {
namespace {

using kernels::cpu::WeightType;
using kernels::cpu::WeightView;
using model::DType;

// Reads the tensors of one checkpoint by name, with errors that name them.
class Binder {
 public:
  Binder(const model::ModelConfig& config, const model::Checkpoint& checkpoint)
      : config_(config), checkpoint_(checkpoint) {}

  absl::StatusOr<const model::TensorView*> Find(const std::string& name) const {
    const model::TensorView* view = checkpoint_.Find(name);
    if (view == nullptr) return absl::NotFoundError(absl::StrCat("tensor ", name, ": missing"));
    return view;
  }

  absl::StatusOr<WeightView> Linear(const std::string& name) const {
    ASSIGN_OR_RETURN(const model::TensorView* t, Find(name));
    if (t->shape.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", name, ": not 2-D"));
    }
    WeightView w;
    w.data = t->data;
    w.n = t->shape[0];
    w.k = t->shape[1];
    if (t->dtype == DType::kBF16) {
      w.type = WeightType::kBf16;
    } else if (t->dtype == DType::kF8E4M3) {
      if (!config_.quantization ||
          config_.quantization->block_rows != kernels::cpu::kFp8BlockSize ||
          config_.quantization->block_cols != kernels::cpu::kFp8BlockSize) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", name, ": the fast engine takes FP8 weights with 128x128 block "
                             "scales only"));
      }
      ASSIGN_OR_RETURN(const model::TensorView* scale, Find(name + "_scale_inv"));
      if (scale->dtype != DType::kF32) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", name, "_scale_inv: expected F32"));
      }
      w.type = WeightType::kFp8E4m3;
      w.scale_inv = reinterpret_cast<const float*>(scale->data);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, ": dtype ", model::DTypeName(t->dtype),
          " is not served by the fast engine (BF16 or FP8 e4m3); use --engine=reference"));
    }
    RETURN_IF_ERROR(kernels::cpu::ValidateWeight(w));
    return w;
  }

  absl::StatusOr<std::vector<float>> Vector(const std::string& name) const {
    ASSIGN_OR_RETURN(model::Fp32Tensor t, checkpoint_.ReadFp32(name));
    return std::move(t.data);
  }

  absl::StatusOr<SwiGluViews> SwiGlu(const std::string& prefix) const {
    SwiGluViews ffn;
    ASSIGN_OR_RETURN(ffn.gate, Linear(prefix + "gate_proj.weight"));
    ASSIGN_OR_RETURN(ffn.up, Linear(prefix + "up_proj.weight"));
    ASSIGN_OR_RETURN(ffn.down, Linear(prefix + "down_proj.weight"));
    return ffn;
  }

  absl::StatusOr<LayerViews> Layer(int64_t index) const {
    const std::string p = model::LayerPrefix(index);
    const std::string a = p + "self_attn.";
    LayerViews layer;
    ASSIGN_OR_RETURN(layer.input_norm, Vector(p + "input_layernorm.weight"));
    ASSIGN_OR_RETURN(layer.post_attn_norm, Vector(p + "post_attention_layernorm.weight"));
    AttentionViews& attn = layer.attention;
    if (config_.q_lora_rank) {
      ASSIGN_OR_RETURN(attn.q_a, Linear(a + "q_a_proj.weight"));
      ASSIGN_OR_RETURN(attn.q_a_norm, Vector(a + "q_a_layernorm.weight"));
      ASSIGN_OR_RETURN(attn.q, Linear(a + "q_b_proj.weight"));
    } else {
      ASSIGN_OR_RETURN(attn.q, Linear(a + "q_proj.weight"));
    }
    ASSIGN_OR_RETURN(attn.kv_a, Linear(a + "kv_a_proj_with_mqa.weight"));
    ASSIGN_OR_RETURN(attn.kv_a_norm, Vector(a + "kv_a_layernorm.weight"));
    ASSIGN_OR_RETURN(attn.kv_b, Linear(a + "kv_b_proj.weight"));
    ASSIGN_OR_RETURN(attn.o, Linear(a + "o_proj.weight"));

    const std::string m = p + "mlp.";
    if (!config_.IsMoeLayer(index)) {
      ASSIGN_OR_RETURN(layer.dense, SwiGlu(m));
      return layer;
    }
    MoeViews moe;
    ASSIGN_OR_RETURN(moe.router, Linear(m + "gate.weight"));
    if (config_.topk_method == model::TopkMethod::kNoauxTc) {
      ASSIGN_OR_RETURN(moe.bias, Vector(m + "gate.e_score_correction_bias"));
    }
    moe.experts.reserve(config_.n_routed_experts);
    for (int64_t e = 0; e < config_.n_routed_experts; ++e) {
      ASSIGN_OR_RETURN(SwiGluViews expert, SwiGlu(absl::StrCat(m, "experts.", e, ".")));
      moe.experts.push_back(expert);
    }
    if (config_.n_shared_experts > 0) {
      ASSIGN_OR_RETURN(moe.shared, SwiGlu(m + "shared_experts."));
    }
    layer.moe = std::move(moe);
    return layer;
  }

 private:
  const model::ModelConfig& config_;
  const model::Checkpoint& checkpoint_;
};

}  // namespace

absl::StatusOr<ModelViews> BindModelViews(const model::ModelConfig& config,
                                          const model::Checkpoint& checkpoint) {
  Binder bind(config, checkpoint);
  ModelViews views;
  ASSIGN_OR_RETURN(const model::TensorView* embedding, bind.Find("model.embed_tokens.weight"));
  if (embedding->dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        "tensor model.embed_tokens.weight: the fast engine takes a BF16 embedding");
  }
  views.embedding = reinterpret_cast<const uint16_t*>(embedding->data);
  views.layers.reserve(config.num_hidden_layers);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    ASSIGN_OR_RETURN(LayerViews views_of_layer, bind.Layer(layer));
    views.layers.push_back(std::move(views_of_layer));
  }
  ASSIGN_OR_RETURN(views.final_norm, bind.Vector("model.norm.weight"));
  ASSIGN_OR_RETURN(views.lm_head, bind.Linear(config.tie_word_embeddings
                                                  ? "model.embed_tokens.weight"
                                                  : "lm_head.weight"));
  return views;
}

}  // namespace yard::engine
