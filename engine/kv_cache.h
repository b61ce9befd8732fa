// The paged latent KV cache of the fast engine (DESIGN.md, "MLA"): per decoder layer,
// the only state MLA keeps per token is c_kv (kv_lora_rank values, after
// kv_a_layernorm) followed by k_rope (qk_rope_head_dim values, after RoPE). Tokens
// live in fixed-size blocks; a sequence owns a block table (vLLM style) and one block
// id names the same token range in every layer.
//
// Memory, per layer: a contiguous pool
//   [num_blocks][block_tokens][latent_dim] bf16 (uint16_t bits), row-major,
//   latent_dim = kv_lora_rank + qk_rope_head_dim, each row = c_kv then k_rope.
// Token `p` of a sequence sits in block block_table[p / block_tokens], row
// p % block_tokens. Layer pools are page-aligned and start zeroed; a reused block keeps
// whatever its previous owner wrote until overwritten.
//
// Allocation follows "plan, then apply" (STYLE.md): a KvCachePlan is a what-if overlay
// over the cache (reserve/free without mutating it), and PagedLatentCache::Apply
// commits exactly the block ids the plan predicted. Free blocks form a LIFO stack, so
// allocation is deterministic and recently freed (cache-warm) blocks are reused first.
#ifndef SWITCHYARD_ENGINE_KV_CACHE_H_
#define SWITCHYARD_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/config.h"

namespace yard::engine {

// Names a sequence in the cache and the scheduler; assigned by the scheduler.
using SequenceId = int64_t;

// The per-token shape of the cache.
struct LatentCacheShape {
  int64_t num_layers = 0;        // cached layers: decoder layers, plus MTP blocks if wanted
  int64_t kv_lora_rank = 0;      // c_kv values per token
  int64_t qk_rope_head_dim = 0;  // k_rope values per token
  int64_t latent_dim() const { return kv_lora_rank + qk_rope_head_dim; }
};

// The shape for `config`: num_hidden_layers layers, then (with include_mtp) one more
// per MTP module (num_nextn_predict_layers), at layer indices num_hidden_layers + i.
LatentCacheShape LatentCacheShapeFor(const model::ModelConfig& config, bool include_mtp);

struct KvCacheOptions {
  // Tokens per block. 64 keeps block tables short and each block's rows of one layer
  // a 72 KiB contiguous run at latent_dim 576.
  int block_tokens = 64;
  // Blocks in the cache. When 0, derived from byte_budget.
  int64_t num_blocks = 0;
  // Bytes for all layers' pools when num_blocks is 0:
  // num_blocks = byte_budget / (num_layers * block_tokens * latent_dim * 2).
  int64_t byte_budget = 0;
};

struct KvCacheStats {
  int64_t num_blocks = 0;
  int64_t used_blocks = 0;
  int64_t free_blocks = 0;
  int64_t peak_used_blocks = 0;
  int64_t num_sequences = 0;  // sequences holding at least one block
  int block_tokens = 0;
  int64_t pool_bytes = 0;  // all layers
};

// What an attention kernel needs to read one sequence's cache in one layer. Token p's
// row (latent_dim bf16 values: c_kv then k_rope) is at
//   layer_base + (block_table[p / block_tokens] * block_tokens + p % block_tokens)
//                * latent_dim.
// Borrowed: valid while the cache lives and the block table it was made from is
// unchanged (a scheduler step's tables are stable until its next Apply).
struct LatentCacheView {
  const uint16_t* layer_base = nullptr;   // [num_blocks][block_tokens][latent_dim] bf16
  absl::Span<const int32_t> block_table;  // [ceil(tokens / block_tokens)] block ids (or more)
  int64_t tokens = 0;                     // valid tokens: positions [0, tokens)
  int block_tokens = 0;
  int latent_dim = 0;

  // Row of token `position` in [0, tokens): [latent_dim] bf16.
  const uint16_t* Row(int64_t position) const {
    const int64_t block = block_table[position / block_tokens];
    return layer_base + (block * block_tokens + position % block_tokens) * latent_dim;
  }
};

class PagedLatentCache;

// A what-if allocation over a PagedLatentCache: reserves and frees blocks of sequences
// in an overlay, predicting the exact block ids the cache would assign, without
// touching the cache. Apply it with PagedLatentCache::Apply while the cache is
// unchanged since the plan was made.
//
// Not thread-safe; used on the scheduler's thread. The cache must outlive the plan.
class KvCachePlan {
 public:
  explicit KvCachePlan(const PagedLatentCache& cache);

  int64_t free_blocks() const { return base_free_ + static_cast<int64_t>(pushed_.size()); }
  // Tokens the sequence's planned blocks hold (a multiple of block_tokens).
  int64_t CapacityTokens(SequenceId sequence) const;
  // Blocks that Reserve(sequence, tokens) would take (0 if it already has room).
  int64_t BlocksToGrow(SequenceId sequence, int64_t tokens) const;
  // Grows the sequence's table to hold `tokens` tokens. ResourceExhausted (plan
  // unchanged) when fewer than BlocksToGrow blocks are free; InvalidArgument for
  // tokens < 0.
  absl::Status Reserve(SequenceId sequence, int64_t tokens);
  // Releases all of the sequence's blocks (no-op for a sequence without blocks).
  void Free(SequenceId sequence);
  // The planned block table of `sequence` (empty if it holds none). Valid until the
  // next Reserve/Free of that sequence on this plan.
  absl::Span<const int32_t> BlockTable(SequenceId sequence) const;

