// Picks the MLA kernel tables of the ISA active now, and per-thread scratch.
// Internal to kernels/cpu/mla.
#ifndef SWITCHYARD_KERNELS_CPU_MLA_MLA_DISPATCH_H_
#define SWITCHYARD_KERNELS_CPU_MLA_MLA_DISPATCH_H_

#include <cstddef>

#include "kernels/cpu/mla/mla_kernels.h"

namespace yard::kernels::cpu::internal {

// The kernels for ActiveIsa().
const MlaKernel& ActiveMlaKernel();
const AbsorbKernel& ActiveAbsorbKernel();

// A per-thread float buffer of at least `floats` elements, grown on demand and kept
// for the thread's lifetime, so steady-state calls never allocate. One per thread:
// a caller must not hold it across a call that may use it again.
float* MlaThreadScratch(size_t floats);

}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_MLA_MLA_DISPATCH_H_
