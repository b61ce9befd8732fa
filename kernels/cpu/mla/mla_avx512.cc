// The MLA attention and kv_b_proj absorption kernels compiled for AVX-512;
// reached only through Avx512MlaKernel() / Avx512AbsorbKernel() after the run-time ISA
// check (mla_dispatch.cc).
#include "kernels/cpu/elementwise/simd_avx512.h"
#include "kernels/cpu/mla/absorb_impl.h"
#include "kernels/cpu/mla/mla_impl.h"

namespace yard::kernels::cpu::internal {

MlaKernel Avx512MlaKernel() { return MlaImpl<VecAvx512>::Kernel(); }

AbsorbKernel Avx512AbsorbKernel() { return AbsorbImpl<VecAvx512>::Kernel(); }

}  // namespace yard::kernels::cpu::internal
