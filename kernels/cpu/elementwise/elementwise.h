// Row-wise FP32 kernels around the matmuls of a decoder layer: RMSNorm (optionally
// fused with the residual add), SwiGLU's SiLU gating, softmax, and the BF16 rounding
// used to write the latent KV cache. RoPE is in rope.h.
//
// Every call runs on the ISA of ActiveIsa() (cpu_features.h) at call time and splits
// rows over a ThreadPool when there is enough work. Each row is computed by one
// thread in an order fixed by its length, so results are bitwise independent of the
// thread count and of the other rows in the call (batch-invariant), for a given ISA.
// Reductions (sums of squares, softmax sums) accumulate in FP32 lanes, then a fixed
// horizontal tree.
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_H_

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {

// A norm's per-channel weight as the checkpoint stores it (BF16) or widened (FP32).
// Borrowed; must outlive the call.
struct NormWeight {
  // Exactly one is non-null. [n] bf16 bit patterns, or [n] fp32.
  const uint16_t* bf16 = nullptr;
  const float* fp32 = nullptr;

  static NormWeight Bf16(const uint16_t* w) { return NormWeight{w, nullptr}; }
  static NormWeight Fp32(const float* w) { return NormWeight{nullptr, w}; }
};

// y[r, :] = (x[r, :] · inv_rms[r]) · weight, inv_rms = 1 / sqrt(mean(x[r, :]²) + eps)
// (inv_rms computed in double from the FP32 sum of squares).
// x: [rows, n] fp32, row stride x_stride >= n.
// y: [rows, n] fp32, row stride y_stride >= n; may be x itself (in place), must not
//    overlap it otherwise.
// pool: nullptr means DefaultThreadPool().
void RmsNorm(const float* x, int64_t rows, int64_t n, int64_t x_stride, NormWeight weight,
             float eps, float* y, int64_t y_stride, ThreadPool* pool = nullptr);

// The pre-norm residual step of a decoder layer in one pass over the row:
//   residual[r, :] += delta[r, :];  y[r, :] = RmsNorm(residual[r, :]).
// residual: [rows, n] fp32, row stride residual_stride, updated in place.
// delta: [rows, n] fp32, row stride delta_stride.
// y: [rows, n] fp32, row stride y_stride; must not overlap residual or delta.
void AddRmsNorm(float* residual, int64_t residual_stride, const float* delta, int64_t delta_stride,
                int64_t rows, int64_t n, NormWeight weight, float eps, float* y, int64_t y_stride,
                ThreadPool* pool = nullptr);

// SwiGLU's gating: out = silu(gate) · up, silu(g) = g / (1 + e^-g).
// gate, up: [rows, n] fp32, row strides gate_stride, up_stride (they may be the two
//   halves of one fused gate|up matmul output).
// out: [rows, n] fp32, row stride out_stride; may alias gate or up exactly.
void SiluMul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
             int64_t rows, int64_t n, float* out, int64_t out_stride, ThreadPool* pool = nullptr);

// Softmax over each row, in place: x[r, i] = e^(x[r, i] - max) / Σ e^(x[r, :] - max).
// x: [rows, n] fp32, row stride stride. A row whose entries are all -inf has no
// softmax; what it becomes is unspecified.
void SoftmaxRows(float* x, int64_t rows, int64_t n, int64_t stride, ThreadPool* pool = nullptr);

// BF16 bits of x, rounded to nearest even (numerics.h's FloatToBf16, NaN → quiet NaN):
// the rounding the latent KV cache is written with.
// x: [n] fp32; y: [n] bf16 bits.
void FloatToBf16Row(const float* x, int64_t n, uint16_t* y);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_H_
