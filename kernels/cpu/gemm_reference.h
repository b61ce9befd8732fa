// Plain-loop reference for Gemm (gemm.h): the oracle of the kernel tests, and the
// kernel itself on CPUs without AVX2 (Isa::kScalar).
#ifndef SWITCHYARD_KERNELS_CPU_GEMM_REFERENCE_H_
#define SWITCHYARD_KERNELS_CPU_GEMM_REFERENCE_H_

#include <cstdint>

#include "kernels/cpu/weight_view.h"

namespace yard::kernels::cpu {

// y[i, j] = sum_k x[i, k] · w[j, k], each weight decoded exactly, products and sums in
// double, rounded to FP32 once at the end.
// With bf16_activations, each activation first goes through what
// ActivationPrecision::kBf16 does to it: BF16 weights use bf16(x[i, k]); FP8 weights
// use bf16(x[i, k] · scale) (the FP32 product, then rounded to BF16) times the FP8
// value; so the vector kernels differ from this only by their FP32 summation.
// x: [m, w.k] fp32, row stride x_stride. y: [m, w.n] fp32, row stride y_stride.
void GemmReference(const float* x, int64_t m, int64_t x_stride, const WeightView& w,
                   float* y, int64_t y_stride, bool bf16_activations = false);

// w[row, col] as FP32 (scale applied for FP8), exactly as GemmReference reads it.
float ReferenceWeight(const WeightView& w, int64_t row, int64_t col);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_GEMM_REFERENCE_H_
