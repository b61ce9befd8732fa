// The tensors a DeepSeek-V2/V3 checkpoint holds for a config, in the Hugging Face
// naming of the released checkpoints. The one list that make_model writes, the
// checkpoint validator checks and the reference forward reads.
#ifndef SWITCHYARD_MODEL_WEIGHT_LAYOUT_H_
#define SWITCHYARD_MODEL_WEIGHT_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace yard::model {

struct WeightSpec {
  std::string name;            // e.g. "model.layers.3.mlp.experts.17.up_proj.weight"
  std::vector<int64_t> shape;  // row-major, [out, in] for linear weights
  // A linear weight stored as FP8 e4m3 + `<name>_scale_inv` in FP8 checkpoints.
  // Embeddings, norms, router gates, lm_head and eh_proj stay in BF16 (as released).
  bool fp8_when_quantized = false;
  // Stored in FP32 whatever the checkpoint dtype (e_score_correction_bias).
  bool always_fp32 = false;
};

// Every weight of the model, in a stable order: embeddings, then per decoder layer
// (including the MTP layers at indices num_hidden_layers..), then final norm and
// lm_head. Scale tensors of FP8 weights are not listed: see ScaleShape().
std::vector<WeightSpec> ExpectedWeights(const ModelConfig& config);

// Shape of `<weight>_scale_inv` for an FP8 weight of shape [rows, cols]:
// [ceil(rows / block_rows), ceil(cols / block_cols)].
std::vector<int64_t> ScaleShape(const std::vector<int64_t>& weight_shape,
                                const Fp8Quantization& quant);

// "model.layers.<layer>." — the prefix of one decoder (or MTP) layer's weights.
std::string LayerPrefix(int64_t layer);

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_WEIGHT_LAYOUT_H_
