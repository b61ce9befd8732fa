#include "model/reference/routing.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::model::reference {
namespace {

std::vector<int64_t> Experts(const std::vector<ExpertChoice>& c) {
  std::vector<int64_t> out;
  for (const ExpertChoice& e : c) out.push_back(e.expert);
  return out;
}

ModelConfig Router(ModelType type, TopkMethod method, int64_t experts, int64_t k) {
  ModelConfig c;
  c.model_type = type;
  c.topk_method = method;
  c.n_routed_experts = experts;
  c.num_experts_per_tok = k;
  return c;
}

TEST(RouterScoresTest, SoftmaxAndSigmoid) {
  ModelConfig c = Router(ModelType::kDeepseekV2, TopkMethod::kGreedy, 3, 1);
  c.scoring_func = ScoringFunc::kSoftmax;
  std::vector<float> s = RouterScores(c, {0, std::log(2.0f), std::log(5.0f)});
  EXPECT_NEAR(s[0], 1.0 / 8, 1e-7);
  EXPECT_NEAR(s[1], 2.0 / 8, 1e-7);
  EXPECT_NEAR(s[2], 5.0 / 8, 1e-7);
  c.scoring_func = ScoringFunc::kSigmoid;
  s = RouterScores(c, {0, 2, -1});
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  EXPECT_NEAR(s[1], 1 / (1 + std::exp(-2.0)), 1e-7);
  EXPECT_NEAR(s[2], 1 / (1 + std::exp(1.0)), 1e-7);
}

TEST(RouteTokenTest, V2GreedyScalesWhenNotNormalized) {
  ModelConfig c = Router(ModelType::kDeepseekV2, TopkMethod::kGreedy, 4, 2);
  c.routed_scaling_factor = 2.0;
  auto r = RouteToken(c, {0.1f, 0.4f, 0.2f, 0.3f}, {});
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(1, 3));  // descending score
  EXPECT_NEAR(r[0].weight, 0.8, 1e-6);
  EXPECT_NEAR(r[1].weight, 0.6, 1e-6);
}

TEST(RouteTokenTest, V2NormalizedIsNotScaled) {
  // HF's DeepSeek-V2 applies routed_scaling_factor only when it does not normalise.
  ModelConfig c = Router(ModelType::kDeepseekV2, TopkMethod::kGreedy, 4, 2);
  c.routed_scaling_factor = 2.0;
  c.norm_topk_prob = true;
  auto r = RouteToken(c, {0.1f, 0.4f, 0.2f, 0.3f}, {});
  EXPECT_NEAR(r[0].weight, 0.4 / 0.7, 1e-6);
  EXPECT_NEAR(r[1].weight, 0.3 / 0.7, 1e-6);
}

TEST(RouteTokenTest, V2TopOneIsScaledEvenWithNormTopkProb) {
  ModelConfig c = Router(ModelType::kDeepseekV2, TopkMethod::kGreedy, 4, 1);
  c.routed_scaling_factor = 2.0;
  c.norm_topk_prob = true;  // ignored for k = 1, so the scaling branch applies
  auto r = RouteToken(c, {0.1f, 0.4f, 0.2f, 0.3f}, {});
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(1));
  EXPECT_NEAR(r[0].weight, 0.8, 1e-6);
}

TEST(RouteTokenTest, V3NormalizesThenAlwaysScales) {
  ModelConfig c = Router(ModelType::kDeepseekV3, TopkMethod::kGreedy, 4, 2);
  c.routed_scaling_factor = 2.5;
  c.norm_topk_prob = true;
  auto r = RouteToken(c, {0.1f, 0.4f, 0.2f, 0.3f}, {});
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(1, 3));
  EXPECT_NEAR(r[0].weight, 2.5 * 0.4 / 0.7, 1e-6);
  EXPECT_NEAR(r[1].weight, 2.5 * 0.3 / 0.7, 1e-6);
  c.norm_topk_prob = false;
  r = RouteToken(c, {0.1f, 0.4f, 0.2f, 0.3f}, {});
  EXPECT_NEAR(r[0].weight, 2.5 * 0.4, 1e-6);
  EXPECT_NEAR(r[1].weight, 2.5 * 0.3, 1e-6);
}

