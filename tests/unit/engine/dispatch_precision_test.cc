#include "engine/dispatch_precision.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace yard::engine {
namespace {

TEST(DispatchPrecisionTest, ParsesNamesAndRejectsOthers) {
  for (const char* name : {"fp32", "bf16", "fp8"}) {
    auto p = ParseDispatchPrecision(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_STREQ(DispatchPrecisionName(*p), name);
  }
  EXPECT_FALSE(ParseDispatchPrecision("").ok());
  EXPECT_FALSE(ParseDispatchPrecision("BF16").ok());
  EXPECT_FALSE(ParseDispatchPrecision("fp16").ok());
}

TEST(DispatchPrecisionTest, RoundingErrorsStayWithinEachFormatsBound) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 3.0f);
  const int64_t tokens = 3, hidden = 300;  // a partial last FP8 group
  std::vector<float> x(tokens * hidden);
  for (float& v : x) v = d(rng);
  x[7] = 0.0f;

  std::vector<float> out(x.size());
  RoundLikeDispatch(DispatchPrecision::kFp32, x.data(), tokens, hidden, out.data());
  EXPECT_EQ(out, x);

  RoundLikeDispatch(DispatchPrecision::kBf16, x.data(), tokens, hidden, out.data());
  bool any_changed = false;
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_LE(std::fabs(out[i] - x[i]), std::ldexp(std::fabs(x[i]), -8)) << i;
    any_changed |= out[i] != x[i];
  }
  EXPECT_TRUE(any_changed);

  RoundLikeDispatch(DispatchPrecision::kFp8, x.data(), tokens, hidden, out.data());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t g = 0; g < hidden; g += kFp8GroupSize) {
      const int64_t len = std::min(kFp8GroupSize, hidden - g);
      const float scale = Fp8GroupScale(&x[t * hidden + g], len);
      for (int64_t i = g; i < g + len; ++i) {
        const float v = x[t * hidden + i];
        // e4m3 keeps 3 mantissa bits: relative error 2^-4 for normals; below 2^-6
        // (in units of the scale) the absolute step is 2^-9·scale.
        const float bound = std::max(std::ldexp(std::fabs(v), -4), std::ldexp(scale, -10));
        ASSERT_LE(std::fabs(out[t * hidden + i] - v), bound) << t << "," << i;
      }
    }
  }
  EXPECT_EQ(out[7], 0.0f);
  // The largest value of a group maps to ±448 exactly, so it survives unchanged.
  int64_t largest = 0;
  for (int64_t i = 0; i < kFp8GroupSize; ++i) {
    if (std::fabs(x[i]) > std::fabs(x[largest])) largest = i;
  }
  EXPECT_FLOAT_EQ(out[largest], x[largest]);
}

}  // namespace
}  // namespace yard::engine
