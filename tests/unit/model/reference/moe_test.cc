#include "model/reference/moe.h"

#include <cmath>

#include "gtest/gtest.h"

namespace yard::model::reference {
namespace {

double SiluD(double v) { return v / (1 + std::exp(-v)); }

// hidden 2, two routed experts of inner width 1, top-1, softmax, V3 scaling 1.
ModelConfig TwoExperts() {
  ModelConfig c;
  c.model_type = ModelType::kDeepseekV3;
  c.hidden_size = 2;
  c.n_routed_experts = 2;
  c.num_experts_per_tok = 1;
  c.moe_intermediate_size = 1;
  c.topk_method = TopkMethod::kGreedy;
  c.scoring_func = ScoringFunc::kSoftmax;
  return c;
}

MoeWeights Weights() {
  MoeWeights m;
  m.gate = Matrix{2, 2, {0, 0, 1, 0}};  // logits [0, x0]
  // Expert 0 would output a huge value: it must not be used.
  m.experts.push_back({Matrix{1, 2, {1, 1}}, Matrix{1, 2, {1, 1}}, Matrix{2, 1, {1000, 1000}}});
  // Expert 1: silu(x0) * x1 written to [1, 2].
  m.experts.push_back({Matrix{1, 2, {1, 0}}, Matrix{1, 2, {0, 1}}, Matrix{2, 1, {1, 2}}});
  return m;
}

TEST(MoeTest, OneExpertWeightedByItsScore) {
  ModelConfig c = TwoExperts();
  MoeWeights m = Weights();
  std::vector<ExpertChoice> choices;
  std::vector<float> y = MoeForward(c, m, {1, 3}, &choices);
  ASSERT_EQ(choices.size(), 1u);
  EXPECT_EQ(choices[0].expert, 1);
  const double w = std::exp(1.0) / (1 + std::exp(1.0));
  EXPECT_NEAR(choices[0].weight, w, 1e-6);
  const double inner = SiluD(1) * 3;
  EXPECT_NEAR(y[0], w * inner, 1e-5);
  EXPECT_NEAR(y[1], w * 2 * inner, 1e-5);
}

TEST(MoeTest, SharedExpertIsAddedUnweighted) {
  ModelConfig c = TwoExperts();
  c.n_shared_experts = 1;
  MoeWeights m = Weights();
  // Shared: silu(x1) * x0 written to [1, -1].
  m.shared = SwiGluWeights{Matrix{1, 2, {0, 1}}, Matrix{1, 2, {1, 0}}, Matrix{2, 1, {1, -1}}};
  std::vector<float> y = MoeForward(c, m, {1, 3});
  const double w = std::exp(1.0) / (1 + std::exp(1.0));
  const double routed = SiluD(1) * 3, shared = SiluD(3) * 1;
  EXPECT_NEAR(y[0], w * routed + shared, 1e-5);
  EXPECT_NEAR(y[1], w * 2 * routed - shared, 1e-5);
}

}  // namespace
}  // namespace yard::model::reference
