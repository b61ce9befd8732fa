// Rotary position embedding with DeepSeek's YaRN scaling, as in the Hugging Face
// DeepSeek-V2/V3 modeling code, applied to the interleaved pairs the checkpoints
// store.
#ifndef SWITCHYARD_MODEL_REFERENCE_ROPE_H_
#define SWITCHYARD_MODEL_REFERENCE_ROPE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "model/config.h"

namespace yard::model::reference {

// HF's yarn_get_mscale: 1 when scale <= 1, else 0.1 * mscale * ln(scale) + 1.
double YarnGetMscale(double scale, double mscale);

// HF's yarn_find_correction_dim: the rotary dimension whose wavelength completes
// `num_rotations` turns over the original context.
double YarnCorrectionDim(double num_rotations, int64_t dim, double base,
                         int64_t original_max_position_embeddings);

// The rotary frequencies of one attention layer. Immutable; thread-compatible.
class Rope {
 public:
  // dim = config.qk_rope_head_dim. Without rope_scaling: inv_freq[i] = base^(-2i/dim)
  // and mscale 1. With YaRN: inv_freq blends the interpolated (/factor) and
  // extrapolated frequencies with HF's linear ramp between the correction dims of
  // beta_fast and beta_slow, and cos/sin are multiplied by
  // get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim).
  explicit Rope(const ModelConfig& config);

  // [dim / 2] fp64: the angle per position of pair i.
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  double mscale() const { return mscale_; }

  // Rotates x in place for `position`: each interleaved pair (x[2i], x[2i+1]) turns by
  // position * inv_freq[i] and is scaled by mscale. HF de-interleaves the pairs and
  // uses rotate_half; the result is the same vector with its entries permuted, and
  // since q and k get the same permutation every q·k dot product is identical.
  // x: [dim] fp32, interleaved pairs.
  void Apply(int64_t position, absl::Span<float> x) const;

 private:
  std::vector<double> inv_freq_;
  double mscale_ = 1.0;
};

}  // namespace yard::model::reference

#endif  // SWITCHYARD_MODEL_REFERENCE_ROPE_H_
