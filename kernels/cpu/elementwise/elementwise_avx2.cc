// The elementwise kernels compiled for AVX2 + FMA + F16C; reached only through
// Avx2ElementwiseKernels() after the run-time ISA check (elementwise.cc, rope.cc).
#include "kernels/cpu/elementwise/elementwise_impl.h"
#include "kernels/cpu/elementwise/simd_avx2.h"

namespace yard::kernels::cpu::internal {

ElementwiseKernels Avx2ElementwiseKernels() { return ElementwiseImpl<VecAvx2>::Kernels(); }

}  // namespace yard::kernels::cpu::internal
