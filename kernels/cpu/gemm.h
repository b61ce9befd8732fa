// Dense matmul against a linear layer's weight as stored in the checkpoint:
//   y[m, n] = x[m, k] · wᵀ
// with w in the Hugging Face layout ([out_features, in_features], row-major),
// memory-mapped and never repacked: BF16, or FP8 e4m3fn with one FP32 scale per
// 128×128 block (DeepSeek-V3's `weight_scale_inv`, value = fp8 × scale). Weights are
// widened in registers (FP8 → FP16 bit trick → FP32); no FP32/BF16 copy of a weight
// matrix is ever kept (the BF16-activation path decodes an FP8 panel of at most
// 128 rows × 2048 columns into a per-thread scratch, reused for all rows of x).
//
// One call runs on a ThreadPool, split over output features (or over rows of x when
// there are few features). Every output element is computed by exactly one thread,
// over k in an order fixed by k alone (not by m, by the split, or by the thread
// count): with ActivationPrecision::kFp32, row i of y is bitwise the same whether x
// has 1 row or 64 and whatever the pool size, for a given ISA (see cpu_features.h;
// AVX2 and AVX-512 round differently).
#ifndef SWITCHYARD_KERNELS_CPU_GEMM_H_
#define SWITCHYARD_KERNELS_CPU_GEMM_H_

#include <cstdint>
#include <limits>

#include "absl/types/span.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_view.h"

namespace yard::kernels::cpu {

// How x enters the dot products.
enum class ActivationPrecision {
  // FP32 activations times weights widened to FP32 (FMA). The per-element reduction
  // order is the same for every m: use this for --deterministic.
  kFp32,
  // Activations rounded to BF16 (FP8: bf16(x × block scale)) and multiplied with
  // vdpbf16ps, FP32 accumulation: about twice the FLOP/s of kFp32 for large m, with
  // an error like that of storing the activations in BF16 (relative 2^-9 per
  // element). Needs AVX-512 BF16; on other ISAs it means kFp32.
  kBf16,
  // kBf16 for the rows of prefill chunks when there are at least
  // GemmOptions::bf16_min_rows of them, kFp32 for the rest (decode tokens: their
  // activations feed expert routing, which BF16 rounding perturbs; see
  // engine/fast_model.cc). Not batch-invariant: a row's result depends on the batch.
  kAuto,
};

struct GemmOptions {
  ActivationPrecision precision = ActivationPrecision::kAuto;
  // The smallest m for which kAuto picks BF16 activations. BF16 is faster from m = 4
  // on (gemm_bench); the engine keeps FP32 below 128 rows for accuracy.
  int64_t bf16_min_rows = 128;
  // kAuto: only rows [0, bf16_row_limit) of x may take BF16, the rows of prefill chunks,
  // which the caller places first; the rows after them (decode tokens sharing the
  // step) keep FP32 whatever m. Gemm then runs the two parts as two calls, reading the
  // weights twice. GemmBatch does not split: give it a resolved precision instead.
  int64_t bf16_row_limit = std::numeric_limits<int64_t>::max();
  // Threads to run on; nullptr means DefaultThreadPool(). Must outlive the call.
  ThreadPool* pool = nullptr;
};

// kFp32 or kBf16: the path options.precision takes for the leading rows of a call of
// `rows` rows of x (kAuto: BF16 when min(rows, bf16_row_limit) >= bf16_min_rows; rows
// past bf16_row_limit keep FP32). kBf16 still runs as kFp32 below AVX-512.
ActivationPrecision ResolvePrecision(const GemmOptions& options, int64_t rows);

// y[i, j] = sum_k x[i, k] · w[j, k] for i < m, j < w.n.
// x: [m, w.k] fp32, row-major, row stride x_stride >= w.k elements.
// y: [m, w.n] fp32, row-major, row stride y_stride >= w.n elements; overwritten; must
//    not overlap x or w.
// m may be 0 (no-op). Runs on the ISA of ActiveIsa() at call time.
void Gemm(const float* x, int64_t m, int64_t x_stride, const WeightView& w, float* y,
          int64_t y_stride, const GemmOptions& options = {});

// Gemm with contiguous rows: x_stride = w.k, y_stride = w.n.
inline void Gemm(const float* x, int64_t m, const WeightView& w, float* y,
                 const GemmOptions& options = {}) {
  Gemm(x, m, w.k, w, y, w.n, options);
}

// One matmul of a GemmBatch: y = x · wᵀ with Gemm's layouts and rules.
struct GemmProblem {
  const float* x = nullptr;  // [m, w.k] fp32, row stride x_stride
  int64_t m = 0;
  int64_t x_stride = 0;
  WeightView w;
  float* y = nullptr;  // [m, w.n] fp32, row stride y_stride; must not overlap any x or w
  int64_t y_stride = 0;
};

// Several independent matmuls in one pass over the pool: the weight rows of all of
// them are split between the threads together, so many small matrices (the routed
// experts of a decode step) stream like one large one instead of paying a pool call
// and a ramp-up each. Every output element is computed exactly as Gemm would (same
// kernel, same order over k, same activation precision for that problem's m), so the
// results are bitwise those of separate Gemm calls.
void GemmBatch(absl::Span<const GemmProblem> problems, const GemmOptions& options = {});

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_GEMM_H_
