#include "model/reference/ops.h"

#include <cmath>

#include "gtest/gtest.h"

namespace yard::model::reference {
namespace {

TEST(RmsNormTest, NormalizesByRootMeanSquareThenScales) {
  // mean(x²) = (1 + 4 + 4) / 3 = 3.
  std::vector<float> y = RmsNorm({1, 2, 2}, {1, 1, 2}, /*eps=*/0.0);
  const double r = 1.0 / std::sqrt(3.0);
  EXPECT_NEAR(y[0], 1 * r, 1e-7);
  EXPECT_NEAR(y[1], 2 * r, 1e-7);
  EXPECT_NEAR(y[2], 4 * r, 1e-7);
}

TEST(RmsNormTest, EpsIsAddedToTheMeanSquare) {
  // mean(x²) + eps = 3 + 1 = 4: divide by 2.
  std::vector<float> y = RmsNorm({1, 2, 2}, {1, 1, 2}, /*eps=*/1.0);
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[1], 1.0f);
  EXPECT_FLOAT_EQ(y[2], 2.0f);
}

TEST(MatVecTest, RowsAreOutputs) {
  Matrix m{2, 3, {1, 2, 3, 4, 5, 6}};
  std::vector<float> y = MatVec(m, {1, 0, -1});
  EXPECT_FLOAT_EQ(y[0], -2.0f);
  EXPECT_FLOAT_EQ(y[1], -2.0f);
}

TEST(SiluTest, MatchesDefinition) {
  EXPECT_DOUBLE_EQ(Silu(0.0), 0.0);
  EXPECT_NEAR(Silu(1.0), 0.7310585786300049, 1e-15);
  EXPECT_NEAR(Silu(-2.0), -2.0 / (1.0 + std::exp(2.0)), 1e-15);
}

TEST(SwiGluTest, OneInnerUnitByHand) {
  // hidden 2, inner 1: gate picks x[0], up picks x[1], down writes [1, 2] * inner.
  SwiGluWeights ffn{Matrix{1, 2, {1, 0}}, Matrix{1, 2, {0, 1}}, Matrix{2, 1, {1, 2}}};
  std::vector<float> y = SwiGlu(ffn, {1, 3});
  const double inner = 0.7310585786300049 * 3;  // silu(1) * 3
  EXPECT_NEAR(y[0], inner, 1e-6);
  EXPECT_NEAR(y[1], 2 * inner, 1e-6);
}

}  // namespace
}  // namespace yard::model::reference
