#include "model/reference/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/check.h"

namespace yard::model::reference {

double YarnGetMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double YarnCorrectionDim(double num_rotations, int64_t dim, double base,
                         int64_t original_max_position_embeddings) {
  return static_cast<double>(dim) *
         std::log(static_cast<double>(original_max_position_embeddings) /
                  (num_rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

Rope::Rope(const ModelConfig& config) {
  const int64_t dim = config.qk_rope_head_dim;
  const int64_t half = dim / 2;
  const double base = config.rope_theta;
  inv_freq_.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    // freq_extra: the unscaled frequency.
    inv_freq_[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / dim);
  }
  if (!config.rope_scaling) return;

  const YarnScaling& y = *config.rope_scaling;
  const double low = std::max(
      std::floor(YarnCorrectionDim(y.beta_fast, dim, base,
                                   y.original_max_position_embeddings)),
      0.0);
  double high = std::min(
      std::ceil(YarnCorrectionDim(y.beta_slow, dim, base,
                                  y.original_max_position_embeddings)),
      static_cast<double>(dim - 1));
  // HF nudges a degenerate ramp so that it does not divide by zero.
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    // HF's inv_freq_mask = 1 - ramp selects the extrapolated (unscaled) frequency for
    // the fast-rotating dims below `low` and the interpolated one above `high`.
    const double extra_mask = 1.0 - ramp;
    const double freq_extra = inv_freq_[i];
    const double freq_inter = freq_extra / y.factor;
    inv_freq_[i] = freq_inter * (1.0 - extra_mask) + freq_extra * extra_mask;
  }
  mscale_ = YarnGetMscale(y.factor, y.mscale) / YarnGetMscale(y.factor, y.mscale_all_dim);
}

void Rope::Apply(int64_t position, absl::Span<float> x) const {
  YARD_CHECK(x.size() == 2 * inv_freq_.size(), "Rope::Apply: wrong length");
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const double angle = static_cast<double>(position) * inv_freq_[i];
    const double c = std::cos(angle) * mscale_;
    const double s = std::sin(angle) * mscale_;
    const double a = x[2 * i];
    const double b = x[2 * i + 1];
    x[2 * i] = static_cast<float>(a * c - b * s);
    x[2 * i + 1] = static_cast<float>(b * c + a * s);
  }
}

}  // namespace yard::model::reference
