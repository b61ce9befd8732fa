#include "kernels/cpu/mla/absorb.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/mla/latent_attention.h"
#include "kernels/cpu/numerics.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {
namespace {

// A random kv_b_proj and its exact values in double.
struct TestKvB {
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> fp8;
  std::vector<float> scales;
  std::vector<double> exact;  // [rows, rank]
  KvBProjection proj;

  double W(int64_t row, int64_t col) const { return exact[row * proj.weight.k + col]; }
};

TestKvB MakeKvB(WeightType type, int64_t heads, int64_t nope, int64_t v_dim, int64_t rank,
                uint32_t seed) {
  std::mt19937 rng(seed);
  TestKvB w;
  const int64_t n = heads * (nope + v_dim);
  w.proj = KvBProjection{.weight = WeightView{.type = type, .n = n, .k = rank},
                         .heads = heads,
                         .qk_nope_head_dim = nope,
                         .v_head_dim = v_dim};
  w.exact.resize(n * rank);
  if (type == WeightType::kBf16) {
    std::normal_distribution<float> normal(0.0f, 0.05f);
    w.bf16.resize(n * rank);
    for (int64_t i = 0; i < n * rank; ++i) {
      w.bf16[i] = FloatToBf16(normal(rng));
      w.exact[i] = Bf16ToFloat(w.bf16[i]);
    }
    w.proj.weight.data = w.bf16.data();
  } else {
    const int64_t rows = (n + 127) / 128;
    const int64_t cols = (rank + 127) / 128;
    std::uniform_real_distribution<float> scale(1e-4f, 1e-3f);
    w.scales.resize(rows * cols);
    for (float& s : w.scales) s = scale(rng);
    // Every finite code, NaN codes (0x7F, 0xFF) excluded.
    std::uniform_int_distribution<int> code(0, 253);
    w.fp8.resize(n * rank);
    for (int64_t i = 0; i < n * rank; ++i) {
      const int c = code(rng);
      w.fp8[i] = static_cast<uint8_t>(c < 127 ? c : c + 1);
      w.exact[i] = static_cast<double>(Fp8E4m3ToFloat(w.fp8[i])) *
                   w.scales[(i / rank / 128) * cols + (i % rank) / 128];
    }
    w.proj.weight.data = w.fp8.data();
    w.proj.weight.scale_inv = w.scales.data();
  }
  return w;
}

std::vector<float> RandomVector(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

struct Dims {
  WeightType type;
  int64_t heads, nope, v_dim, rank;
};

std::string Name(const Dims& d) {
  return absl::StrCat(d.type == WeightType::kBf16 ? "bf16" : "fp8", " heads ", d.heads, " nope ",
                      d.nope, " v ", d.v_dim, " rank ", d.rank);
}

// V2/V3 head dims (FP8 W_uv on scale blocks: the Gemm path) and odd ones (FP8
// fallback, partial vectors everywhere).
const Dims kDims[] = {
    {WeightType::kBf16, 3, 128, 128, 512}, {WeightType::kFp8E4m3, 3, 128, 128, 512},
    {WeightType::kBf16, 2, 24, 40, 200},   {WeightType::kFp8E4m3, 2, 24, 40, 200},
    {WeightType::kFp8E4m3, 1, 5, 3, 7},
};

class AbsorbTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { isa_ = std::make_unique<ScopedIsa>(GetParam()); }
  std::unique_ptr<ScopedIsa> isa_;
};

TEST_P(AbsorbTest, QueriesMatchDoubleAndAreBatchInvariant) {
  for (const Dims& d : kDims) {
    const TestKvB w = MakeKvB(d.type, d.heads, d.nope, d.v_dim, d.rank, 17);
    ASSERT_TRUE(ValidateKvBProjection(w.proj, d.rank).ok()) << Name(d);
    const int64_t tokens = 7;
    // q_nope inside a q_b_proj-like output [tokens, heads, nope + 9].
    const int64_t head_stride = d.nope + 9;
    const int64_t token_stride = d.heads * head_stride;
    const std::vector<float> q = RandomVector(tokens * token_stride, 3);
    std::vector<float> out(tokens * d.heads * d.rank, NAN);
    AbsorbQueries(w.proj, q.data(), tokens, token_stride, head_stride, out.data());
    double worst = 0.0;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < d.heads; ++h) {
        for (int64_t c = 0; c < d.rank; ++c) {
          double want = 0.0, mag = 0.0;
          for (int64_t i = 0; i < d.nope; ++i) {
            const double term =
                q[t * token_stride + h * head_stride + i] * w.W(h * (d.nope + d.v_dim) + i, c);
            want += term;
            mag += std::fabs(term);
          }
          const double got = out[(t * d.heads + h) * d.rank + c];
          worst = std::max(worst, std::fabs(got - want) / (mag + 1e-30));
        }
      }
    }
    EXPECT_LE(worst, 1e-5) << Name(d);

    // One token at a time, and on other pools: the same bits.
    ThreadPool three(ThreadPool::Options{.num_threads = 3});
    std::vector<float> one(d.heads * d.rank);
    for (int64_t t = 0; t < tokens; ++t) {
      AbsorbQueries(w.proj, q.data() + t * token_stride, 1, token_stride, head_stride, one.data(),
                    &three);
      EXPECT_EQ(
          0, std::memcmp(one.data(), out.data() + t * d.heads * d.rank, one.size() * sizeof(float)))
          << Name(d) << " token " << t;
    }
  }
}

