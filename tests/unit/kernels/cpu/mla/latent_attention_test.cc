#include "kernels/cpu/mla/latent_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/numerics.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {
namespace {

// A paged cache filled with random BF16 rows, handed out to sequences through
// shuffled block tables (so consecutive tokens live in unrelated blocks).
struct TestCache {
  std::vector<uint16_t> pool;
  LatentCacheView view;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int64_t> tokens;

  float At(size_t seq, int64_t t, int64_t e) const {
    const int64_t block = tables[seq][t / view.block_tokens];
    const int64_t row = block * view.block_tokens + t % view.block_tokens;
    return Bf16ToFloat(pool[row * view.latent_dim() + e]);
  }
};

TestCache MakeCache(int64_t rank, int64_t rope, int64_t block_tokens,
                    const std::vector<int64_t>& tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  TestCache c;
  c.tokens = tokens;
  int64_t blocks = 0;
  for (int64_t t : tokens) blocks += (t + block_tokens - 1) / block_tokens;
  blocks += 3;  // unused blocks in between
  c.view = LatentCacheView{.pool = nullptr,
                           .num_blocks = blocks,
                           .block_tokens = block_tokens,
                           .kv_lora_rank = rank,
                           .rope_dim = rope};
  c.pool.resize(blocks * block_tokens * c.view.latent_dim());
  for (uint16_t& v : c.pool) v = FloatToBf16(normal(rng));
  c.view.pool = c.pool.data();
  std::vector<int32_t> ids(blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  for (int64_t t : tokens) {
    std::vector<int32_t> table;
    for (int64_t b = 0; b < (t + block_tokens - 1) / block_tokens; ++b) {
      table.push_back(ids[next++]);
    }
    c.tables.push_back(std::move(table));
  }
  return c;
}

std::vector<float> RandomVector(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Straightforward attention in double over the BF16-decoded cache: the math the
// kernel must match. q_abs: [n, heads, rank]; q_rope: [n, heads, rope]; query i sees
// tokens [0, first + i].
std::vector<double> ReferenceAttention(const TestCache& c, size_t seq, int64_t first, int64_t n,
                                       int64_t heads, const float* q_abs, const float* q_rope,
                                       double scale) {
  const int64_t rank = c.view.kv_lora_rank;
  const int64_t rope = c.view.rope_dim;
  std::vector<double> out(n * heads * rank, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t visible = first + i + 1;
    for (int64_t h = 0; h < heads; ++h) {
      const float* qa = q_abs + (i * heads + h) * rank;
      const float* qr = q_rope + (i * heads + h) * rope;
      std::vector<double> s(visible);
      double max = -INFINITY;
      for (int64_t t = 0; t < visible; ++t) {
        double dot = 0.0;
        for (int64_t e = 0; e < rank; ++e) dot += static_cast<double>(qa[e]) * c.At(seq, t, e);
        for (int64_t e = 0; e < rope; ++e) {
          dot += static_cast<double>(qr[e]) * c.At(seq, t, rank + e);
        }
        s[t] = dot * scale;
        max = std::max(max, s[t]);
      }
      double sum = 0.0;
      for (double& v : s) sum += (v = std::exp(v - max));
      double* o = out.data() + (i * heads + h) * rank;
      for (int64_t t = 0; t < visible; ++t) {
        for (int64_t e = 0; e < rank; ++e) o[e] += s[t] / sum * c.At(seq, t, e);
      }
    }
  }
  return out;
}

void ExpectNear(const std::vector<double>& want, const float* got, double tolerance,
                const std::string& what) {
  double worst = 0.0;
  size_t worst_at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(want[i] - got[i]);
    if (!(err <= worst)) {
      worst = err;
      worst_at = i;
    }
  }
  EXPECT_LE(worst, tolerance) << what << ": element " << worst_at << " want " << want[worst_at]
                              << " got " << got[worst_at];
}

struct Shape {
  int64_t rank;
  int64_t rope;
  int64_t heads;
  int64_t block_tokens;
};

std::string Name(const Shape& s) {
  return absl::StrCat("rank ", s.rank, " rope ", s.rope, " heads ", s.heads, " block ",
                      s.block_tokens);
}

// Real V2-Lite/V3 dims, and odd ones that exercise every tail (rank and latent not
// multiples of 32, heads not multiples of the row tiles, blocks of 5 tokens).
const Shape kShapes[] = {
    {512, 64, 16, 16},
    {72, 8, 3, 5},
    {40, 0, 5, 7},
    {33, 7, 1, 64},
};

class LatentAttentionTest : public ::testing::TestWithParam<std::tuple<Isa, MlaPrecision>> {
 protected:
  void SetUp() override { isa_ = std::make_unique<ScopedIsa>(std::get<0>(GetParam())); }
  MlaPrecision precision() const { return std::get<1>(GetParam()); }
  // Against the double reference: FP32 arithmetic, or queries and probabilities
  // rounded to BF16 (relative 2^-9 each) on the AVX-512 BF16 path.
  double tolerance(double fp32) const {
    return precision() == MlaPrecision::kBf16 && ActiveIsa() == Isa::kAvx512 ? 3e-2 : fp32;
  }
  std::unique_ptr<ScopedIsa> isa_;
};

TEST_P(LatentAttentionTest, DecodeBatchMatchesDoubleReference) {
  for (const Shape& shape : kShapes) {
    const std::vector<int64_t> tokens = {1, 37, 300, 64};
    TestCache cache = MakeCache(shape.rank, shape.rope, shape.block_tokens, tokens, 7);
    const int64_t rows = shape.heads;
    std::vector<std::vector<float>> qa, qr, out;
    std::vector<MlaSequenceQueries> batch;
    for (size_t s = 0; s < tokens.size(); ++s) {
      qa.push_back(RandomVector(rows * shape.rank, 100 + s));
      qr.push_back(RandomVector(rows * shape.rope, 200 + s));
      out.emplace_back(rows * shape.rank, NAN);
    }
    for (size_t s = 0; s < tokens.size(); ++s) {
      batch.push_back(MlaSequenceQueries{.block_table = cache.tables[s].data(),
                                         .first_position = tokens[s] - 1,
                                         .num_queries = 1,
                                         .q_absorbed = qa[s].data(),
                                         .q_rope = qr[s].data(),
                                         .out = out[s].data()});
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(shape.rank / 4 + shape.rope + 1));
    MlaAttention(cache.view, batch, shape.heads, static_cast<float>(scale),
                 MlaAttentionOptions{.kv_split_tokens = 64, .precision = precision()});
    for (size_t s = 0; s < tokens.size(); ++s) {
      const std::vector<double> want = ReferenceAttention(cache, s, tokens[s] - 1, 1, shape.heads,
                                                          qa[s].data(), qr[s].data(), scale);
      ExpectNear(want, out[s].data(), tolerance(2e-5),
                 absl::StrCat(Name(shape), " seq ", s, " tokens ", tokens[s]));
    }
  }
}

TEST_P(LatentAttentionTest, PrefillChunkMatchesReferenceAndDecode) {
  for (const Shape& shape : kShapes) {
    // A chunk of 45 queries after 70 cached tokens: causal inside the chunk.
    const int64_t p0 = 70;
    const int64_t n = 45;
    TestCache cache = MakeCache(shape.rank, shape.rope, shape.block_tokens, {p0 + n}, 11);
    const int64_t rows = n * shape.heads;
    const std::vector<float> qa = RandomVector(rows * shape.rank, 5);
    const std::vector<float> qr = RandomVector(rows * shape.rope, 6);
    std::vector<float> out(rows * shape.rank, NAN);
    const float scale = 0.125f;
    const MlaSequenceQueries chunk{.block_table = cache.tables[0].data(),
                                   .first_position = p0,
                                   .num_queries = n,
                                   .q_absorbed = qa.data(),
                                   .q_rope = qr.data(),
                                   .out = out.data()};
    MlaAttention(
        cache.view, {chunk}, shape.heads, scale,
        MlaAttentionOptions{.kv_split_tokens = 32, .rows_per_block = 20, .precision = precision()});
    ExpectNear(ReferenceAttention(cache, 0, p0, n, shape.heads, qa.data(), qr.data(), scale),
               out.data(), tolerance(2e-5), Name(shape));

    // Each query alone, as decode at its position, gives the same bits.
    std::vector<float> single(shape.heads * shape.rank);
    for (int64_t i = 0; i < n; ++i) {
      const MlaSequenceQueries one{.block_table = cache.tables[0].data(),
                                   .first_position = p0 + i,
                                   .num_queries = 1,
                                   .q_absorbed = qa.data() + i * shape.heads * shape.rank,
                                   .q_rope = qr.data() + i * shape.heads * shape.rope,
                                   .out = single.data()};
      MlaAttention(cache.view, {one}, shape.heads, scale,
                   MlaAttentionOptions{.kv_split_tokens = 32, .precision = precision()});
      ASSERT_EQ(0, std::memcmp(single.data(), out.data() + i * shape.heads * shape.rank,
                               single.size() * sizeof(float)))
          << Name(shape) << " query " << i;
    }
  }
}

TEST_P(LatentAttentionTest, BitwiseIndependentOfThreadsAndBatch) {
  const Shape shape{512, 64, 16, 16};
  const std::vector<int64_t> tokens = {700, 3, 129, 1000, 256};
  TestCache cache = MakeCache(shape.rank, shape.rope, shape.block_tokens, tokens, 3);
  const int64_t per_seq = shape.heads * shape.rank;
  std::vector<float> qa = RandomVector(tokens.size() * per_seq, 1);
  std::vector<float> qr = RandomVector(tokens.size() * shape.heads * shape.rope, 2);
  auto run = [&](ThreadPool* pool, const std::vector<size_t>& which) {
    std::vector<float> out(tokens.size() * per_seq, 0.0f);
    std::vector<MlaSequenceQueries> batch;
    for (size_t s : which) {
      batch.push_back(MlaSequenceQueries{.block_table = cache.tables[s].data(),
                                         .first_position = tokens[s] - 1,
                                         .num_queries = 1,
                                         .q_absorbed = qa.data() + s * per_seq,
                                         .q_rope = qr.data() + s * shape.heads * shape.rope,
                                         .out = out.data() + s * per_seq});
    }
    MlaAttention(
        cache.view, batch, shape.heads, 0.07f,
        MlaAttentionOptions{.kv_split_tokens = 64, .precision = precision(), .pool = pool});
    return out;
  };
  ThreadPool one(ThreadPool::Options{.num_threads = 1});
  ThreadPool two(ThreadPool::Options{.num_threads = 2});
  ThreadPool three(ThreadPool::Options{.num_threads = 3});
  ThreadPool seven(ThreadPool::Options{.num_threads = 7});
  const std::vector<size_t> all = {0, 1, 2, 3, 4};
  const std::vector<float> base = run(&one, all);
  for (ThreadPool* pool : {&two, &three, &seven}) {
    const std::vector<float> other = run(pool, all);
    EXPECT_EQ(0, std::memcmp(base.data(), other.data(), base.size() * sizeof(float)))
        << pool->num_threads() << " threads";
  }
  // Each sequence alone gives the bits it got in the batch.
  for (size_t s : all) {
    const std::vector<float> alone = run(&three, {s});
    EXPECT_EQ(0, std::memcmp(base.data() + s * per_seq, alone.data() + s * per_seq,
                             per_seq * sizeof(float)))
        << "sequence " << s;
  }
}

TEST_P(LatentAttentionTest, LargeScoresStayFinite) {
  // Scores of tens to hundreds: the online softmax must rescale, not overflow.
  const Shape shape{64, 16, 2, 8};
  TestCache cache = MakeCache(shape.rank, shape.rope, shape.block_tokens, {90}, 9);
  std::vector<float> qa = RandomVector(shape.heads * shape.rank, 4, 5.0f);
  std::vector<float> qr = RandomVector(shape.heads * shape.rope, 5, 5.0f);
  std::vector<float> out(shape.heads * shape.rank);
  const MlaSequenceQueries seq{.block_table = cache.tables[0].data(),
                               .first_position = 89,
                               .num_queries = 1,
                               .q_absorbed = qa.data(),
                               .q_rope = qr.data(),
                               .out = out.data()};
  MlaAttention(cache.view, {seq}, shape.heads, 1.0f,
               MlaAttentionOptions{.kv_split_tokens = 32, .precision = precision()});
  // BF16 queries move scores of ~50 by ~0.1: compare loosely there.
  ExpectNear(ReferenceAttention(cache, 0, 89, 1, shape.heads, qa.data(), qr.data(), 1.0),
             out.data(), tolerance(1e-4) * 30, "large scores");
}

INSTANTIATE_TEST_SUITE_P(AllIsas, LatentAttentionTest,
                         ::testing::Combine(::testing::ValuesIn(SupportedIsas()),
                                            ::testing::Values(MlaPrecision::kFp32,
                                                              MlaPrecision::kBf16)),
                         [](const ::testing::TestParamInfo<std::tuple<Isa, MlaPrecision>>& info) {
                           return absl::StrCat(
                               IsaName(std::get<0>(info.param)),
                               std::get<1>(info.param) == MlaPrecision::kBf16 ? "_bf16" : "_fp32");
                         });

}  // namespace
}  // namespace yard::kernels::cpu
