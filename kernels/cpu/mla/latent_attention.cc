#include "kernels/cpu/mla/latent_attention.h"

#include <algorithm>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/mla/mla_dispatch.h"
#include "kernels/cpu/mla/mla_kernels.h"

namespace yard::kernels::cpu {
namespace {

// Below this many multiply-adds (rows × tokens × latent) a call runs on the caller
// alone: waking the pool costs a few microseconds.
constexpr int64_t kMinParallelMacs = int64_t{1} << 20;

// A block of consecutive queries of one sequence: the rows that stream the cache
// together.
struct QueryBlock {
  int64_t item = 0;
  int64_t first_query = 0;
  int64_t num_queries = 0;
  int64_t splits = 0;
  // Tokens the last query sees (the block's token range is [0, kv_end)).
  int64_t kv_end = 0;
  // Where its partial states go when its splits run on more than one thread
  // (offset into the shared buffer), else -1: merged in place by one thread.
  int64_t slot_offset = -1;
};

// One split of one query block: the unit of work handed to a thread.
struct Unit {
  int64_t block = 0;
  int64_t split = 0;
};

}  // namespace

void MlaAttention(const LatentCacheView& cache, absl::Span<const MlaSequenceQueries> batch,
                  int64_t heads, float softmax_scale, const MlaAttentionOptions& options) {
  YARD_CHECK(cache.pool != nullptr && cache.num_blocks > 0 && cache.block_tokens > 0 &&
                 cache.kv_lora_rank > 0 && cache.rope_dim >= 0,
             "MlaAttention: bad cache view");
  YARD_CHECK(heads > 0, "MlaAttention: heads must be positive");
  YARD_CHECK(options.kv_split_tokens > 0 && options.kv_split_tokens % 32 == 0,
             "MlaAttention: kv_split_tokens must be a positive multiple of 32");
  const int64_t rank = cache.kv_lora_rank;
  const int64_t latent = cache.latent_dim();
  const int64_t split_tokens = options.kv_split_tokens;
  const int64_t queries_per_block = std::max<int64_t>(1, options.rows_per_block / heads);

  std::vector<QueryBlock> blocks;
  std::vector<Unit> units;
  int64_t max_rows = 0;
  int64_t macs = 0;
  for (size_t item = 0; item < batch.size(); ++item) {
    const MlaSequenceQueries& seq = batch[item];
    if (seq.num_queries <= 0) continue;
    YARD_CHECK(seq.block_table != nullptr && seq.q_absorbed != nullptr &&
                   (seq.q_rope != nullptr || cache.rope_dim == 0) && seq.out != nullptr &&
                   seq.first_position >= 0,
               "MlaAttention: bad sequence");
    const int64_t kv_tokens = seq.first_position + seq.num_queries;
    const int64_t used_blocks = (kv_tokens + cache.block_tokens - 1) / cache.block_tokens;
    for (int64_t b = 0; b < used_blocks; ++b) {
      YARD_CHECK(seq.block_table[b] >= 0 && seq.block_table[b] < cache.num_blocks,
                 "MlaAttention: block id outside the pool");
    }
    for (int64_t q0 = 0; q0 < seq.num_queries; q0 += queries_per_block) {
      QueryBlock block;
      block.item = static_cast<int64_t>(item);
      block.first_query = q0;
      block.num_queries = std::min(queries_per_block, seq.num_queries - q0);
      block.kv_end = seq.first_position + q0 + block.num_queries;
      block.splits = (block.kv_end + split_tokens - 1) / split_tokens;
      for (int64_t s = 0; s < block.splits; ++s) {
        units.push_back(Unit{static_cast<int64_t>(blocks.size()), s});
      }
      max_rows = std::max(max_rows, block.num_queries * heads);
      macs += block.num_queries * heads * block.kv_end * latent;
      blocks.push_back(block);
    }
  }
  if (units.empty()) return;

  const internal::MlaKernel& kernel = internal::ActiveMlaKernel();
  const internal::MlaShape shape{
      .pool = cache.pool,
      .block_tokens = cache.block_tokens,
      .kv_lora_rank = rank,
      .rope_dim = cache.rope_dim,
      .softmax_scale = softmax_scale,
      .bf16 = options.precision == MlaPrecision::kBf16,
  };
  ThreadPool& pool = options.pool != nullptr ? *options.pool : DefaultThreadPool();
  const int64_t n_units = static_cast<int64_t>(units.size());
  const int chunks = macs < kMinParallelMacs ? 1 : pool.NumChunks(n_units);

  // A block whose splits land in two chunks (ThreadPool's static partition) keeps
  // each split's partial state in the shared buffer and is merged after the
  // parallel pass, in the same split order a single thread would use.
  std::vector<int64_t> straddling;
  int64_t slot_floats = 0;
  for (int c = 1; c < chunks; ++c) {
    const Unit& first = units[ThreadPool::ChunkBegin(n_units, chunks, c)];
    QueryBlock& block = blocks[first.block];
    if (first.split == 0 || block.slot_offset >= 0) continue;
    block.slot_offset = slot_floats;
    slot_floats += block.splits * kernel.partial_floats(block.num_queries * heads, rank);
    straddling.push_back(first.block);
  }
  std::vector<float> slots(slot_floats);

  auto row_block = [&](const QueryBlock& block) {
    const MlaSequenceQueries& seq = batch[block.item];
    const int64_t row0 = block.first_query * heads;
    return internal::MlaRowBlock{
        .block_table = seq.block_table,
        .q_absorbed = seq.q_absorbed + row0 * rank,
        .q_rope = seq.q_rope + row0 * cache.rope_dim,
        .rows = block.num_queries * heads,
        .heads = heads,
        .kv_len_first = seq.first_position + block.first_query + 1,
    };
  };
  auto out_rows = [&](const QueryBlock& block) {
    return batch[block.item].out + block.first_query * heads * rank;
  };

  const int64_t partial_floats = kernel.partial_floats(max_rows, rank);
  const int64_t scratch_floats = kernel.scratch_floats(max_rows, rank, cache.rope_dim);
  auto run = [&](int64_t begin, int64_t end) {
    float* scratch = internal::MlaThreadScratch(scratch_floats + 2 * partial_floats);
    float* acc = scratch + scratch_floats;
    float* part = acc + partial_floats;
    for (int64_t u = begin; u < end; ++u) {
      const QueryBlock& block = blocks[units[u].block];
      const int64_t split = units[u].split;
      const int64_t rows = block.num_queries * heads;
      const internal::MlaRowBlock rb = row_block(block);
      const int64_t t_begin = split * split_tokens;
      const int64_t t_end = std::min(block.kv_end, t_begin + split_tokens);
      if (block.slot_offset >= 0) {
        kernel.attend(shape, rb, t_begin, t_end,
                      slots.data() + block.slot_offset + split * kernel.partial_floats(rows, rank),
                      scratch);
        continue;
      }
      if (split == 0) {
        kernel.attend(shape, rb, t_begin, t_end, acc, scratch);
      } else {
        kernel.attend(shape, rb, t_begin, t_end, part, scratch);
        kernel.merge(shape, acc, part, rows);
      }
      if (split == block.splits - 1) kernel.finish(shape, acc, rows, out_rows(block));
    }
  };
  if (chunks == 1) {
    run(0, n_units);
  } else {
    pool.ParallelFor(n_units, run);
  }

  auto fold = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const QueryBlock& block = blocks[straddling[i]];
      const int64_t rows = block.num_queries * heads;
      const int64_t size = kernel.partial_floats(rows, rank);
      float* acc = slots.data() + block.slot_offset;
      for (int64_t s = 1; s < block.splits; ++s) kernel.merge(shape, acc, acc + s * size, rows);
      kernel.finish(shape, acc, rows, out_rows(block));
    }
  };
  if (straddling.size() <= 1) {
    fold(0, static_cast<int64_t>(straddling.size()));
  } else {
    pool.ParallelFor(static_cast<int64_t>(straddling.size()), fold);
  }
}

}  // namespace yard::kernels::cpu
