#include "kernels/cpu/router/router.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"
#include "model/config.h"
#include "model/reference/routing.h"

namespace yard::kernels::cpu {
namespace {

using model::ModelConfig;
using model::ModelType;
using model::ScoringFunc;
using model::TopkMethod;

struct Case {
  std::string name;
  ModelConfig config;
};

ModelConfig Config(ModelType type, int64_t experts, int64_t k, int64_t n_group, int64_t topk_group,
                   TopkMethod method, ScoringFunc scoring, bool norm, double scaling) {
  ModelConfig c;
  c.model_type = type;
  c.n_routed_experts = experts;
  c.num_experts_per_tok = k;
  c.n_group = n_group;
  c.topk_group = topk_group;
  c.topk_method = method;
  c.scoring_func = scoring;
  c.norm_topk_prob = norm;
  c.routed_scaling_factor = scaling;
  return c;
}

std::vector<Case> Cases() {
  return {
      {"v3", Config(ModelType::kDeepseekV3, 256, 8, 8, 4, TopkMethod::kNoauxTc,
                    ScoringFunc::kSigmoid, true, 2.5)},
      {"v3_unnormalized", Config(ModelType::kDeepseekV3, 64, 6, 4, 2, TopkMethod::kNoauxTc,
                                 ScoringFunc::kSigmoid, false, 2.5)},
      {"v2", Config(ModelType::kDeepseekV2, 160, 6, 8, 3, TopkMethod::kGroupLimitedGreedy,
                    ScoringFunc::kSoftmax, false, 16.0)},
      // V2 with normalisation: HF's V2 code does not scale then.
      {"v2_normalized", Config(ModelType::kDeepseekV2, 64, 6, 8, 3, TopkMethod::kGroupLimitedGreedy,
                               ScoringFunc::kSoftmax, true, 16.0)},
      {"v2_lite", Config(ModelType::kDeepseekV2, 64, 6, 1, 1, TopkMethod::kGreedy,
                         ScoringFunc::kSoftmax, false, 1.0)},
      {"greedy_sigmoid_normalized", Config(ModelType::kDeepseekV3, 10, 3, 1, 1, TopkMethod::kGreedy,
                                           ScoringFunc::kSigmoid, true, 1.5)},
      // k = 1: never normalised, so always scaled.
      {"top1", Config(ModelType::kDeepseekV2, 12, 1, 4, 2, TopkMethod::kGroupLimitedGreedy,
                      ScoringFunc::kSoftmax, true, 3.0)},
      {"odd_groups", Config(ModelType::kDeepseekV3, 15, 4, 5, 3, TopkMethod::kNoauxTc,
                            ScoringFunc::kSigmoid, true, 1.0)},
  };
}

RouterParams Params(const ModelConfig& c) {
  return RouterParams{
      .num_experts = c.n_routed_experts,
      .top_k = c.num_experts_per_tok,
      .n_group = c.n_group,
      .topk_group = c.topk_group,
      .scoring = c.scoring_func == ScoringFunc::kSigmoid ? RouterScoring::kSigmoid
                                                         : RouterScoring::kSoftmax,
      .method = c.topk_method == TopkMethod::kGreedy    ? RouterTopk::kGreedy
                : c.topk_method == TopkMethod::kNoauxTc ? RouterTopk::kNoauxTc
                                                        : RouterTopk::kGroupLimitedGreedy,
      .norm_topk_prob = c.norm_topk_prob,
      .routed_scaling_factor = c.routed_scaling_factor,
      .scale_after_norm = c.model_type == ModelType::kDeepseekV3,
  };
}

// `coarse`: values on a grid of 1/8 in a narrow range, so equal scores, equal
// biased scores and equal group scores are common (the tie-breaking rules).
std::vector<float> Random(int64_t n, uint32_t seed, bool coarse, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::uniform_int_distribution<int> grid(-4, 4);
  std::vector<float> v(n);
  for (float& x : v) x = coarse ? grid(rng) / 8.0f : normal(rng);
  return v;
}

void ExpectSameAsReference(const Case& c, bool coarse, ThreadPool* pool) {
  const ModelConfig& config = c.config;
  const RouterParams params = Params(config);
  ASSERT_TRUE(ValidateRouterParams(params).ok()) << c.name;
  const int64_t n = config.n_routed_experts;
  const int64_t k = config.num_experts_per_tok;
  const int64_t tokens = 300;
  const std::vector<float> logits = Random(tokens * n, 1, coarse, 2.0f);
  const std::vector<float> bias = Random(n, 2, coarse, 0.3f);

  std::vector<float> scores(tokens * n);
  RouterScores(params, logits.data(), tokens, scores.data(), pool);
  std::vector<int32_t> ids(tokens * k), fused_ids(tokens * k);
  std::vector<float> weights(tokens * k), fused_weights(tokens * k);
  RouteTokens(params, scores.data(), tokens, bias.data(), ids.data(), weights.data(), pool);
  Route(params, logits.data(), tokens, bias.data(), fused_ids.data(), fused_weights.data(), pool);

  for (int64_t t = 0; t < tokens; ++t) {
    const std::vector<float> want_scores =
        model::reference::RouterScores(config, absl::MakeConstSpan(logits.data() + t * n, n));
    for (int64_t e = 0; e < n; ++e) {
      ASSERT_EQ(want_scores[e], scores[t * n + e]) << c.name << " token " << t << " expert " << e;
    }
    const std::vector<model::reference::ExpertChoice> want =
        model::reference::RouteToken(config, want_scores, bias);
    ASSERT_EQ(static_cast<int64_t>(want.size()), k);
    for (int64_t i = 0; i < k; ++i) {
      ASSERT_EQ(want[i].expert, ids[t * k + i]) << c.name << " token " << t << " slot " << i;
      ASSERT_EQ(want[i].weight, weights[t * k + i]) << c.name << " token " << t << " slot " << i;
      ASSERT_EQ(want[i].expert, fused_ids[t * k + i]) << c.name << " token " << t;
      ASSERT_EQ(want[i].weight, fused_weights[t * k + i]) << c.name << " token " << t;
    }
  }
}

TEST(RouterTest, IdenticalToReferenceOnRandomLogits) {
  ThreadPool one(ThreadPool::Options{.num_threads = 1});
  for (const Case& c : Cases()) ExpectSameAsReference(c, /*coarse=*/false, &one);
}

TEST(RouterTest, IdenticalToReferenceWithTies) {
  ThreadPool one(ThreadPool::Options{.num_threads = 1});
  for (const Case& c : Cases()) ExpectSameAsReference(c, /*coarse=*/true, &one);
}

TEST(RouterTest, IdenticalOnAnyThreadCount) {
  ThreadPool three(ThreadPool::Options{.num_threads = 3});
  for (const Case& c : Cases()) {
    ExpectSameAsReference(c, /*coarse=*/false, &three);
    ExpectSameAsReference(c, /*coarse=*/true, &three);
  }
}

TEST(RouterTest, TiesGoToTheLowerIndexInTopKOrder) {
  // Equal scores everywhere: greedy picks 0, 1, 2 in that order.
  const RouterParams params{.num_experts = 6, .top_k = 3, .scoring = RouterScoring::kSigmoid};
  const std::vector<float> scores(6, 0.5f);
  std::vector<int32_t> ids(3);
  std::vector<float> weights(3);
  RouteTokens(params, scores.data(), 1, nullptr, ids.data(), weights.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2}));
  // Descending score, equal ones by index.
  const std::vector<float> mixed = {0.1f, 0.7f, 0.3f, 0.7f, 0.9f, 0.3f};
  RouteTokens(params, mixed.data(), 1, nullptr, ids.data(), weights.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{4, 1, 3}));
}

