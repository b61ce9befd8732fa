// A linear layer's weight as the checkpoint stores it, borrowed by the CPU kernels.
#ifndef SWITCHYARD_KERNELS_CPU_WEIGHT_VIEW_H_
#define SWITCHYARD_KERNELS_CPU_WEIGHT_VIEW_H_

#include <cstdint>

#include "absl/status/status.h"

namespace yard::kernels::cpu {

enum class WeightType {
  kBf16,
  // e4m3fn: bias 7, no infinities, 0x7F/0xFF NaN, max ±448; with block scales.
  kFp8E4m3,
};

// FP8 weights carry one scale per kFp8BlockSize × kFp8BlockSize block.
inline constexpr int64_t kFp8BlockSize = 128;

// A linear layer's weight, borrowed (typically from a memory-mapped checkpoint; it
// must outlive every Gemm call that uses it). No alignment is required.
struct WeightView {
  WeightType type = WeightType::kBf16;
  // data: [n, k] row-major; BF16 (uint16 bit patterns) or FP8 e4m3fn bytes.
  const void* data = nullptr;
  // Output features (rows of w).
  int64_t n = 0;
  // Input features (columns of w; the reduction dimension).
  int64_t k = 0;
  // scale_inv: [ceil(n / 128), ceil(k / 128)] fp32, row-major; FP8 only (value of
  // w[i, j] = fp8(w[i, j]) × scale_inv[i / 128, j / 128]), nullptr for BF16.
  const float* scale_inv = nullptr;
};

// Checks a view built from checkpoint metadata: non-null data, n, k > 0, FP8 with a
// scale and BF16 without. InvalidArgument otherwise. Gemm itself only DCHECKs.
absl::Status ValidateWeight(const WeightView& w);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_WEIGHT_VIEW_H_
