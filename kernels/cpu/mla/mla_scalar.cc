// The MLA attention and kv_b_proj absorption kernels compiled for generic x86-64 (the scalar
// fallback); reached only through ScalarMlaKernel() / ScalarAbsorbKernel() after the run-time ISA
// check (mla_dispatch.cc).
#include "kernels/cpu/elementwise/simd_scalar.h"
#include "kernels/cpu/mla/absorb_impl.h"
#include "kernels/cpu/mla/mla_impl.h"

namespace yard::kernels::cpu::internal {

MlaKernel ScalarMlaKernel() { return MlaImpl<VecScalar>::Kernel(); }

AbsorbKernel ScalarAbsorbKernel() { return AbsorbImpl<VecScalar>::Kernel(); }

}  // namespace yard::kernels::cpu::internal
