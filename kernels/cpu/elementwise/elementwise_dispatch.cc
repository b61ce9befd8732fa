#include "kernels/cpu/elementwise/elementwise_dispatch.h"

#include "kernels/cpu/cpu_features.h"

namespace yard::kernels::cpu::internal {
namespace {

// Below this many elements a call stays on the caller's thread.
constexpr int64_t kMinParallelElements = 1 << 15;

}  // namespace

const ElementwiseKernels& ActiveElementwiseKernels() {
  // Each table is built on first use of its ISA only: the builders are compiled with
  // that ISA's flags and may use its instructions even to fill a struct.
  switch (ActiveIsa()) {
    case Isa::kAvx512: {
      static const ElementwiseKernels kAvx512 = Avx512ElementwiseKernels();
      return kAvx512;
    }
    case Isa::kAvx2: {
      static const ElementwiseKernels kAvx2 = Avx2ElementwiseKernels();
      return kAvx2;
    }
    case Isa::kScalar:
      break;
  }
  static const ElementwiseKernels kScalar = ScalarElementwiseKernels();
  return kScalar;
}

void ForRows(int64_t rows, int64_t cost_per_row, ThreadPool* pool,
             absl::FunctionRef<void(int64_t begin, int64_t end)> fn) {
  if (rows <= 0) return;
  ThreadPool& p = pool != nullptr ? *pool : DefaultThreadPool();
  if (rows == 1 || p.num_threads() == 1 || rows * cost_per_row < kMinParallelElements) {
    fn(0, rows);
    return;
  }
  p.ParallelFor(rows, fn);
}

}  // namespace yard::kernels::cpu::internal
