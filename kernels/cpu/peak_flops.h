// The cores' arithmetic peak, measured with register-only loops (no memory
// traffic): the bound that prefill is judged against.
#ifndef SWITCHYARD_KERNELS_CPU_PEAK_FLOPS_H_
#define SWITCHYARD_KERNELS_CPU_PEAK_FLOPS_H_

#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {

struct PeakFlops {
  // vdpbf16ps on 512-bit vectors: 32 multiply-adds (64 FLOP) per instruction.
  // 0 when the CPU lacks AVX-512 BF16.
  double bf16_flops_per_second = 0.0;
  // FP32 FMA on the widest vectors of the active ISA (512 or 256 bits).
  double fp32_flops_per_second = 0.0;
};

// Runs independent chains of each instruction on every thread of `pool` (nullptr:
// DefaultThreadPool()) for about `seconds_per_kind` each, `repetitions` times, and
// returns the best rates.
PeakFlops MeasurePeakFlops(ThreadPool* pool = nullptr, double seconds_per_kind = 0.2,
                           int repetitions = 3);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_PEAK_FLOPS_H_
