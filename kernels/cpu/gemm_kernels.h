// The interface between Gemm's dispatcher (gemm.cc, generic x86-64) and its
// per-ISA kernels (gemm_avx512.cc, gemm_avx2.cc, each compiled with its own -m
// flags). Internal to kernels/cpu.
//
// Only plain declarations live here: an inline function or template included into
// an ISA translation unit could be emitted with that ISA's instructions and picked by
// the linker for generic code, which would then fault on older CPUs.
#ifndef SWITCHYARD_KERNELS_CPU_GEMM_KERNELS_H_
#define SWITCHYARD_KERNELS_CPU_GEMM_KERNELS_H_

#include <cstddef>
#include <cstdint>

namespace yard::kernels::cpu::internal {

struct GemmArgs {
  // x: [m, k] fp32, row stride x_stride.
  const float* x;
  int64_t x_stride;
  int64_t m;
  // w: [n, k] row-major, BF16 bits or FP8 e4m3fn bytes.
  const void* w;
  bool fp8;
  // scale_inv: [ceil(n / 128), ceil(k / 128)] fp32 (FP8 only).
  const float* scale_inv;
  int64_t n;
  int64_t k;
  // y: [m, n] fp32, row stride y_stride.
  float* y;
  int64_t y_stride;
  // Round activations to BF16 and use vdpbf16ps (AVX-512 only).
  bool bf16_activations;
};

// Computes y[m_begin:m_end, n_begin:n_end]. `scratch` is 64-byte aligned, at least
// scratch_bytes(args, m_end - m_begin) bytes, and used by this call only.
struct GemmKernel {
  void (*run)(const GemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin,
              int64_t n_end, void* scratch);
  size_t (*scratch_bytes)(const GemmArgs& args, int64_t rows);
};

GemmKernel Avx512GemmKernel();
GemmKernel Avx2GemmKernel();

}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_GEMM_KERNELS_H_
