#include "kernels/cpu/gemm_reference.h"

#include "kernels/cpu/numerics.h"

namespace yard::kernels::cpu {
namespace {

float Fp8Scale(const WeightView& w, int64_t row, int64_t col) {
  const int64_t scale_cols = (w.k + kFp8BlockSize - 1) / kFp8BlockSize;
  return w.scale_inv[(row / kFp8BlockSize) * scale_cols + col / kFp8BlockSize];
}

}  // namespace

float ReferenceWeight(const WeightView& w, int64_t row, int64_t col) {
  if (w.type == WeightType::kBf16) {
    return Bf16ToFloat(static_cast<const uint16_t*>(w.data)[row * w.k + col]);
  }
  const float value =
      Fp8E4m3ToFloat(static_cast<const uint8_t*>(w.data)[row * w.k + col]);
  return value * Fp8Scale(w, row, col);
}

void GemmReference(const float* x, int64_t m, int64_t x_stride, const WeightView& w,
                   float* y, int64_t y_stride, bool bf16_activations) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * x_stride;
    for (int64_t j = 0; j < w.n; ++j) {
      double sum = 0.0;
      for (int64_t c = 0; c < w.k; ++c) {
        if (!bf16_activations) {
          sum += static_cast<double>(xi[c]) * ReferenceWeight(w, j, c);
        } else if (w.type == WeightType::kBf16) {
          sum += static_cast<double>(Bf16ToFloat(FloatToBf16(xi[c]))) *
                 ReferenceWeight(w, j, c);
        } else {
          const float scaled = xi[c] * Fp8Scale(w, j, c);
          const float fp8 =
              Fp8E4m3ToFloat(static_cast<const uint8_t*>(w.data)[j * w.k + c]);
          sum += static_cast<double>(Bf16ToFloat(FloatToBf16(scaled))) * fp8;
        }
      }
      y[i * y_stride + j] = static_cast<float>(sum);
    }
  }
}

}  // namespace yard::kernels::cpu
