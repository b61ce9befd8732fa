#include "model/reference/rope.h"

#include <cmath>

#include "gtest/gtest.h"

namespace yard::model::reference {
namespace {

ModelConfig RopeConfig(int64_t dim) {
  ModelConfig c;
  c.qk_rope_head_dim = dim;
  c.rope_theta = 10000.0;
  return c;
}

TEST(RopeTest, PlainInvFreqAndInterleavedRotation) {
  Rope rope(RopeConfig(4));
  ASSERT_EQ(rope.inv_freq().size(), 2u);
  EXPECT_DOUBLE_EQ(rope.inv_freq()[0], 1.0);
  EXPECT_NEAR(rope.inv_freq()[1], 0.01, 1e-15);  // 10000^(-2/4)
  EXPECT_DOUBLE_EQ(rope.mscale(), 1.0);

  // Pair 0 = (1, 0) turns by 2 rad; pair 1 = (0, 1) by 0.02 rad.
  std::vector<float> x = {1, 0, 0, 1};
  rope.Apply(2, absl::MakeSpan(x));
  EXPECT_NEAR(x[0], std::cos(2.0), 1e-7);
  EXPECT_NEAR(x[1], std::sin(2.0), 1e-7);
  EXPECT_NEAR(x[2], -std::sin(0.02), 1e-7);
  EXPECT_NEAR(x[3], std::cos(0.02), 1e-7);
}

TEST(RopeTest, PositionZeroIsIdentityWithoutScaling) {
  Rope rope(RopeConfig(8));
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> before = x;
  rope.Apply(0, absl::MakeSpan(x));
  EXPECT_EQ(x, before);
}

TEST(RopeTest, DotProductDependsOnlyOnRelativePosition) {
  Rope rope(RopeConfig(8));
  const std::vector<float> q0 = {0.3f, -1, 2, 0.5f, 1, 1, -0.7f, 0.2f};
  const std::vector<float> k0 = {1, 0.4f, -0.2f, 0.9f, 0.1f, -1, 0.6f, 0.3f};
  auto dot_at = [&](int64_t pq, int64_t pk) {
    std::vector<float> q = q0, k = k0;
    rope.Apply(pq, absl::MakeSpan(q));
    rope.Apply(pk, absl::MakeSpan(k));
    double s = 0;
    for (size_t i = 0; i < q.size(); ++i) s += q[i] * k[i];
    return s;
  };
  EXPECT_NEAR(dot_at(5, 2), dot_at(103, 100), 1e-5);
  EXPECT_GT(std::fabs(dot_at(5, 2) - dot_at(5, 4)), 1e-3);
}

TEST(YarnTest, CorrectionRangeOfDeepseekV3) {
  // DeepSeek-V3: dim 64, base 10000, original context 4096, beta_fast 32, beta_slow 1
  // gives HF's correction range [10, 23].
  EXPECT_EQ(std::floor(YarnCorrectionDim(32, 64, 10000, 4096)), 10);
  EXPECT_EQ(std::ceil(YarnCorrectionDim(1, 64, 10000, 4096)), 23);
}

TEST(YarnTest, GetMscale) {
  EXPECT_DOUBLE_EQ(YarnGetMscale(1.0, 0.707), 1.0);
  EXPECT_NEAR(YarnGetMscale(40.0, 1.0), 0.1 * std::log(40.0) + 1.0, 1e-15);
}

TEST(YarnTest, InvFreqBlendsExtrapolationAndInterpolation) {
  ModelConfig c = RopeConfig(16);
  c.rope_scaling = YarnScaling{.factor = 40.0,
                               .original_max_position_embeddings = 64,
                               .beta_fast = 32.0,
                               .beta_slow = 1.0,
                               .mscale = 1.0,
                               .mscale_all_dim = 0.5};
  // By hand: corr(32) = 16·ln(64/(64π))/(2·ln 1e4) = -0.994 -> low = max(-1, 0) = 0;
  // corr(1) = 16·ln(64/(2π))/(2·ln 1e4) = 2.016 -> high = 3. ramp[i] = clamp(i/3).
  Rope rope(c);
  ASSERT_EQ(rope.inv_freq().size(), 8u);
  for (int i = 0; i < 8; ++i) {
    const double extra = std::pow(10000.0, -2.0 * i / 16);
    const double inter = extra / 40.0;
    const double ramp = std::min(i / 3.0, 1.0);
    EXPECT_NEAR(rope.inv_freq()[i], inter * ramp + extra * (1 - ramp), 1e-12) << i;
  }
  EXPECT_DOUBLE_EQ(rope.inv_freq()[0], 1.0);                                 // pure extra
  EXPECT_NEAR(rope.inv_freq()[5], std::pow(10000.0, -10.0 / 16) / 40, 1e-15);  // pure inter

  // m = get_mscale(40, 1) / get_mscale(40, 0.5) scales cos and sin.
  const double m = (0.1 * std::log(40.0) + 1) / (0.05 * std::log(40.0) + 1);
  EXPECT_NEAR(rope.mscale(), m, 1e-12);
  std::vector<float> x(16, 0.0f);
  x[0] = 1;  // pair 0 at inv_freq 1
  x[3] = 1;  // pair 1, second element
  rope.Apply(3, absl::MakeSpan(x));
  const double w1 = rope.inv_freq()[1] * 3;
  EXPECT_NEAR(x[0], m * std::cos(3.0), 1e-6);
  EXPECT_NEAR(x[1], m * std::sin(3.0), 1e-6);
  EXPECT_NEAR(x[2], -m * std::sin(w1), 1e-6);
  EXPECT_NEAR(x[3], m * std::cos(w1), 1e-6);
}

TEST(YarnTest, EqualMscalesCancel) {
  ModelConfig c = RopeConfig(16);
  c.rope_scaling = YarnScaling{.factor = 40.0, .mscale = 0.707, .mscale_all_dim = 0.707};
  EXPECT_DOUBLE_EQ(Rope(c).mscale(), 1.0);
}

}  // namespace
}  // namespace yard::model::reference
