#include "model/weight_layout.h"

#include "absl/strings/str_cat.h"

namespace yard::model {
namespace {

void AddLinear(std::vector<WeightSpec>& out, std::string name, int64_t rows,
               int64_t cols) {
  out.push_back({std::move(name), {rows, cols}, /*fp8_when_quantized=*/true, false});
}

void AddBf16(std::vector<WeightSpec>& out, std::string name,
             std::vector<int64_t> shape) {
  out.push_back({std::move(name), std::move(shape), false, false});
}

void AddSwiGlu(std::vector<WeightSpec>& out, const std::string& prefix, int64_t hidden,
               int64_t inner) {
  AddLinear(out, prefix + "gate_proj.weight", inner, hidden);
  AddLinear(out, prefix + "up_proj.weight", inner, hidden);
  AddLinear(out, prefix + "down_proj.weight", hidden, inner);
}

void AddDecoderLayer(std::vector<WeightSpec>& out, const ModelConfig& c, int64_t layer) {
  const std::string p = LayerPrefix(layer);
  const int64_t h = c.hidden_size;
  const int64_t heads = c.num_attention_heads;
  AddBf16(out, p + "input_layernorm.weight", {h});
  const std::string a = p + "self_attn.";
  if (c.q_lora_rank) {
    AddLinear(out, a + "q_a_proj.weight", *c.q_lora_rank, h);
    AddBf16(out, a + "q_a_layernorm.weight", {*c.q_lora_rank});
    AddLinear(out, a + "q_b_proj.weight", heads * c.qk_head_dim(), *c.q_lora_rank);
  } else {
    AddLinear(out, a + "q_proj.weight", heads * c.qk_head_dim(), h);
  }
  AddLinear(out, a + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, h);
  AddBf16(out, a + "kv_a_layernorm.weight", {c.kv_lora_rank});
  AddLinear(out, a + "kv_b_proj.weight", heads * (c.qk_nope_head_dim + c.v_head_dim),
            c.kv_lora_rank);
  AddLinear(out, a + "o_proj.weight", h, heads * c.v_head_dim);
  AddBf16(out, p + "post_attention_layernorm.weight", {h});

  const std::string m = p + "mlp.";
  if (!c.IsMoeLayer(layer)) {
    AddSwiGlu(out, m, h, c.intermediate_size);
    return;
  }
  AddBf16(out, m + "gate.weight", {c.n_routed_experts, h});
  if (c.topk_method == TopkMethod::kNoauxTc) {
    out.push_back({m + "gate.e_score_correction_bias", {c.n_routed_experts}, false,
                   /*always_fp32=*/true});
  }
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    AddSwiGlu(out, absl::StrCat(m, "experts.", e, "."), h, c.moe_intermediate_size);
  }
  if (c.n_shared_experts > 0) {
    AddSwiGlu(out, m + "shared_experts.", h, c.n_shared_experts * c.moe_intermediate_size);
  }
}

}  // namespace

std::string LayerPrefix(int64_t layer) { return absl::StrCat("model.layers.", layer, "."); }

std::vector<WeightSpec> ExpectedWeights(const ModelConfig& c) {
  std::vector<WeightSpec> out;
  const int64_t h = c.hidden_size;
  AddBf16(out, "model.embed_tokens.weight", {c.vocab_size, h});
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    AddDecoderLayer(out, c, layer);
  }
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t layer = c.num_hidden_layers + k;
    const std::string p = LayerPrefix(layer);
    // MTP module: its own copy of the embedding and head, as released.
    AddBf16(out, p + "embed_tokens.weight", {c.vocab_size, h});
    AddBf16(out, p + "enorm.weight", {h});
    AddBf16(out, p + "hnorm.weight", {h});
    AddBf16(out, p + "eh_proj.weight", {h, 2 * h});
    AddDecoderLayer(out, c, layer);
    AddBf16(out, p + "shared_head.norm.weight", {h});
    AddBf16(out, p + "shared_head.head.weight", {c.vocab_size, h});
  }
  AddBf16(out, "model.norm.weight", {h});
  if (!c.tie_word_embeddings) AddBf16(out, "lm_head.weight", {c.vocab_size, h});
  return out;
}

std::vector<int64_t> ScaleShape(const std::vector<int64_t>& shape,
                                const Fp8Quantization& q) {
  return {(shape[0] + q.block_rows - 1) / q.block_rows,
          (shape[1] + q.block_cols - 1) / q.block_cols};
}

}  // namespace yard::model
