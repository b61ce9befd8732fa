#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/cpu/gemm_reference.h"

namespace yard::kernels::cpu {
namespace {

// Weight rows per unit of the split between threads: a multiple of every tile
// height, small enough to balance odd n.
constexpr int64_t kRowsPerUnit = 16;
// Rows of x per unit when splitting over m instead (few weight rows, many tokens).
constexpr int64_t kTokensPerUnit = 16;
// Below this many multiply-adds a call runs on the caller alone: waking the pool
// (~2-5 µs) costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 16;

// Per-thread scratch, grown on demand and kept for the thread's lifetime (at most a
// few MiB), so steady-state calls never allocate.
void* ThreadScratch(size_t bytes) {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<void, Free> buffer;
  thread_local size_t capacity = 0;
  if (capacity < bytes) {
    capacity = (bytes + 4095) / 4096 * 4096;
    buffer.reset(std::aligned_alloc(64, capacity));
  }
  return buffer.get();
}

internal::GemmArgs MakeArgs(Isa isa, const float* x, int64_t m, int64_t x_stride,
                            const WeightView& w, float* y, int64_t y_stride,
                            const GemmOptions& options) {
  const bool bf16_activations =
      isa == Isa::kAvx512 && ResolvePrecision(options, m) == ActivationPrecision::kBf16;
  return internal::GemmArgs{
      .x = x,
      .x_stride = x_stride,
      .m = m,
      .w = w.data,
      .fp8 = w.type == WeightType::kFp8E4m3,
      .scale_inv = w.scale_inv,
      .n = w.n,
      .k = w.k,
      .y = y,
      .y_stride = y_stride,
      .bf16_activations = bf16_activations,
  };
}

internal::GemmKernel KernelFor(Isa isa) {
  return isa == Isa::kAvx512 ? internal::Avx512GemmKernel() : internal::Avx2GemmKernel();
}

}  // namespace

ActivationPrecision ResolvePrecision(const GemmOptions& options, int64_t rows) {
  if (options.precision != ActivationPrecision::kAuto) return options.precision;
  return std::min(rows, options.bf16_row_limit) >= options.bf16_min_rows
             ? ActivationPrecision::kBf16
             : ActivationPrecision::kFp32;
}

void Gemm(const float* x, int64_t m, int64_t x_stride, const WeightView& w, float* y,
          int64_t y_stride, const GemmOptions& options) {
  assert(ValidateWeight(w).ok());
  assert(x_stride >= w.k && y_stride >= w.n);
  if (m <= 0) return;
  const Isa isa = ActiveIsa();
  if (isa == Isa::kScalar) {
    GemmReference(x, m, x_stride, w, y, y_stride);
    return;
  }
  if (options.precision == ActivationPrecision::kAuto && options.bf16_row_limit < m &&
      ResolvePrecision(options, m) == ActivationPrecision::kBf16) {
    // Prefill rows in BF16, then the decode rows after them in FP32.
    const int64_t head = options.bf16_row_limit;
    GemmOptions part = options;
    part.precision = ActivationPrecision::kBf16;
    Gemm(x, head, x_stride, w, y, y_stride, part);
    part.precision = ActivationPrecision::kFp32;
    Gemm(x + head * x_stride, m - head, x_stride, w, y + head * y_stride, y_stride, part);
    return;
  }
  const internal::GemmArgs args = MakeArgs(isa, x, m, x_stride, w, y, y_stride, options);
  const internal::GemmKernel kernel = KernelFor(isa);
  ThreadPool& pool = options.pool != nullptr ? *options.pool : DefaultThreadPool();

  const int64_t n_units = (w.n + kRowsPerUnit - 1) / kRowsPerUnit;
  const int64_t m_units = (m + kTokensPerUnit - 1) / kTokensPerUnit;
  if (pool.num_threads() == 1 || m * w.n * w.k < kMinParallelMacs ||
      (n_units == 1 && m_units == 1)) {
    kernel.run(args, 0, m, 0, w.n, ThreadScratch(kernel.scratch_bytes(args, m)));
    return;
  }
  if (n_units >= pool.num_threads() || m_units < n_units) {
    // Every thread reads a disjoint slice of the weight once, for all rows of x.
    const size_t scratch = kernel.scratch_bytes(args, m);
    pool.ParallelFor(n_units, [&](int64_t begin, int64_t end) {
      kernel.run(args, 0, m, begin * kRowsPerUnit,
                 std::min(end * kRowsPerUnit, w.n), ThreadScratch(scratch));
    });
  } else {
    // Few weight rows (e.g. a router gate) and many tokens: split the tokens.
    pool.ParallelFor(m_units, [&](int64_t begin, int64_t end) {
      const int64_t m_begin = begin * kTokensPerUnit;
      const int64_t m_end = std::min(end * kTokensPerUnit, m);
      kernel.run(args, m_begin, m_end, 0, w.n,
                 ThreadScratch(kernel.scratch_bytes(args, m_end - m_begin)));
    });
  }
}

void GemmBatch(absl::Span<const GemmProblem> problems, const GemmOptions& options) {
  const Isa isa = ActiveIsa();
  if (isa == Isa::kScalar) {
    for (const GemmProblem& p : problems) {
      if (p.m > 0) GemmReference(p.x, p.m, p.x_stride, p.w, p.y, p.y_stride);
    }
    return;
  }
  assert(options.precision != ActivationPrecision::kAuto ||
         options.bf16_row_limit == std::numeric_limits<int64_t>::max());
  const internal::GemmKernel kernel = KernelFor(isa);
  // Units of kRowsPerUnit weight rows, numbered across the problems in order.
  std::vector<internal::GemmArgs> args;
  std::vector<int64_t> first_unit;  // [problems + 1]
  args.reserve(problems.size());
  first_unit.reserve(problems.size() + 1);
  int64_t units = 0;
  size_t scratch = 0;
  for (const GemmProblem& p : problems) {
    assert(ValidateWeight(p.w).ok());
    assert(p.x_stride >= p.w.k && p.y_stride >= p.w.n);
    args.push_back(MakeArgs(isa, p.x, p.m, p.x_stride, p.w, p.y, p.y_stride, options));
    first_unit.push_back(units);
    if (p.m > 0) units += (p.w.n + kRowsPerUnit - 1) / kRowsPerUnit;
    scratch = std::max(scratch, kernel.scratch_bytes(args.back(), std::max<int64_t>(p.m, 1)));
  }
  first_unit.push_back(units);
  if (units == 0) return;
  ThreadPool& pool = options.pool != nullptr ? *options.pool : DefaultThreadPool();
  pool.ParallelFor(units, [&](int64_t begin, int64_t end) {
    void* buffer = ThreadScratch(scratch);
    size_t i = std::upper_bound(first_unit.begin(), first_unit.end(), begin) -
               first_unit.begin() - 1;
    for (int64_t unit = begin; unit < end; ++i) {
      const internal::GemmArgs& a = args[i];
      const int64_t last = std::min(end, first_unit[i + 1]);
      if (last > unit && a.m > 0) {
        const int64_t row_begin = (unit - first_unit[i]) * kRowsPerUnit;
        const int64_t row_end = std::min((last - first_unit[i]) * kRowsPerUnit, a.n);
        kernel.run(a, 0, a.m, row_begin, row_end, buffer);
      }
      unit = std::max(unit, last);
    }
  });
}

}  // namespace yard::kernels::cpu
