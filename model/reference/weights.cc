#include "model/reference/weights.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/weight_layout.h"

namespace yard::model::reference {
namespace {

// Reads tensors and checks each against the shape weight_layout.h promises, so the
// reference and make_model can never disagree silently on a shape.
class Loader {
 public:
  Loader(const ModelConfig& config, const WeightSourceInterface& source)
      : source_(source) {
    for (WeightSpec& spec : ExpectedWeights(config)) {
      expected_.emplace(std::move(spec.name), std::move(spec.shape));
    }
  }

  absl::StatusOr<Fp32Tensor> Read(const std::string& name) const {
    auto it = expected_.find(name);
    if (it == expected_.end()) {
      return absl::InternalError(
          absl::StrCat("tensor ", name, ": not in model/weight_layout.h for this config"));
    }
    ASSIGN_OR_RETURN(Fp32Tensor t, source_.ReadFp32(name));
    if (t.shape != it->second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, ": shape [", absl::StrJoin(t.shape, ","), "], expected [",
          absl::StrJoin(it->second, ","), "]"));
    }
    if (static_cast<int64_t>(t.data.size()) != t.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, ": ", t.data.size(), " values for shape [",
          absl::StrJoin(t.shape, ","), "]"));
    }
    return t;
  }

  absl::StatusOr<Matrix> ReadMatrix(const std::string& name) const {
    ASSIGN_OR_RETURN(Fp32Tensor t, Read(name));
    if (t.shape.size() != 2) {
      return absl::InternalError(absl::StrCat("tensor ", name, ": not a matrix"));
    }
    return Matrix{t.shape[0], t.shape[1], std::move(t.data)};
  }

  absl::StatusOr<std::vector<float>> ReadVector(const std::string& name) const {
    ASSIGN_OR_RETURN(Fp32Tensor t, Read(name));
    return std::move(t.data);
  }

  absl::StatusOr<SwiGluWeights> ReadSwiGlu(const std::string& prefix) const {
    SwiGluWeights w;
    ASSIGN_OR_RETURN(w.gate, ReadMatrix(prefix + "gate_proj.weight"));
    ASSIGN_OR_RETURN(w.up, ReadMatrix(prefix + "up_proj.weight"));
    ASSIGN_OR_RETURN(w.down, ReadMatrix(prefix + "down_proj.weight"));
    return w;
  }

 private:
  const WeightSourceInterface& source_;
  std::map<std::string, std::vector<int64_t>> expected_;
};

absl::StatusOr<LayerWeights> LoadLayer(const ModelConfig& c, const Loader& loader,
                                       int64_t layer) {
  const std::string p = LayerPrefix(layer);
  LayerWeights w;
  ASSIGN_OR_RETURN(w.input_norm, loader.ReadVector(p + "input_layernorm.weight"));
  const std::string a = p + "self_attn.";
  AttentionWeights& attn = w.attn;
  if (c.q_lora_rank) {
    ASSIGN_OR_RETURN(attn.q_a, loader.ReadMatrix(a + "q_a_proj.weight"));
    ASSIGN_OR_RETURN(attn.q_a_norm, loader.ReadVector(a + "q_a_layernorm.weight"));
    ASSIGN_OR_RETURN(attn.q_b, loader.ReadMatrix(a + "q_b_proj.weight"));
  } else {
    ASSIGN_OR_RETURN(attn.q_proj, loader.ReadMatrix(a + "q_proj.weight"));
  }
  ASSIGN_OR_RETURN(attn.kv_a, loader.ReadMatrix(a + "kv_a_proj_with_mqa.weight"));
  ASSIGN_OR_RETURN(attn.kv_a_norm, loader.ReadVector(a + "kv_a_layernorm.weight"));
  ASSIGN_OR_RETURN(attn.kv_b, loader.ReadMatrix(a + "kv_b_proj.weight"));
  ASSIGN_OR_RETURN(attn.o, loader.ReadMatrix(a + "o_proj.weight"));
  ASSIGN_OR_RETURN(w.post_attention_norm,
                   loader.ReadVector(p + "post_attention_layernorm.weight"));

  const std::string m = p + "mlp.";
  if (!c.IsMoeLayer(layer)) {
    ASSIGN_OR_RETURN(w.dense, loader.ReadSwiGlu(m));
    return w;
  }
  MoeWeights moe;
  ASSIGN_OR_RETURN(moe.gate, loader.ReadMatrix(m + "gate.weight"));
  if (c.topk_method == TopkMethod::kNoauxTc) {
    ASSIGN_OR_RETURN(moe.e_score_correction_bias,
                     loader.ReadVector(m + "gate.e_score_correction_bias"));
  }
  moe.experts.reserve(c.n_routed_experts);
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    ASSIGN_OR_RETURN(SwiGluWeights expert,
                     loader.ReadSwiGlu(absl::StrCat(m, "experts.", e, ".")));
    moe.experts.push_back(std::move(expert));
  }
  if (c.n_shared_experts > 0) {
    ASSIGN_OR_RETURN(moe.shared, loader.ReadSwiGlu(m + "shared_experts."));
  }
  w.moe = std::move(moe);
  return w;
}

}  // namespace

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config,
                                              const WeightSourceInterface& source) {
  Loader loader(config, source);
  ModelWeights w;
  ASSIGN_OR_RETURN(w.embed, loader.ReadMatrix("model.embed_tokens.weight"));
  w.layers.reserve(config.num_hidden_layers);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    ASSIGN_OR_RETURN(LayerWeights lw, LoadLayer(config, loader, layer));
    w.layers.push_back(std::move(lw));
  }
  ASSIGN_OR_RETURN(w.final_norm, loader.ReadVector("model.norm.weight"));
  if (!config.tie_word_embeddings) {
    ASSIGN_OR_RETURN(w.lm_head, loader.ReadMatrix("lm_head.weight"));
  }
  if (config.num_nextn_predict_layers > 0) {
    // Only the first MTP module: later ones would chain drafts, which nothing uses.
    const int64_t layer = config.num_hidden_layers;
    const std::string p = LayerPrefix(layer);
    MtpWeights mtp;
    ASSIGN_OR_RETURN(mtp.embed, loader.ReadMatrix(p + "embed_tokens.weight"));
    ASSIGN_OR_RETURN(mtp.enorm, loader.ReadVector(p + "enorm.weight"));
    ASSIGN_OR_RETURN(mtp.hnorm, loader.ReadVector(p + "hnorm.weight"));
    ASSIGN_OR_RETURN(mtp.eh_proj, loader.ReadMatrix(p + "eh_proj.weight"));
    ASSIGN_OR_RETURN(mtp.block, LoadLayer(config, loader, layer));
    ASSIGN_OR_RETURN(mtp.head_norm, loader.ReadVector(p + "shared_head.norm.weight"));
    ASSIGN_OR_RETURN(mtp.head, loader.ReadMatrix(p + "shared_head.head.weight"));
    w.mtp = std::move(mtp);
  }
  return w;
}

}  // namespace yard::model::reference