TEST(RouterTest, NoauxTcPicksOnlyInsideKeptGroups) {
  // Group 0 = {0, 1}: top-2 sum 0.4 + 0.4 = 0.8; group 1 = {2, 3}: 0.9 + -0.5 = 0.4.
  // With topk_group 1 only group 0 is kept, although expert 2 has the best score.
  const RouterParams params{.num_experts = 4,
                            .top_k = 2,
                            .n_group = 2,
                            .topk_group = 1,
                            .scoring = RouterScoring::kSigmoid,
                            .method = RouterTopk::kNoauxTc,
                            .norm_topk_prob = true,
                            .routed_scaling_factor = 2.0};
  const std::vector<float> scores = {0.4f, 0.4f, 0.9f, 0.5f};
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, -1.0f};
  std::vector<int32_t> ids(2);
  std::vector<float> weights(2);
  RouteTokens(params, scores.data(), 1, bias.data(), ids.data(), weights.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1}));
  EXPECT_FLOAT_EQ(weights[0], 1.0f);  // 0.4 / 0.8 · 2
  EXPECT_FLOAT_EQ(weights[1], 1.0f);
}

TEST(RouterTest, RejectsInconsistentParams) {
  EXPECT_FALSE(ValidateRouterParams(RouterParams{.num_experts = 0, .top_k = 1}).ok());
  EXPECT_FALSE(ValidateRouterParams(RouterParams{.num_experts = 4, .top_k = 5}).ok());
  EXPECT_FALSE(ValidateRouterParams(RouterParams{.num_experts = 10,
                                                 .top_k = 2,
                                                 .n_group = 3,
                                                 .topk_group = 1,
                                                 .method = RouterTopk::kGroupLimitedGreedy})
                   .ok());
  EXPECT_FALSE(ValidateRouterParams(RouterParams{.num_experts = 8,
                                                 .top_k = 5,
                                                 .n_group = 4,
                                                 .topk_group = 2,
                                                 .method = RouterTopk::kNoauxTc})
                   .ok());
  EXPECT_FALSE(ValidateRouterParams(RouterParams{.num_experts = 4,
                                                 .top_k = 1,
                                                 .n_group = 4,
                                                 .topk_group = 1,
                                                 .method = RouterTopk::kNoauxTc})
                   .ok());
  EXPECT_TRUE(ValidateRouterParams(RouterParams{.num_experts = 8,
                                                .top_k = 4,
                                                .n_group = 4,
                                                .topk_group = 2,
                                                .method = RouterTopk::kNoauxTc})
                  .ok());
}

}  // namespace
}  // namespace yard::kernels::cpu