TEST_P(AbsorbTest, ValuesMatchDouble) {
  for (const Dims& d : kDims) {
    const TestKvB w = MakeKvB(d.type, d.heads, d.nope, d.v_dim, d.rank, 23);
    for (int64_t tokens : {1, 6}) {
      const std::vector<float> o = RandomVector(tokens * d.heads * d.rank, 8);
      std::vector<float> values(tokens * d.heads * d.v_dim, NAN);
      ExpandValues(w.proj, o.data(), tokens, values.data());
      double worst = 0.0;
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < d.heads; ++h) {
          for (int64_t j = 0; j < d.v_dim; ++j) {
            double want = 0.0, mag = 0.0;
            for (int64_t c = 0; c < d.rank; ++c) {
              const double term =
                  o[(t * d.heads + h) * d.rank + c] * w.W(h * (d.nope + d.v_dim) + d.nope + j, c);
              want += term;
              mag += std::fabs(term);
            }
            const double got = values[(t * d.heads + h) * d.v_dim + j];
            worst = std::max(worst, std::fabs(got - want) / (mag + 1e-30));
          }
        }
      }
      EXPECT_LE(worst, 1e-5) << Name(d) << " tokens " << tokens;
    }
  }
}

// The whole absorbed pipeline (AbsorbQueries → MlaAttention → ExpandValues) against
// attention with K and V expanded per head from the latent, in double: the
// absorption identity q_nope · (W_uk c) = (W_ukᵀ q_nope) · c, with the checkpoint's
// kv_b_proj layout.
TEST_P(AbsorbTest, AbsorbedPipelineMatchesExpandedAttention) {
  for (const Dims& d : {kDims[0], kDims[1], kDims[3]}) {
    const TestKvB w = MakeKvB(d.type, d.heads, d.nope, d.v_dim, d.rank, 29);
    const int64_t rope = 16;
    const int64_t tokens = 150;
    const int64_t block_tokens = 16;
    const int64_t latent = d.rank + rope;
    const int64_t blocks = (tokens + block_tokens - 1) / block_tokens;
    std::mt19937 rng(4);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<uint16_t> pool(blocks * block_tokens * latent);
    for (uint16_t& v : pool) v = FloatToBf16(normal(rng));
    std::vector<int32_t> table(blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    auto cached = [&](int64_t t, int64_t e) {
      return static_cast<double>(Bf16ToFloat(
          pool[(table[t / block_tokens] * block_tokens + t % block_tokens) * latent + e]));
    };

    const std::vector<float> q_nope = RandomVector(d.heads * d.nope, 5);
    const std::vector<float> q_rope = RandomVector(d.heads * rope, 6);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d.nope + rope));

    std::vector<float> q_abs(d.heads * d.rank);
    AbsorbQueries(w.proj, q_nope.data(), 1, d.heads * d.nope, d.nope, q_abs.data());
    std::vector<float> o_latent(d.heads * d.rank);
    const LatentCacheView view{.pool = pool.data(),
                               .num_blocks = blocks,
                               .block_tokens = block_tokens,
                               .kv_lora_rank = d.rank,
                               .rope_dim = rope};
    MlaAttention(view,
                 {MlaSequenceQueries{.block_table = table.data(),
                                     .first_position = tokens - 1,
                                     .q_absorbed = q_abs.data(),
                                     .q_rope = q_rope.data(),
                                     .out = o_latent.data()}},
                 d.heads, static_cast<float>(scale));
    std::vector<float> values(d.heads * d.v_dim);
    ExpandValues(w.proj, o_latent.data(), 1, values.data());

    double worst = 0.0, largest = 0.0;
    for (int64_t h = 0; h < d.heads; ++h) {
      const int64_t uk = h * (d.nope + d.v_dim);
      const int64_t uv = uk + d.nope;
      std::vector<double> s(tokens);
      double max = -INFINITY;
      for (int64_t t = 0; t < tokens; ++t) {
        double dot = 0.0;
        for (int64_t i = 0; i < d.nope; ++i) {
          double k = 0.0;
          for (int64_t c = 0; c < d.rank; ++c) k += w.W(uk + i, c) * cached(t, c);
          dot += q_nope[h * d.nope + i] * k;
        }
        for (int64_t i = 0; i < rope; ++i) dot += q_rope[h * rope + i] * cached(t, d.rank + i);
        s[t] = dot * scale;
        max = std::max(max, s[t]);
      }
      double sum = 0.0;
      for (double& v : s) sum += (v = std::exp(v - max));
      for (int64_t j = 0; j < d.v_dim; ++j) {
        double want = 0.0;
        for (int64_t t = 0; t < tokens; ++t) {
          double v = 0.0;
          for (int64_t c = 0; c < d.rank; ++c) v += w.W(uv + j, c) * cached(t, c);
          want += s[t] / sum * v;
        }
        worst = std::max(worst, std::fabs(want - values[h * d.v_dim + j]));
        largest = std::max(largest, std::fabs(want));
      }
    }
    ASSERT_GT(largest, 0.0);
    EXPECT_LE(worst, 1e-4 * largest) << Name(d);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, AbsorbTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace yard::kernels::cpu