TEST(RouteTokenTest, TiesGoToTheLowerExpert) {
  ModelConfig c = Router(ModelType::kDeepseekV2, TopkMethod::kGreedy, 4, 2);
  auto r = RouteToken(c, {0.25f, 0.25f, 0.25f, 0.25f}, {});
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(0, 1));
  r = RouteToken(c, {0.1f, 0.3f, 0.3f, 0.3f}, {});
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(1, 2));
}

TEST(RouteTokenTest, GroupLimitedGreedyKeepsGroupsByMaxScore) {
  ModelConfig c = Router(ModelType::kDeepseekV2, TopkMethod::kGroupLimitedGreedy, 8, 3);
  c.n_group = 4;
  c.topk_group = 2;
  // Group maxima: g0 0.30, g1 0.22, g2 0.25, g3 0.03 -> keep g0 and g2 (experts 0,1,4,5).
  const std::vector<float> s = {0.30f, 0.01f, 0.22f, 0.21f, 0.25f, 0.0f, 0.03f, 0.01f};
  auto r = RouteToken(c, s, {});
  // Plain greedy would take 0, 4, 2; the group limit replaces 2 by 1.
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(0, 4, 1));
  EXPECT_NEAR(r[0].weight, 0.30, 1e-6);  // routed_scaling_factor 1
  EXPECT_NEAR(r[2].weight, 0.01, 1e-6);
  c.topk_method = TopkMethod::kGreedy;
  EXPECT_THAT(Experts(RouteToken(c, s, {})), ::testing::ElementsAre(0, 4, 2));
}

TEST(RouteTokenTest, NoauxTcChoosesByBiasButWeighsByScore) {
  ModelConfig c = Router(ModelType::kDeepseekV3, TopkMethod::kNoauxTc, 8, 2);
  c.n_group = 4;
  c.topk_group = 2;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  const std::vector<float> s = {0.9f, 0.1f, 0.5f, 0.4f, 0.6f, 0.2f, 0.3f, 0.3f};

  // Without bias: top-2 sums g0 1.0, g1 0.9, g2 0.8, g3 0.6 -> groups 0, 1 -> 0, 2.
  auto r = RouteToken(c, s, std::vector<float>(8, 0.0f));
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(0, 2));
  EXPECT_NEAR(r[0].weight, 2.5 * 0.9 / 1.4, 1e-6);
  EXPECT_NEAR(r[1].weight, 2.5 * 0.5 / 1.4, 1e-6);

  // Biased: [0.9 0.1 | 0.5 0.4 | 0.1 0.2 | 0.7 0.3]: sums g0 1.0, g1 0.9, g2 0.3,
  // g3 1.0 -> groups 0, 3 -> experts 0 (0.9) and 6 (0.7 biased, 0.3 unbiased).
  const std::vector<float> bias = {0, 0, 0, 0, -0.5f, 0, 0.4f, 0};
  r = RouteToken(c, s, bias);
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(0, 6));
  EXPECT_NEAR(r[0].weight, 2.5 * 0.9 / 1.2, 1e-6);
  EXPECT_NEAR(r[1].weight, 2.5 * 0.3 / 1.2, 1e-6);
}

TEST(RouteTokenTest, NoauxTcRanksGroupsByTopTwoSumNotMax) {
  ModelConfig c = Router(ModelType::kDeepseekV3, TopkMethod::kNoauxTc, 6, 1);
  c.n_group = 2;
  c.topk_group = 1;
  // g0 = [0.9, 0.0, 0.0]: max 0.9, top-2 sum 0.9; g1 = [0.5, 0.5, 0.1]: sum 1.0.
  auto r = RouteToken(c, {0.9f, 0.0f, 0.0f, 0.5f, 0.5f, 0.1f}, std::vector<float>(6, 0));
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(3));
  EXPECT_NEAR(r[0].weight, 0.5, 1e-6);  // k = 1: no normalisation; factor 1
}

TEST(RouteTokenTest, NoauxTcNeverPicksOutsideKeptGroups) {
  // Kept group's biased scores are negative; a dropped expert must still not win.
  ModelConfig c = Router(ModelType::kDeepseekV3, TopkMethod::kNoauxTc, 4, 2);
  c.n_group = 2;
  c.topk_group = 1;
  const std::vector<float> s = {0.1f, 0.1f, 0.0f, 0.0f};
  const std::vector<float> bias = {-0.2f, -0.3f, -1.0f, -1.0f};
  auto r = RouteToken(c, s, bias);
  EXPECT_THAT(Experts(r), ::testing::ElementsAre(0, 1));
}

}  // namespace
}  // namespace yard::model::reference
