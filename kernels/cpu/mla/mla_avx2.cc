// The MLA attention and kv_b_proj absorption kernels compiled for AVX2 + FMA + F16C;
// reached only through Avx2MlaKernel() / Avx2AbsorbKernel() after the run-time ISA
// check (mla_dispatch.cc).
#include "kernels/cpu/elementwise/simd_avx2.h"
#include "kernels/cpu/mla/absorb_impl.h"
#include "kernels/cpu/mla/mla_impl.h"

namespace yard::kernels::cpu::internal {

MlaKernel Avx2MlaKernel() { return MlaImpl<VecAvx2>::Kernel(); }

AbsorbKernel Avx2AbsorbKernel() { return AbsorbImpl<VecAvx2>::Kernel(); }

}  // namespace yard::kernels::cpu::internal
