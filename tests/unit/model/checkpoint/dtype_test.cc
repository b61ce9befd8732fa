#include "model/checkpoint/dtype.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace yard::model {
namespace {

TEST(DTypeTest, NamesAndSizes) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32, DType::kF8E4M3}) {
    EXPECT_EQ(DTypeFromName(DTypeName(d)), d);
  }
  EXPECT_EQ(DTypeName(DType::kF8E4M3), "F8_E4M3");
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
  EXPECT_EQ(DTypeSize(DType::kF16), 2);
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kF8E4M3), 1);
  EXPECT_FALSE(DTypeFromName("F64").has_value());
  EXPECT_FALSE(DTypeFromName("bf16").has_value());
  EXPECT_FALSE(DTypeFromName("F8_E5M2").has_value());
}

TEST(DTypeTest, Bf16AllCodesRoundTrip) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const float f = Bf16ToF32(static_cast<uint16_t>(code));
    const uint16_t back = F32ToBf16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Bf16ToF32(back))) << code;
      EXPECT_EQ(back & 0x8000, code & 0x8000) << code;
    } else {
      EXPECT_EQ(back, code);
    }
  }
}

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even code (1.0).
  EXPECT_EQ(F32ToBf16(1.0f + 0x1p-8f), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between codes 0x3F81 and 0x3F82: even is 0x3F82.
  EXPECT_EQ(F32ToBf16(1.0f + 3 * 0x1p-8f), 0x3F82);
  EXPECT_EQ(F32ToBf16(std::nextafter(1.0f + 0x1p-8f, 2.0f)), 0x3F81);
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds to inf
  EXPECT_EQ(F32ToBf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  // A NaN whose payload lives only in the dropped bits must stay a NaN.
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(std::bit_cast<float>(0x7F800001u)))));
  EXPECT_EQ(F32ToBf16(std::bit_cast<float>(0xFF800001u)) & 0x8000, 0x8000);
}

TEST(DTypeTest, F16AllCodesRoundTrip) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const float f = F16ToF32(static_cast<uint16_t>(code));
    const uint16_t back = F32ToF16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(back))) << code;
    } else {
      EXPECT_EQ(back, code);
    }
  }
}

TEST(DTypeTest, F16KnownValues) {
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), 0x1p-24f);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);         // halfway to the next binade: infinity
  EXPECT_EQ(F32ToF16(0x1p-25f), 0x0000);         // tie between 0 and 2^-24: even is 0
  EXPECT_EQ(F32ToF16(1.5f * 0x1p-24f), 0x0002);  // tie between 1 and 2 units: 2
  EXPECT_EQ(F32ToF16(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

#ifdef __FLT16_MAX__
// The compiler's own binary16 conversion is correctly rounded: compare on a sweep of
// binary32 bit patterns that covers every exponent.
TEST(DTypeTest, F16MatchesCompilerConversion) {
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 4093) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(bits));
    const _Float16 h = static_cast<_Float16>(f);
    const uint16_t expected = std::bit_cast<uint16_t>(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), expected) << std::hex << bits;
  }
}
#endif

TEST(DTypeTest, Fp8AllCodesRoundTrip) {
  for (int code = 0; code < 256; ++code) {
    const float f = Fp8E4M3ToF32(static_cast<uint8_t>(code));
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(f)) << code;
      EXPECT_EQ(F32ToFp8E4M3(f), code);
      continue;
    }
    EXPECT_FALSE(std::isnan(f) || std::isinf(f)) << code;
    EXPECT_EQ(F32ToFp8E4M3(f), code) << code << " = " << f;
  }
}

