#include "model/checkpoint/dtype.h"

#include <array>
#include <bit>
#include <cstring>

namespace yard::model {
namespace {

// Checkpoint bytes are little-endian; reading them with memcpy assumes the host is too.
static_assert(std::endian::native == std::endian::little);

// Shifts `value` right by `shift` bits, rounding to nearest with ties to even.
uint32_t ShiftRightRoundEven(uint32_t value, int shift) {
  if (shift <= 0) return value;
  if (shift >= 32) return 0;  // value < 2^32 <= half of 2^shift only when shift > 32
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((uint32_t{1} << shift) - 1);
  const uint32_t half = uint32_t{1} << (shift - 1);
  if (rest > half || (rest == half && (kept & 1))) return kept + 1;
  return kept;
}

std::array<float, 256> MakeFp8Table() {
  std::array<float, 256> table{};
  for (int i = 0; i < 256; ++i) table[i] = Fp8E4M3ToF32(static_cast<uint8_t>(i));
  return table;
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
    case DType::kF32:
      return "F32";
    case DType::kF8E4M3:
      return "F8_E4M3";
  }
  return "?";
}

std::optional<DType> DTypeFromName(absl::string_view name) {
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  if (name == "F32") return DType::kF32;
  if (name == "F8_E4M3") return DType::kF8E4M3;
  return std::nullopt;
}

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return 2;
    case DType::kF16:
      return 2;
    case DType::kF32:
      return 4;
    case DType::kF8E4M3:
      return 1;
  }
  return 0;
}

float Bf16ToF32(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t F32ToBf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    // Truncating could clear every payload bit and turn the NaN into infinity.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Adding 0x7FFF (+1 when the kept part is odd) carries exactly when rounding up;
  // a carry out of the largest finite value lands on infinity, as it should.
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float F16ToF32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) {
    return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  }
  if (exponent == 0) {
    // Subnormal (or zero): mantissa * 2^-24, exact in binary32.
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

uint16_t F32ToF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) {
    return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  }
  if (magnitude == 0x7F800000u) return sign | 0x7C00u;
  const int exponent = static_cast<int>(magnitude >> 23) - 127 + 15;  // binary16 bias
  const uint32_t mantissa = magnitude & 0x7FFFFFu;
  if (exponent >= 0x1F) return sign | 0x7C00u;
  if (exponent <= 0) {
    // Subnormal result: the value is (mantissa | implicit 1) * 2^(exponent - 38), and
    // a binary16 subnormal counts units of 2^-24. A round up to 0x400 is the smallest
    // normal number, encoded correctly by the same bits.
    const uint32_t full = magnitude == 0 ? 0 : (mantissa | 0x800000u);
    const int shift = 14 - exponent;
    return static_cast<uint16_t>(sign | ShiftRightRoundEven(full, shift));
  }
  // Rounding may carry into the exponent, and from the largest finite value into
  // infinity (0x7C00): both are the correct results.
  const uint32_t combined = (static_cast<uint32_t>(exponent) << 23) | mantissa;
  return static_cast<uint16_t>(sign | ShiftRightRoundEven(combined, 13));
}

float Fp8E4M3ToF32(uint8_t bits) {
  const bool negative = (bits & 0x80u) != 0;
  const uint32_t exponent = (bits >> 3) & 0xFu;
  const uint32_t mantissa = bits & 0x7u;
  if (exponent == 0xF && mantissa == 0x7) {
    return std::bit_cast<float>((negative ? 0x80000000u : 0u) | 0x7FC00000u);
  }
  float magnitude;
  if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) * 0x1p-9f;
  } else {
    magnitude = std::bit_cast<float>(((exponent + 127 - 7) << 23) | (mantissa << 20));
  }
  return negative ? -magnitude : magnitude;
}

uint8_t F32ToFp8E4M3(float value) {
  constexpr uint8_t kMaxFinite = 0x7E;  // 1.75 * 2^8 = 448
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7Fu;
  const int exponent = static_cast<int>(magnitude >> 23) - 127 + 7;  // e4m3 bias
  const uint32_t mantissa = magnitude & 0x7FFFFFu;
  if (exponent >= 16) return sign | kMaxFinite;  // infinity included
  uint32_t code;
  if (exponent <= 0) {
    // Subnormal: units of 2^-9; the value is (mantissa | 1) * 2^(exponent - 30).
    const uint32_t full = magnitude == 0 ? 0 : (mantissa | 0x800000u);
    code = ShiftRightRoundEven(full, 21 - exponent);
  } else {
    code = ShiftRightRoundEven((static_cast<uint32_t>(exponent) << 23) | mantissa, 20);
  }
  // Codes above 0x7E are NaN (0x7F) or would be 480: saturate.
  if (code > kMaxFinite) code = kMaxFinite;
  return static_cast<uint8_t>(sign | code);
}

void ConvertToF32(DType dtype, const uint8_t* src, int64_t count, float* dst) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(count) * 4);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        dst[i] = Bf16ToF32(bits);
      }
      return;
    case DType::kF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        dst[i] = F16ToF32(bits);
      }
      return;
    case DType::kF8E4M3: {
      static const std::array<float, 256> kTable = MakeFp8Table();
      for (int64_t i = 0; i < count; ++i) dst[i] = kTable[src[i]];
      return;
    }
  }
}

}  // namespace yard::model
