#include "kernels/cpu/elementwise/elementwise.h"

#include "common/check.h"
#include "kernels/cpu/elementwise/elementwise_dispatch.h"

namespace yard::kernels::cpu {

using internal::ActiveElementwiseKernels;
using internal::ElementwiseKernels;
using internal::ForRows;

void RmsNorm(const float* x, int64_t rows, int64_t n, int64_t x_stride, NormWeight weight,
             float eps, float* y, int64_t y_stride, ThreadPool* pool) {
  YARD_CHECK((weight.bf16 == nullptr) != (weight.fp32 == nullptr),
             "RmsNorm: exactly one weight type");
  YARD_CHECK(n > 0 && x_stride >= n && y_stride >= n, "RmsNorm: bad shape");
  const ElementwiseKernels& k = ActiveElementwiseKernels();
  ForRows(rows, n, pool, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      k.rms_norm(x + r * x_stride, n, weight.bf16, weight.fp32, eps, y + r * y_stride);
    }
  });
}

void AddRmsNorm(float* residual, int64_t residual_stride, const float* delta, int64_t delta_stride,
                int64_t rows, int64_t n, NormWeight weight, float eps, float* y, int64_t y_stride,
                ThreadPool* pool) {
  YARD_CHECK((weight.bf16 == nullptr) != (weight.fp32 == nullptr),
             "AddRmsNorm: exactly one weight type");
  YARD_CHECK(n > 0 && residual_stride >= n && delta_stride >= n && y_stride >= n,
             "AddRmsNorm: bad shape");
  const ElementwiseKernels& k = ActiveElementwiseKernels();
  ForRows(rows, 2 * n, pool, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      k.add_rms_norm(residual + r * residual_stride, delta + r * delta_stride, n, weight.bf16,
                     weight.fp32, eps, y + r * y_stride);
    }
  });
}

void SiluMul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
             int64_t rows, int64_t n, float* out, int64_t out_stride, ThreadPool* pool) {
  YARD_CHECK(n >= 0 && gate_stride >= n && up_stride >= n && out_stride >= n, "SiluMul: bad shape");
  const ElementwiseKernels& k = ActiveElementwiseKernels();
  ForRows(rows, 4 * n, pool, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      k.silu_mul(gate + r * gate_stride, up + r * up_stride, n, out + r * out_stride);
    }
  });
}

void SoftmaxRows(float* x, int64_t rows, int64_t n, int64_t stride, ThreadPool* pool) {
  YARD_CHECK(n >= 0 && stride >= n, "SoftmaxRows: bad shape");
  const ElementwiseKernels& k = ActiveElementwiseKernels();
  ForRows(rows, 4 * n, pool, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) k.softmax(x + r * stride, n);
  });
}

void FloatToBf16Row(const float* x, int64_t n, uint16_t* y) {
  ActiveElementwiseKernels().to_bf16(x, n, y);
}

}  // namespace yard::kernels::cpu