TEST(DTypeTest, Fp8KnownValues) {
  EXPECT_EQ(Fp8E4M3ToF32(0x38), 1.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0x7E), 448.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0xFE), -448.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0x08), 0x1p-6f);  // smallest normal
  EXPECT_EQ(Fp8E4M3ToF32(0x01), 0x1p-9f);  // smallest subnormal
  EXPECT_EQ(Fp8E4M3ToF32(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(Fp8E4M3ToF32(0x80), 0.0f);
  EXPECT_TRUE(std::signbit(Fp8E4M3ToF32(0x80)));
}

TEST(DTypeTest, Fp8RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(F32ToFp8E4M3(1.0625f), 0x38);  // tie between 1 (even) and 1.125
  EXPECT_EQ(F32ToFp8E4M3(1.1875f), 0x3A);  // tie between 1.125 and 1.25 (even)
  EXPECT_EQ(F32ToFp8E4M3(std::nextafter(1.0625f, 2.0f)), 0x39);
  EXPECT_EQ(F32ToFp8E4M3(0x1p-10f), 0x00);       // tie between 0 and 2^-9
  EXPECT_EQ(F32ToFp8E4M3(3 * 0x1p-10f), 0x02);   // tie between 1 and 2 units
  EXPECT_EQ(F32ToFp8E4M3(15 * 0x1p-10f), 0x08);  // rounds up into the normals
  EXPECT_EQ(F32ToFp8E4M3(1e-30f), 0x00);
  EXPECT_EQ(F32ToFp8E4M3(-1e-30f), 0x80);
  EXPECT_EQ(F32ToFp8E4M3(460.0f), 0x7E);
  EXPECT_EQ(F32ToFp8E4M3(464.0f), 0x7E);
  EXPECT_EQ(F32ToFp8E4M3(1000.0f), 0x7E);
  EXPECT_EQ(F32ToFp8E4M3(-1e30f), 0xFE);
  EXPECT_EQ(F32ToFp8E4M3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(F32ToFp8E4M3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(F32ToFp8E4M3(std::numeric_limits<float>::quiet_NaN()), 0x7F);
}

// F32ToFp8E4M3 returns the nearest code (ties to even) for finite inputs in range.
TEST(DTypeTest, Fp8IsNearest) {
  std::vector<float> codes;  // the non-negative finite values, ascending
  for (int c = 0; c <= 0x7E; ++c) codes.push_back(Fp8E4M3ToF32(static_cast<uint8_t>(c)));
  for (uint32_t bits = 0; bits < 0x43E00000u; bits += 1021) {  // [0, 448]
    const float f = std::bit_cast<float>(bits);
    const int got = F32ToFp8E4M3(f);
    const double err = std::fabs(static_cast<double>(codes[got]) - f);
    for (int c = 0; c <= 0x7E; ++c) {
      const double other = std::fabs(static_cast<double>(codes[c]) - f);
      ASSERT_TRUE(other > err || (other == err && (c == got || (got & 1) == 0)))
          << f << " -> " << codes[got] << ", but " << codes[c] << " is nearer";
    }
    EXPECT_EQ(F32ToFp8E4M3(-f), got | 0x80);
  }
}

TEST(DTypeTest, ConvertToF32MatchesScalarsOnUnalignedInput) {
  std::vector<uint8_t> raw(1 + 4 * 64);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 37 + 11);
  const uint8_t* src = raw.data() + 1;
  float out[64];
  ConvertToF32(DType::kBF16, src, 64, out);
  for (int i = 0; i < 64; ++i) {
    uint16_t bits;
    std::memcpy(&bits, src + 2 * i, 2);
    EXPECT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(Bf16ToF32(bits)));
  }
  ConvertToF32(DType::kF16, src, 64, out);
  for (int i = 0; i < 64; ++i) {
    uint16_t bits;
    std::memcpy(&bits, src + 2 * i, 2);
    EXPECT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(F16ToF32(bits)));
  }
  ConvertToF32(DType::kF8E4M3, src, 64, out);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(out[i]),
              std::bit_cast<uint32_t>(Fp8E4M3ToF32(src[i])));
  }
  ConvertToF32(DType::kF32, src, 64, out);
  EXPECT_EQ(std::memcmp(out, src, 256), 0);
}

}  // namespace
}  // namespace yard::model
