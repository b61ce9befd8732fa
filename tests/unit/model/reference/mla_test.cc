#include "model/reference/mla.h"

#include <cmath>

#include "gtest/gtest.h"

namespace yard::model::reference {
namespace {

// One head: hidden 4, kv_lora_rank 2, qk_nope 2, qk_rope 2, v 2, no q_lora.
ModelConfig OneHead() {
  ModelConfig c;
  c.hidden_size = 4;
  c.num_attention_heads = 1;
  c.kv_lora_rank = 2;
  c.qk_nope_head_dim = 2;
  c.qk_rope_head_dim = 2;
  c.v_head_dim = 2;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  return c;
}

Matrix Identity(int64_t n) {
  Matrix m{n, n, std::vector<float>(n * n, 0.0f)};
  for (int64_t i = 0; i < n; ++i) m.w[i * n + i] = 1.0f;
  return m;
}

// kv_a = identity: c_kv = RMSNorm(x[0:2]), k_rope = RoPE(x[2:4]).
AttentionWeights Weights(Matrix kv_b, Matrix o) {
  AttentionWeights w;
  w.q_proj = Identity(4);  // q_nope = x[0:2], q_rope = RoPE(x[2:4])
  w.kv_a = Identity(4);
  w.kv_a_norm = {1, 1};
  w.kv_b = std::move(kv_b);  // [W_uk (2 rows) | W_uv (2 rows)] x 2
  w.o = std::move(o);        // [4, 2]
  return w;
}

TEST(MlaTest, OnePositionOutputsWoWuvCkv) {
  ModelConfig c = OneHead();
  Rope rope(c);
  // W_uk arbitrary (softmax over one key is 1 whatever the score); W_uv = [[1,2],[3,4]].
  Matrix kv_b{4, 2, {0.3f, -0.1f, 0.7f, 0.2f, 1, 2, 3, 4}};
  Matrix o{4, 2, {1, 0, 0, 1, 1, 1, 2, -1}};
  AttentionWeights w = Weights(kv_b, o);
  LatentCache cache;
  std::vector<float> y = MlaForward(c, rope, w, {3, 4, 0.5f, -0.25f}, 0, cache);

  // c_kv = [3,4] / sqrt(mean([9,16]) + eps) = [3,4] / sqrt(12.5).
  const double n = 1.0 / std::sqrt(12.5 + 1e-6);
  const double c0 = 3 * n, c1 = 4 * n;
  const double v0 = 1 * c0 + 2 * c1, v1 = 3 * c0 + 4 * c1;  // W_uv·c_kv
  ASSERT_EQ(y.size(), 4u);
  EXPECT_NEAR(y[0], v0, 1e-5);
  EXPECT_NEAR(y[1], v1, 1e-5);
  EXPECT_NEAR(y[2], v0 + v1, 1e-5);
  EXPECT_NEAR(y[3], 2 * v0 - v1, 1e-5);

  // Only the latent and the rope key are cached; position 0 leaves k_rope as is.
  EXPECT_EQ(cache.tokens, 1);
  ASSERT_EQ(cache.c_kv.size(), 2u);
  ASSERT_EQ(cache.k_rope.size(), 2u);
  EXPECT_NEAR(cache.c_kv[0], c0, 1e-6);
  EXPECT_NEAR(cache.c_kv[1], c1, 1e-6);
  EXPECT_FLOAT_EQ(cache.k_rope[0], 0.5f);
  EXPECT_FLOAT_EQ(cache.k_rope[1], -0.25f);
}

TEST(MlaTest, TwoPositionsSoftmaxByHand) {
  ModelConfig c = OneHead();
  Rope rope(c);
  // W_uk = W_uv = identity: k_nope = v = c_kv. o = first two outputs copy.
  Matrix kv_b{4, 2, {1, 0, 0, 1, 1, 0, 0, 1}};
  Matrix o{4, 2, {1, 0, 0, 1, 0, 0, 0, 0}};
  AttentionWeights w = Weights(kv_b, o);
  LatentCache cache;
  MlaForward(c, rope, w, {1, 1, 0, 0}, 0, cache);  // c_kv0 ≈ [1, 1]
  std::vector<float> y = MlaForward(c, rope, w, {1, -1, 0, 0}, 1, cache);  // c_kv1 ≈ [1,-1]
  // q_nope = [1,-1]; rope parts are 0. Scores·scale: [0, 2] / sqrt(4) = [0, 1].
  const double p0 = 1 / (1 + std::exp(1.0)), p1 = 1 - p0;
  EXPECT_NEAR(y[0], p0 * 1 + p1 * 1, 1e-5);
  EXPECT_NEAR(y[1], p0 * 1 - p1 * 1, 1e-5);
  EXPECT_NEAR(y[2], 0, 1e-7);
  EXPECT_EQ(cache.tokens, 2);
  EXPECT_EQ(cache.c_kv.size(), 4u);
  EXPECT_EQ(cache.k_rope.size(), 4u);
}

TEST(MlaTest, RopeKeyIsCachedRotated) {
  ModelConfig c = OneHead();
  Rope rope(c);
  AttentionWeights w = Weights(Matrix{4, 2, std::vector<float>(8, 0.0f)},
                               Matrix{4, 2, std::vector<float>(8, 0.0f)});
  LatentCache cache;
  MlaForward(c, rope, w, {1, 1, 0, 0}, 0, cache);
  MlaForward(c, rope, w, {1, 1, 1, 0}, 1, cache);
  // Pair (1, 0) at position 1 with inv_freq 1 turns by 1 rad.
  EXPECT_NEAR(cache.k_rope[2], std::cos(1.0), 1e-7);
  EXPECT_NEAR(cache.k_rope[3], std::sin(1.0), 1e-7);
}

TEST(MlaTest, SoftmaxScaleIncludesYarnMscale) {
  // Two keys with q·k = [0, 2]; SoftmaxScale = mscale² / sqrt(4).
  ModelConfig c = OneHead();
  c.rope_scaling = YarnScaling{.factor = 4.0, .mscale = 1.0, .mscale_all_dim = 1.0};
  Rope rope(c);
  const double scale = c.SoftmaxScale();
  const double m = 0.1 * std::log(4.0) + 1;
  ASSERT_NEAR(scale, m * m / 2, 1e-12);
  Matrix kv_b{4, 2, {1, 0, 0, 1, 1, 0, 0, 1}};
  Matrix o{4, 2, {1, 0, 0, 1, 0, 0, 0, 0}};
  AttentionWeights w = Weights(kv_b, o);
  LatentCache cache;
  MlaForward(c, rope, w, {1, 1, 0, 0}, 0, cache);
  std::vector<float> y = MlaForward(c, rope, w, {1, -1, 0, 0}, 1, cache);
  const double p0 = 1 / (1 + std::exp(2 * scale)), p1 = 1 - p0;
  EXPECT_NEAR(y[1], p0 - p1, 1e-5);
}

}  // namespace
}  // namespace yard::model::reference
