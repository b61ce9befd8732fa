#include "kernels/cpu/elementwise/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "kernels/cpu/elementwise/elementwise_dispatch.h"

namespace yard::kernels::cpu {
namespace {

// HF's yarn_get_mscale.
double GetMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// HF's yarn_find_correction_dim.
double CorrectionDim(double num_rotations, int64_t dim, double base,
                     int64_t original_max_position_embeddings) {
  return static_cast<double>(dim) *
         std::log(static_cast<double>(original_max_position_embeddings) /
                  (num_rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

}  // namespace

absl::StatusOr<RopeTable> RopeTable::Create(const RopeParams& params, int64_t max_positions) {
  if (params.dim <= 0 || params.dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RopeTable: dim must be even and positive, got ", params.dim));
  }
  if (!(params.base > 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("RopeTable: base must be > 1, got ", params.base));
  }
  if (max_positions <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RopeTable: max_positions must be positive, got ", max_positions));
  }
  if (params.yarn && !(params.yarn->factor > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("RopeTable: yarn factor must be positive, got ", params.yarn->factor));
  }
  RopeTable table;
  const int64_t dim = params.dim;
  const int64_t half = dim / 2;
  table.dim_ = dim;
  table.max_positions_ = max_positions;
  table.inv_freq_.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    table.inv_freq_[i] = 1.0 / std::pow(params.base, static_cast<double>(2 * i) / dim);
  }
  if (params.yarn) {
    const YarnParams& y = *params.yarn;
    const double low = std::max(std::floor(CorrectionDim(y.beta_fast, dim, params.base,
                                                         y.original_max_position_embeddings)),
                                0.0);
    double high = std::min(
        std::ceil(CorrectionDim(y.beta_slow, dim, params.base, y.original_max_position_embeddings)),
        static_cast<double>(dim - 1));
    // HF nudges a degenerate ramp so that it does not divide by zero.
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      // HF's inv_freq_mask = 1 - ramp keeps the extrapolated (unscaled) frequency for
      // the fast-rotating pairs below `low`, the interpolated one above `high`.
      const double extra_mask = 1.0 - ramp;
      const double freq_extra = table.inv_freq_[i];
      const double freq_inter = freq_extra / y.factor;
      table.inv_freq_[i] = freq_inter * (1.0 - extra_mask) + freq_extra * extra_mask;
    }
    table.mscale_ = GetMscale(y.factor, y.mscale) / GetMscale(y.factor, y.mscale_all_dim);
  }
  table.cos_.resize(max_positions * dim);
  table.sin_.resize(max_positions * dim);
  for (int64_t p = 0; p < max_positions; ++p) {
    float* c = table.cos_.data() + p * dim;
    float* s = table.sin_.data() + p * dim;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * table.inv_freq_[i];
      const float cv = static_cast<float>(std::cos(angle) * table.mscale_);
      const float sv = static_cast<float>(std::sin(angle) * table.mscale_);
      c[2 * i] = cv;
      c[2 * i + 1] = cv;
      s[2 * i] = -sv;
      s[2 * i + 1] = sv;
    }
  }
  return table;
}

void ApplyRope(const RopeTable& table, const int64_t* positions, int64_t tokens, int64_t heads,
               float* x, int64_t token_stride, int64_t head_stride, ThreadPool* pool) {
  const internal::ElementwiseKernels& k = internal::ActiveElementwiseKernels();
  internal::ForRows(tokens, heads * table.dim(), pool, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t position = positions[t];
      YARD_CHECK(position >= 0 && position < table.max_positions(),
                 "ApplyRope: position outside the table");
      k.rope(x + t * token_stride, heads, head_stride, table.cos(position), table.sin(position),
             table.dim());
    }
  });
}

}  // namespace yard::kernels::cpu
