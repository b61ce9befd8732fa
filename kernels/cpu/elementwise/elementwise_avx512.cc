// The elementwise kernels compiled for AVX-512; reached only through
// Avx512ElementwiseKernels() after the run-time ISA check (elementwise.cc, rope.cc).
#include "kernels/cpu/elementwise/elementwise_impl.h"
#include "kernels/cpu/elementwise/simd_avx512.h"

namespace yard::kernels::cpu::internal {

ElementwiseKernels Avx512ElementwiseKernels() { return ElementwiseImpl<VecAvx512>::Kernels(); }

}  // namespace yard::kernels::cpu::internal
