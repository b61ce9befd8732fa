// Element types of safetensors checkpoints and exact scalar conversions between them.
//
// The conversions are bit-exact and independent of the FPU rounding mode, so that a
// checkpoint written on one machine reads back identically on another.
#ifndef SWITCHYARD_MODEL_CHECKPOINT_DTYPE_H_
#define SWITCHYARD_MODEL_CHECKPOINT_DTYPE_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace yard::model {

// The element types a switchyard checkpoint may hold. Other safetensors dtypes (I8,
// F64, F8_E5M2, ...) are rejected when a file is opened.
enum class DType { kBF16, kF16, kF32, kF8E4M3 };

// The safetensors name: "BF16", "F16", "F32", "F8_E4M3".
absl::string_view DTypeName(DType dtype);
// The inverse of DTypeName; nullopt for any other string.
std::optional<DType> DTypeFromName(absl::string_view name);
// Bytes per element: 2, 2, 4, 1.
int64_t DTypeSize(DType dtype);

// bfloat16: the upper half of an IEEE binary32.
float Bf16ToF32(uint16_t bits);
// Round to nearest, ties to even; overflow becomes infinity; NaN stays a (quiet) NaN
// with its sign.
uint16_t F32ToBf16(float value);

// IEEE binary16.
float F16ToF32(uint16_t bits);
// Round to nearest, ties to even, subnormals included; |value| >= 65520 becomes
// infinity; NaN stays a quiet NaN with its sign.
uint16_t F32ToF16(float value);

// FP8 e4m3fn (the OCP "E4M3" of DeepSeek-V3's weights): sign, 4 exponent bits with
// bias 7, 3 mantissa bits; no infinities; 0x7F and 0xFF are NaN; max finite ±448.
float Fp8E4M3ToF32(uint8_t bits);
// Round to nearest, ties to even. Finite values beyond ±448 and ±infinity saturate to
// ±448 (as CUDA's satfinite conversion does); NaN becomes 0x7F / 0xFF by sign.
uint8_t F32ToFp8E4M3(float value);

// Converts `count` elements of `dtype` to FP32.
// src: count * DTypeSize(dtype) bytes, little-endian, any alignment.
// dst: count floats.
void ConvertToF32(DType dtype, const uint8_t* src, int64_t count, float* dst);

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_CHECKPOINT_DTYPE_H_
