// Per-ISA register-only loops behind MeasurePeakFlops (peak_flops.cc). Internal.
#ifndef SWITCHYARD_KERNELS_CPU_PEAK_FLOPS_KERNELS_H_
#define SWITCHYARD_KERNELS_CPU_PEAK_FLOPS_KERNELS_H_

#include <cstdint>

namespace yard::kernels::cpu::internal {

// Each runs `iterations` × 12 independent instructions and returns a value that
// depends on all of them (so nothing is optimized away). FLOP per instruction:
// Dpbf16Avx512 64, FmaAvx512 32, FmaAvx2 16.
float Dpbf16Avx512(int64_t iterations, float seed);
float FmaAvx512(int64_t iterations, float seed);
float FmaAvx2(int64_t iterations, float seed);

}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_PEAK_FLOPS_KERNELS_H_