  bool empty() const { return touched_.empty(); }

 private:
  friend class PagedLatentCache;

  const std::vector<int32_t>* PlannedTable(SequenceId sequence) const;
  int32_t PopFree();

  const PagedLatentCache* cache_;
  uint64_t version_;  // the cache's version when the plan was made
  // Free stack = cache's free stack [0, base_free_) then pushed_ on top.
  int64_t base_free_;
  std::vector<int32_t> pushed_;
  // Planned tables of every sequence this plan touched (empty vector: freed).
  absl::flat_hash_map<SequenceId, std::vector<int32_t>> touched_;
};

// The block pool and every sequence's block table.
//
// Thread rule: allocation (Apply, Reserve, Free) and queries happen on one thread
// (the engine's). Kernels may read and write rows from compute threads while no
// allocation runs, each thread writing rows of its own tokens only. The cache owns its
// memory; views and row pointers borrow it.
class PagedLatentCache {
 public:
  // InvalidArgument for a bad shape or options (block_tokens <= 0, neither num_blocks
  // nor byte_budget, a budget below one block, more than 2^31-1 blocks);
  // ResourceExhausted if the pools cannot be mapped.
  static absl::StatusOr<std::unique_ptr<PagedLatentCache>> Create(const LatentCacheShape& shape,
                                                                  const KvCacheOptions& options);
  ~PagedLatentCache();
  PagedLatentCache(const PagedLatentCache&) = delete;
  PagedLatentCache& operator=(const PagedLatentCache&) = delete;

  const LatentCacheShape& shape() const { return shape_; }
  int block_tokens() const { return block_tokens_; }
  int latent_dim() const { return static_cast<int>(shape_.latent_dim()); }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  // Blocks needed to hold `tokens` tokens.
  int64_t BlocksFor(int64_t tokens) const { return (tokens + block_tokens_ - 1) / block_tokens_; }
  KvCacheStats stats() const;
  // Bumped by every change of allocation state; a plan applies only at its version.
  uint64_t version() const { return version_; }

  // Commits `plan`: afterwards every block table equals the plan's. FailedPrecondition
  // (cache unchanged) if the plan was made on another cache or an older version.
  absl::Status Apply(const KvCachePlan& plan);
  // Single-operation shortcuts: plan and apply at once. Reserve is ResourceExhausted
  // with the cache unchanged when blocks run out.
  absl::Status Reserve(SequenceId sequence, int64_t tokens);
  void Free(SequenceId sequence);

  // The committed block table (empty for a sequence without blocks). Valid until the
  // sequence's table next changes.
  absl::Span<const int32_t> BlockTable(SequenceId sequence) const;
  int64_t CapacityTokens(SequenceId sequence) const {
    return static_cast<int64_t>(BlockTable(sequence).size()) * block_tokens_;
  }

  // Base of layer `layer`'s pool: [num_blocks][block_tokens][latent_dim] bf16.
  const uint16_t* LayerBase(int64_t layer) const;
  uint16_t* MutableLayerBase(int64_t layer);

  // A read view of `tokens` tokens of a sequence in `layer`, through `block_table`
  // (typically a ForwardSequence's) or the sequence's committed table. The table must
  // cover `tokens` (checked: a programmer error otherwise).
  LatentCacheView View(int64_t layer, absl::Span<const int32_t> block_table, int64_t tokens) const;
  LatentCacheView View(int64_t layer, SequenceId sequence, int64_t tokens) const;

  // Where token `position` is written in `layer`: [latent_dim] bf16, c_kv then k_rope.
  // The table must cover position (checked).
  uint16_t* MutableRow(int64_t layer, absl::Span<const int32_t> block_table, int64_t position);
  uint16_t* MutableRow(int64_t layer, SequenceId sequence, int64_t position);

 private:
  friend class KvCachePlan;

  PagedLatentCache(const LatentCacheShape& shape, int block_tokens, int64_t num_blocks,
                   int64_t layer_stride, uint16_t* pool, size_t pool_bytes);
  int64_t RowOffset(absl::Span<const int32_t> block_table, int64_t position) const;

  const LatentCacheShape shape_;
  const int block_tokens_;
  const int64_t num_blocks_;
  const int64_t layer_stride_;  // uint16 elements between layer bases (page-rounded)
  uint16_t* const pool_;        // mmap'd, all layers
  const size_t pool_bytes_;

  uint64_t version_ = 0;
  int64_t peak_used_ = 0;
  std::vector<int32_t> free_;  // stack of free block ids; back is the next allocated
  absl::flat_hash_map<SequenceId, std::vector<int32_t>> tables_;  // non-empty tables only
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_KV_CACHE_H_
