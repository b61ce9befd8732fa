#include "kernels/cpu/numerics.h"

#include <cmath>

#include "gtest/gtest.h"

namespace yard::kernels::cpu {
namespace {

TEST(NumericsTest, Fp8KnownValues) {
  EXPECT_EQ(Fp8E4m3ToFloat(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(Fp8E4m3ToFloat(0x80)));
  EXPECT_EQ(Fp8E4m3ToFloat(0x38), 1.0f);
  EXPECT_EQ(Fp8E4m3ToFloat(0xB8), -1.0f);
  EXPECT_EQ(Fp8E4m3ToFloat(0x7E), 448.0f);
  EXPECT_EQ(Fp8E4m3ToFloat(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(Fp8E4m3ToFloat(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(Fp8E4m3ToFloat(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_TRUE(std::isnan(Fp8E4m3ToFloat(0x7F)));
  EXPECT_TRUE(std::isnan(Fp8E4m3ToFloat(0xFF)));
}

TEST(NumericsTest, Fp8AllCodesMonotoneAndSymmetric) {
  float previous = -1.0f;
  for (int code = 0; code < 0x7F; ++code) {
    const float v = Fp8E4m3ToFloat(static_cast<uint8_t>(code));
    EXPECT_GT(v, previous) << code;
    EXPECT_EQ(Fp8E4m3ToFloat(static_cast<uint8_t>(code | 0x80)), -v) << code;
    previous = v;
  }
}

TEST(NumericsTest, Bf16RoundTripAndRounding) {
  for (float v : {0.0f, 1.0f, -2.5f, 3.0e38f, 1e-38f}) {
    EXPECT_EQ(Bf16ToFloat(FloatToBf16(Bf16ToFloat(FloatToBf16(v)))),
              Bf16ToFloat(FloatToBf16(v)));
  }
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
  EXPECT_EQ(FloatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
}

}  // namespace
}  // namespace yard::kernels::cpu
