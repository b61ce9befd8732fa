// Exact scalar conversions of the weight element types the CPU kernels read. Used by
// the reference kernels and the tests; the vector kernels decode in registers.
#ifndef SWITCHYARD_KERNELS_CPU_NUMERICS_H_
#define SWITCHYARD_KERNELS_CPU_NUMERICS_H_

#include <cstdint>

namespace yard::kernels::cpu {

// bfloat16 bits → the FP32 value (the upper half of a binary32).
float Bf16ToFloat(uint16_t bits);
// FP32 → bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
uint16_t FloatToBf16(float value);
// FP8 e4m3fn bits → the exact FP32 value: subnormals 2^-9 · m, max ±448, 0x7F and
// 0xFF are NaN.
float Fp8E4m3ToFloat(uint8_t bits);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_NUMERICS_H_
