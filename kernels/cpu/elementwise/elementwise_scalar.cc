// The elementwise kernels compiled for generic x86-64 (the scalar fallback); reached only through
// ScalarElementwiseKernels() after the run-time ISA check (elementwise.cc, rope.cc).
#include "kernels/cpu/elementwise/elementwise_impl.h"
#include "kernels/cpu/elementwise/simd_scalar.h"

namespace yard::kernels::cpu::internal {

ElementwiseKernels ScalarElementwiseKernels() { return ElementwiseImpl<VecScalar>::Kernels(); }

}  // namespace yard::kernels::cpu::internal
