#include "engine/kv_cache.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/config.h"

namespace yard::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// 2 layers, latent_dim 6 + 2 = 8, 4 tokens per block.
LatentCacheShape SmallShape() {
  LatentCacheShape shape;
  shape.num_layers = 2;
  shape.kv_lora_rank = 6;
  shape.qk_rope_head_dim = 2;
  return shape;
}

std::unique_ptr<PagedLatentCache> MakeCache(int64_t num_blocks, int block_tokens = 4) {
  KvCacheOptions options;
  options.block_tokens = block_tokens;
  options.num_blocks = num_blocks;
  auto cache = PagedLatentCache::Create(SmallShape(), options);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::move(*cache);
}

std::vector<int32_t> Table(const PagedLatentCache& cache, SequenceId id) {
  auto span = cache.BlockTable(id);
  return std::vector<int32_t>(span.begin(), span.end());
}

TEST(KvCacheCreateTest, RejectsBadOptions) {
  KvCacheOptions options;
  options.num_blocks = 4;
  options.block_tokens = 0;
  EXPECT_EQ(PagedLatentCache::Create(SmallShape(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.block_tokens = 4;
  options.num_blocks = 0;
  options.byte_budget = 0;
  EXPECT_EQ(PagedLatentCache::Create(SmallShape(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.byte_budget = 127;  // one block of 2 layers x 4 tokens x 8 x 2 bytes = 128
  EXPECT_EQ(PagedLatentCache::Create(SmallShape(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  LatentCacheShape bad = SmallShape();
  bad.num_layers = 0;
  options.num_blocks = 4;
  EXPECT_EQ(PagedLatentCache::Create(bad, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.num_blocks = int64_t{1} << 32;
  EXPECT_EQ(PagedLatentCache::Create(SmallShape(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KvCacheCreateTest, ByteBudgetSetsBlockCount) {
  KvCacheOptions options;
  options.block_tokens = 4;
  options.byte_budget = 1000;  // 128 bytes per block over both layers
  auto cache = PagedLatentCache::Create(SmallShape(), options);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->num_blocks(), 7);
  EXPECT_EQ((*cache)->free_blocks(), 7);
  EXPECT_EQ((*cache)->latent_dim(), 8);
}

TEST(KvCacheCreateTest, ShapeFromConfig) {
  model::ModelConfig config;
  config.num_hidden_layers = 27;
  config.kv_lora_rank = 512;
  config.qk_rope_head_dim = 64;
  config.num_nextn_predict_layers = 1;
  EXPECT_EQ(LatentCacheShapeFor(config, false).num_layers, 27);
  EXPECT_EQ(LatentCacheShapeFor(config, true).num_layers, 28);
  EXPECT_EQ(LatentCacheShapeFor(config, false).latent_dim(), 576);
}

TEST(KvCacheTest, ReserveGrowsAndFreeReturnsEverything) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->Reserve(1, 5).ok());
  EXPECT_THAT(Table(*cache, 1), ElementsAre(0, 1));
  EXPECT_EQ(cache->CapacityTokens(1), 8);
  ASSERT_TRUE(cache->Reserve(1, 8).ok());  // already room
  EXPECT_THAT(Table(*cache, 1), ElementsAre(0, 1));
  ASSERT_TRUE(cache->Reserve(1, 9).ok());
  EXPECT_THAT(Table(*cache, 1), ElementsAre(0, 1, 2));
  ASSERT_TRUE(cache->Reserve(2, 1).ok());
  EXPECT_THAT(Table(*cache, 2), ElementsAre(3));

  KvCacheStats stats = cache->stats();
  EXPECT_EQ(stats.used_blocks, 4);
  EXPECT_EQ(stats.free_blocks, 4);
  EXPECT_EQ(stats.num_sequences, 2);

  cache->Free(1);
  EXPECT_THAT(Table(*cache, 1), IsEmpty());
  cache->Free(1);  // idempotent
  cache->Free(99);
  stats = cache->stats();
  EXPECT_EQ(stats.used_blocks, 1);
  EXPECT_EQ(stats.free_blocks, 7);
  EXPECT_EQ(stats.num_sequences, 1);
  EXPECT_EQ(stats.peak_used_blocks, 4);
  EXPECT_EQ(cache->Reserve(3, -1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(KvCacheTest, ExhaustionIsResourceExhaustedAndChangesNothing) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->Reserve(1, 12).ok());  // 3 blocks
  ASSERT_TRUE(cache->Reserve(2, 1).ok());   // the last one
  const uint64_t version = cache->version();
  const std::vector<int32_t> t1 = Table(*cache, 1), t2 = Table(*cache, 2);

  absl::Status status = cache->Reserve(2, 5);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_EQ(cache->Reserve(3, 1).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache->version(), version);
  EXPECT_EQ(Table(*cache, 1), t1);
  EXPECT_EQ(Table(*cache, 2), t2);
  EXPECT_THAT(Table(*cache, 3), IsEmpty());
  EXPECT_EQ(cache->free_blocks(), 0);
  EXPECT_EQ(cache->stats().num_sequences, 2);

  cache->Free(1);
  EXPECT_TRUE(cache->Reserve(2, 16).ok());  // grows into the freed blocks
  EXPECT_EQ(cache->free_blocks(), 0);
}

TEST(KvCacheTest, FreedBlocksAreReusedFirstBlockFirst) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->Reserve(1, 8).ok());  // 0, 1
  ASSERT_TRUE(cache->Reserve(2, 8).ok());  // 2, 3
  cache->Free(1);
  ASSERT_TRUE(cache->Reserve(3, 12).ok());
  EXPECT_THAT(Table(*cache, 3), ElementsAre(0, 1, 4));
}

TEST(KvCacheTest, ViewsAndRowsAddressTheRightMemory) {
  auto cache = MakeCache(6);
  // Interleave growth so tables are not contiguous: 1 -> {0, 2, 4}, 2 -> {1, 3}.
  ASSERT_TRUE(cache->Reserve(1, 4).ok());
  ASSERT_TRUE(cache->Reserve(2, 4).ok());
  ASSERT_TRUE(cache->Reserve(1, 8).ok());
  ASSERT_TRUE(cache->Reserve(2, 7).ok());
  ASSERT_TRUE(cache->Reserve(1, 10).ok());
  ASSERT_THAT(Table(*cache, 1), ElementsAre(0, 2, 4));
  ASSERT_THAT(Table(*cache, 2), ElementsAre(1, 3));

  const int latent = cache->latent_dim();
  auto value = [](int64_t layer, SequenceId seq, int64_t pos, int j) {
    return static_cast<uint16_t>(layer * 10000 + seq * 1000 + pos * 10 + j);
  };
  const std::vector<std::pair<SequenceId, int64_t>> seqs = {{1, 10}, {2, 7}};
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (auto [seq, n] : seqs) {
      for (int64_t p = 0; p < n; ++p) {
        uint16_t* row = cache->MutableRow(layer, seq, p);
        for (int j = 0; j < latent; ++j) row[j] = value(layer, seq, p, j);
      }
    }
  }
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (auto [seq, n] : seqs) {
      const LatentCacheView view = cache->View(layer, seq, n);
      EXPECT_EQ(view.layer_base, cache->LayerBase(layer));
      EXPECT_EQ(view.tokens, n);
      EXPECT_EQ(view.block_tokens, 4);
      EXPECT_EQ(view.latent_dim, latent);
      for (int64_t p = 0; p < n; ++p) {
        // The documented layout, computed by hand.
        const uint16_t* expected_row =
            view.layer_base + (view.block_table[p / 4] * int64_t{4} + p % 4) * latent;
        ASSERT_EQ(view.Row(p), expected_row);
        for (int j = 0; j < latent; ++j) {
          ASSERT_EQ(view.Row(p)[j], value(layer, seq, p, j))
              << "layer " << layer << " seq " << seq << " pos " << p;
        }
      }
    }
  }
  // Pools are page-aligned and fresh memory reads zero.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(cache->LayerBase(1)) % 4096, 0u);
  EXPECT_EQ(cache->LayerBase(1)[5 * 4 * latent], 0);  // block 5 never written
}

TEST(KvCachePlanTest, PlanDoesNotMutateAndApplyCommitsThePrediction) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->Reserve(1, 8).ok());  // 0, 1
  ASSERT_TRUE(cache->Reserve(2, 4).ok());  // 2
  const uint64_t version = cache->version();

  KvCachePlan plan(*cache);
  plan.Free(1);
  EXPECT_EQ(plan.free_blocks(), 7);
  ASSERT_TRUE(plan.Reserve(3, 16).ok());  // reuses 0, 1 then 3, 4
  ASSERT_TRUE(plan.Reserve(2, 5).ok());   // 5
  EXPECT_THAT(plan.BlockTable(3), ElementsAre(0, 1, 3, 4));
  EXPECT_THAT(plan.BlockTable(2), ElementsAre(2, 5));
  EXPECT_THAT(plan.BlockTable(1), IsEmpty());
  EXPECT_EQ(plan.BlocksToGrow(2, 13), 2);
  EXPECT_EQ(plan.Reserve(4, 13).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(plan.free_blocks(), 2);  // the failed reserve changed nothing

  // The cache is untouched.
  EXPECT_EQ(cache->version(), version);
  EXPECT_THAT(Table(*cache, 1), ElementsAre(0, 1));
  EXPECT_THAT(Table(*cache, 3), IsEmpty());
  EXPECT_EQ(cache->free_blocks(), 5);

  ASSERT_TRUE(cache->Apply(plan).ok());
  EXPECT_THAT(Table(*cache, 3), ElementsAre(0, 1, 3, 4));
  EXPECT_THAT(Table(*cache, 2), ElementsAre(2, 5));
  EXPECT_THAT(Table(*cache, 1), IsEmpty());
  EXPECT_EQ(cache->free_blocks(), 2);
  // A plan applies once.
  EXPECT_EQ(cache->Apply(plan).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(KvCachePlanTest, StaleOrForeignPlansAreRefused) {
  auto cache = MakeCache(8);
  auto other = MakeCache(8);
  KvCachePlan plan(*cache);
  ASSERT_TRUE(plan.Reserve(1, 4).ok());
  EXPECT_EQ(other->Apply(plan).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(cache->Reserve(2, 4).ok());
  EXPECT_EQ(cache->Apply(plan).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Table(*cache, 1), IsEmpty());
}

// Many sequences growing and dying at random: every block is owned by exactly one
// sequence or free, and a request for at most the free blocks always succeeds however
// scattered they are.
TEST(KvCacheTest, FragmentationOverManySequences) {
  constexpr int64_t kBlocks = 64;
  auto cache = MakeCache(kBlocks);
  std::mt19937 rng(7);
  std::set<SequenceId> live;
  std::vector<int64_t> tokens(40, 0);
  for (int iter = 0; iter < 5000; ++iter) {
    const SequenceId seq = static_cast<SequenceId>(rng() % 40);
    if (rng() % 3 == 0) {
      cache->Free(seq);
      live.erase(seq);
      tokens[seq] = 0;
    } else {
      const int64_t target = tokens[seq] + static_cast<int64_t>(rng() % 20);
      const int64_t need = cache->BlocksFor(target) - cache->CapacityTokens(seq) / 4;
      const absl::Status status = cache->Reserve(seq, target);
      if (std::max<int64_t>(need, 0) <= cache->free_blocks() || status.ok()) {
        ASSERT_TRUE(status.ok()) << status << " need " << need;
        tokens[seq] = target;
        if (target > 0) live.insert(seq);
      } else {
        ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
      }
    }
    // Invariant: tables and the free count partition the blocks.
    std::vector<int> owner(kBlocks, 0);
    int64_t used = 0;
    for (SequenceId s = 0; s < 40; ++s) {
      for (int32_t b : cache->BlockTable(s)) {
        ASSERT_GE(b, 0);
        ASSERT_LT(b, kBlocks);
        ASSERT_EQ(owner[b]++, 0) << "block " << b << " owned twice";
        ++used;
      }
      ASSERT_GE(cache->CapacityTokens(s), tokens[s]);
    }
    ASSERT_EQ(used + cache->free_blocks(), kBlocks);
    ASSERT_EQ(cache->stats().used_blocks, used);
  }
  for (SequenceId s = 0; s < 40; ++s) cache->Free(s);
  EXPECT_EQ(cache->free_blocks(), kBlocks);
  EXPECT_TRUE(cache->Reserve(100, kBlocks * 4).ok());  // one sequence takes everything
}

}  // namespace
}  // namespace yard::engine
