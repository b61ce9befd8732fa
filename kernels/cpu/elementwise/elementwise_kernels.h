// The interface between the elementwise dispatchers (elementwise.cc, rope.cc; generic
// x86-64) and their per-ISA bodies (elementwise_{avx512,avx2,scalar}.cc, each an
// instantiation of elementwise_impl.h). Internal to kernels/cpu/elementwise.
//
// Only plain declarations live here (see gemm_kernels.h for why). Each function
// handles one row; the dispatchers split rows over threads.
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_KERNELS_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_KERNELS_H_

#include <cstdint>

namespace yard::kernels::cpu::internal {

struct ElementwiseKernels {
  // x, y: [n] fp32 (y may be x). Exactly one of w_bf16 / w_fp32 is non-null: [n].
  void (*rms_norm)(const float* x, int64_t n, const uint16_t* w_bf16, const float* w_fp32,
                   float eps, float* y);
  // residual += delta, y = RmsNorm(residual). residual, delta, y: [n] fp32.
  void (*add_rms_norm)(float* residual, const float* delta, int64_t n, const uint16_t* w_bf16,
                       const float* w_fp32, float eps, float* y);
  // out = silu(gate) · up. All [n] fp32; out may alias gate or up.
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // In place. x: [n] fp32.
  void (*softmax)(float* x, int64_t n);
  // x: [n] fp32 → y: [n] bf16 bits.
  void (*to_bf16)(const float* x, int64_t n, uint16_t* y);
  // Rotates `heads` slices x + h · head_stride, each [dim] fp32 interleaved pairs, by
  // cos_dup / sin_signed: [dim] fp32 (RopeTable's layout).
  void (*rope)(float* x, int64_t heads, int64_t head_stride, const float* cos_dup,
               const float* sin_signed, int64_t dim);
};

ElementwiseKernels Avx512ElementwiseKernels();
ElementwiseKernels Avx2ElementwiseKernels();
ElementwiseKernels ScalarElementwiseKernels();

}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_KERNELS_H_
