#include "kernels/cpu/elementwise/rope.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_pool.h"
#include "model/config.h"
#include "model/reference/rope.h"

namespace yard::kernels::cpu {
namespace {

struct Case {
  std::string name;
  int64_t dim;
  double base;
  std::optional<model::YarnScaling> yarn;
};

// DeepSeek-V3's rope_scaling (factor 40, mscale 1 = mscale_all_dim), V2-Lite's
// (factor 40, mscale 0.707), plain RoPE, and odd dims for the vector tails.
std::vector<Case> Cases() {
  model::YarnScaling v3{.factor = 40.0,
                        .original_max_position_embeddings = 4096,
                        .beta_fast = 32.0,
                        .beta_slow = 1.0,
                        .mscale = 1.0,
                        .mscale_all_dim = 1.0};
  model::YarnScaling v2_lite = v3;
  v2_lite.mscale = 0.707;
  return {
      {"v3_yarn", 64, 10000.0, v3},         {"v2_lite_yarn", 64, 10000.0, v2_lite},
      {"plain", 64, 10000.0, std::nullopt}, {"dim_6", 6, 500.0, v2_lite},
      {"dim_34", 34, 10000.0, v3},
  };
}

RopeParams Params(const Case& c) {
  RopeParams p{.dim = c.dim, .base = c.base};
  if (c.yarn) {
    p.yarn =
        YarnParams{.factor = c.yarn->factor,
                   .original_max_position_embeddings = c.yarn->original_max_position_embeddings,
                   .beta_fast = c.yarn->beta_fast,
                   .beta_slow = c.yarn->beta_slow,
                   .mscale = c.yarn->mscale,
                   .mscale_all_dim = c.yarn->mscale_all_dim};
  }
  return p;
}

model::ModelConfig Config(const Case& c) {
  model::ModelConfig config;
  config.qk_rope_head_dim = c.dim;
  config.rope_theta = c.base;
  config.rope_scaling = c.yarn;
  return config;
}

class RopeTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { isa_ = std::make_unique<ScopedIsa>(GetParam()); }
  std::unique_ptr<ScopedIsa> isa_;
};

TEST_P(RopeTest, MatchesReferenceForEveryHeadAndPosition) {
  for (const Case& c : Cases()) {
    const model::reference::Rope reference(Config(c));
    absl::StatusOr<RopeTable> table = RopeTable::Create(Params(c), 20000);
    ASSERT_TRUE(table.ok()) << table.status();
    ASSERT_EQ(table->inv_freq(), reference.inv_freq()) << c.name;
    ASSERT_EQ(table->mscale(), reference.mscale()) << c.name;

    // q-like layout: [tokens, heads, nope + rope], rope slice at offset nope.
    const int64_t heads = 5, nope = 3, head_stride = nope + c.dim;
    const std::vector<int64_t> positions = {0, 1, 2, 17, 4095, 4096, 12345, 19999};
    const int64_t tokens = static_cast<int64_t>(positions.size());
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> x(tokens * heads * head_stride);
    for (float& v : x) v = normal(rng);
    std::vector<float> want = x;
    ApplyRope(*table, positions.data(), tokens, heads, x.data() + nope, heads * head_stride,
              head_stride);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        float* slice = want.data() + (t * heads + h) * head_stride;
        reference.Apply(positions[t], absl::MakeSpan(slice + nope, c.dim));
        for (int64_t i = 0; i < head_stride; ++i) {
          const float got = x[(t * heads + h) * head_stride + i];
          if (i < nope) {
            ASSERT_EQ(slice[i], got) << "touched q_nope";
          } else {
            ASSERT_NEAR(slice[i], got, 1e-6 * std::max(1.0f, std::fabs(slice[i])))
                << c.name << " position " << positions[t] << " head " << h << " i " << i;
          }
        }
      }
    }
  }
}

TEST_P(RopeTest, BitwiseIndependentOfThreads) {
  const Case c = Cases()[0];
  absl::StatusOr<RopeTable> table = RopeTable::Create(Params(c), 4096);
  ASSERT_TRUE(table.ok());
  const int64_t tokens = 300, heads = 128;
  std::vector<int64_t> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) positions[t] = (t * 37) % 4096;
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> a(tokens * heads * 64);
  for (float& v : a) v = normal(rng);
  std::vector<float> b = a;
  ThreadPool one(ThreadPool::Options{.num_threads = 1});
  ThreadPool three(ThreadPool::Options{.num_threads = 3});
  ApplyRope(*table, positions.data(), tokens, heads, a.data(), heads * 64, 64, &one);
  ApplyRope(*table, positions.data(), tokens, heads, b.data(), heads * 64, 64, &three);
  EXPECT_EQ(a, b);
}

TEST(RopeTableTest, RejectsBadParams) {
  EXPECT_FALSE(RopeTable::Create(RopeParams{.dim = 7}, 10).ok());
  EXPECT_FALSE(RopeTable::Create(RopeParams{.dim = 0}, 10).ok());
  EXPECT_FALSE(RopeTable::Create(RopeParams{.dim = 64, .base = 1.0}, 10).ok());
  EXPECT_FALSE(RopeTable::Create(RopeParams{.dim = 64}, 0).ok());
  EXPECT_FALSE(
      RopeTable::Create(RopeParams{.dim = 64, .yarn = YarnParams{.factor = 0.0}}, 10).ok());
}

INSTANTIATE_TEST_SUITE_P(AllIsas, RopeTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace yard::kernels::cpu
