// Picks the elementwise kernel table of the ISA active now. Internal to
// kernels/cpu/elementwise (elementwise.cc and rope.cc share it).
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_DISPATCH_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_DISPATCH_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "kernels/cpu/elementwise/elementwise_kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu::internal {

// The kernels for ActiveIsa().
const ElementwiseKernels& ActiveElementwiseKernels();

// Runs fn(begin, end) over [0, rows): on the caller alone when rows · cost_per_row is
// small (waking the pool costs a few microseconds), else split over the pool.
void ForRows(int64_t rows, int64_t cost_per_row, ThreadPool* pool,
             absl::FunctionRef<void(int64_t begin, int64_t end)> fn);

}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_DISPATCH_H_
