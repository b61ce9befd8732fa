#include "engine/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::engine {

namespace {

constexpr int64_t kPageBytes = 4096;

int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

LatentCacheShape LatentCacheShapeFor(const model::ModelConfig& config, bool include_mtp) {
  LatentCacheShape shape;
  shape.num_layers = config.num_hidden_layers + (include_mtp ? config.num_nextn_predict_layers : 0);
  shape.kv_lora_rank = config.kv_lora_rank;
  shape.qk_rope_head_dim = config.qk_rope_head_dim;
  return shape;
}

// ---------------------------------------------------------------------------------
// KvCachePlan

KvCachePlan::KvCachePlan(const PagedLatentCache& cache)
    : cache_(&cache), version_(cache.version_), base_free_(cache.free_blocks()) {}

const std::vector<int32_t>* KvCachePlan::PlannedTable(SequenceId sequence) const {
  auto it = touched_.find(sequence);
  if (it != touched_.end()) return &it->second;
  auto base = cache_->tables_.find(sequence);
  return base == cache_->tables_.end() ? nullptr : &base->second;
}

absl::Span<const int32_t> KvCachePlan::BlockTable(SequenceId sequence) const {
  const std::vector<int32_t>* table = PlannedTable(sequence);
  if (table == nullptr) return {};
  return *table;
}

int64_t KvCachePlan::CapacityTokens(SequenceId sequence) const {
  return static_cast<int64_t>(BlockTable(sequence).size()) * cache_->block_tokens_;
}

int64_t KvCachePlan::BlocksToGrow(SequenceId sequence, int64_t tokens) const {
  const int64_t have = static_cast<int64_t>(BlockTable(sequence).size());
  return std::max<int64_t>(0, cache_->BlocksFor(tokens) - have);
}

int32_t KvCachePlan::PopFree() {
  if (!pushed_.empty()) {
    const int32_t block = pushed_.back();
    pushed_.pop_back();
    return block;
  }
  YARD_CHECK(base_free_ > 0, "KvCachePlan::PopFree on an empty free stack");
  --base_free_;
  return cache_->free_[base_free_];
}

absl::Status KvCachePlan::Reserve(SequenceId sequence, int64_t tokens) {
  if (tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache: sequence ", sequence, ": reserve of ", tokens, " tokens"));
  }
  const int64_t grow = BlocksToGrow(sequence, tokens);
  if (grow == 0) return absl::OkStatus();
  if (grow > free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache: sequence ", sequence, " needs ", grow, " more blocks to hold ", tokens,
        " tokens; ", free_blocks(), " of ", cache_->num_blocks_, " blocks free"));
  }
  std::vector<int32_t> table;
  if (const std::vector<int32_t>* current = PlannedTable(sequence)) table = *current;
  table.reserve(table.size() + grow);
  for (int64_t i = 0; i < grow; ++i) table.push_back(PopFree());
  touched_[sequence] = std::move(table);
  return absl::OkStatus();
}

void KvCachePlan::Free(SequenceId sequence) {
  const std::vector<int32_t>* current = PlannedTable(sequence);
  if (current == nullptr || current->empty()) return;
  // Reverse, so that the sequence's first block is the next one handed out.
  for (auto it = current->rbegin(); it != current->rend(); ++it) pushed_.push_back(*it);
  touched_[sequence].clear();
}

// ---------------------------------------------------------------------------------
// PagedLatentCache

absl::StatusOr<std::unique_ptr<PagedLatentCache>> PagedLatentCache::Create(
    const LatentCacheShape& shape, const KvCacheOptions& options) {
  if (shape.num_layers <= 0 || shape.kv_lora_rank < 0 || shape.qk_rope_head_dim < 0 ||
      shape.latent_dim() <= 0 || shape.latent_dim() > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache: bad shape: ", shape.num_layers,
                                                   " layers, kv_lora_rank ", shape.kv_lora_rank,
                                                   ", qk_rope_head_dim ", shape.qk_rope_head_dim));
  }
  if (options.block_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache: block_tokens must be positive, got ", options.block_tokens));
  }
  if (options.num_blocks < 0 || options.byte_budget < 0) {
    return absl::InvalidArgumentError("KV cache: num_blocks and byte_budget must be >= 0");
  }
  const int64_t block_bytes_per_layer =
      static_cast<int64_t>(options.block_tokens) * shape.latent_dim() * 2;
  int64_t num_blocks = options.num_blocks;
  if (num_blocks == 0) {
    if (options.byte_budget == 0) {
      return absl::InvalidArgumentError("KV cache: set num_blocks or byte_budget");
    }
    num_blocks = options.byte_budget / (block_bytes_per_layer * shape.num_layers);
    if (num_blocks == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KV cache: byte_budget ", options.byte_budget, " is below one block (",
          block_bytes_per_layer * shape.num_layers, " bytes over ", shape.num_layers, " layers)"));
    }
  }
  if (num_blocks > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache: ", num_blocks, " blocks do not fit int32 block ids"));
  }
  const int64_t layer_bytes = RoundUp(num_blocks * block_bytes_per_layer, kPageBytes);
  const size_t pool_bytes = static_cast<size_t>(layer_bytes * shape.num_layers);
  // Anonymous mappings are zeroed and committed lazily, page by page.
  void* pool = mmap(nullptr, pool_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (pool == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache: cannot map ", pool_bytes,
                                                     " bytes for ", num_blocks, " blocks x ",
                                                     shape.num_layers, " layers"));
  }
  return std::unique_ptr<PagedLatentCache>(
      new PagedLatentCache(shape, options.block_tokens, num_blocks, layer_bytes / 2,
                           static_cast<uint16_t*>(pool), pool_bytes));
}

PagedLatentCache::PagedLatentCache(const LatentCacheShape& shape, int block_tokens,
                                   int64_t num_blocks, int64_t layer_stride, uint16_t* pool,
                                   size_t pool_bytes)
    : shape_(shape),
      block_tokens_(block_tokens),
      num_blocks_(num_blocks),
      layer_stride_(layer_stride),
      pool_(pool),
      pool_bytes_(pool_bytes) {
  // Block 0 on top of the stack: a fresh cache hands out 0, 1, 2, ...
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

PagedLatentCache::~PagedLatentCache() { munmap(pool_, pool_bytes_); }

KvCacheStats PagedLatentCache::stats() const {
  KvCacheStats stats;
  stats.num_blocks = num_blocks_;
  stats.free_blocks = free_blocks();
  stats.used_blocks = num_blocks_ - stats.free_blocks;
  stats.peak_used_blocks = peak_used_;
  stats.num_sequences = static_cast<int64_t>(tables_.size());
  stats.block_tokens = block_tokens_;
  stats.pool_bytes = static_cast<int64_t>(pool_bytes_);
  return stats;
}

absl::Status PagedLatentCache::Apply(const KvCachePlan& plan) {
  if (plan.cache_ != this) {
    return absl::FailedPreconditionError("KV cache: plan was made on another cache");
  }
  if (plan.version_ != version_) {
    return absl::FailedPreconditionError(absl::StrCat("KV cache: stale plan (version ",
                                                      plan.version_, ", cache at ", version_, ")"));
  }
  free_.resize(plan.base_free_);
  free_.insert(free_.end(), plan.pushed_.begin(), plan.pushed_.end());
  for (const auto& [sequence, table] : plan.touched_) {
    if (table.empty()) {
      tables_.erase(sequence);
    } else {
      tables_[sequence] = table;
    }
  }
  ++version_;
  peak_used_ = std::max(peak_used_, num_blocks_ - free_blocks());
  return absl::OkStatus();
}

absl::Status PagedLatentCache::Reserve(SequenceId sequence, int64_t tokens) {
  KvCachePlan plan(*this);
  absl::Status status = plan.Reserve(sequence, tokens);
  if (!status.ok()) return status;
  return Apply(plan);
}

void PagedLatentCache::Free(SequenceId sequence) {
  KvCachePlan plan(*this);
  plan.Free(sequence);
  if (plan.empty()) return;
  absl::Status status = Apply(plan);
  YARD_CHECK(status.ok(), "applying a fresh plan cannot fail");
}

absl::Span<const int32_t> PagedLatentCache::BlockTable(SequenceId sequence) const {
  auto it = tables_.find(sequence);
  if (it == tables_.end()) return {};
  return it->second;
}

const uint16_t* PagedLatentCache::LayerBase(int64_t layer) const {
  YARD_CHECK(layer >= 0 && layer < shape_.num_layers, "KV cache layer out of range");
  return pool_ + layer * layer_stride_;
}

uint16_t* PagedLatentCache::MutableLayerBase(int64_t layer) {
  YARD_CHECK(layer >= 0 && layer < shape_.num_layers, "KV cache layer out of range");
  return pool_ + layer * layer_stride_;
}

int64_t PagedLatentCache::RowOffset(absl::Span<const int32_t> block_table, int64_t position) const {
  YARD_CHECK(position >= 0, "KV cache position is negative");
  const int64_t index = position / block_tokens_;
  YARD_CHECK(index < static_cast<int64_t>(block_table.size()),
             "KV cache position beyond the block table");
  const int64_t block = block_table[index];
  YARD_CHECK(block >= 0 && block < num_blocks_, "KV cache block id out of range");
  return (block * block_tokens_ + position % block_tokens_) * shape_.latent_dim();
}

LatentCacheView PagedLatentCache::View(int64_t layer, absl::Span<const int32_t> block_table,
                                       int64_t tokens) const {
  YARD_CHECK(tokens >= 0 && BlocksFor(tokens) <= static_cast<int64_t>(block_table.size()),
             "KV cache view beyond the block table");
  LatentCacheView view;
  view.layer_base = LayerBase(layer);
  view.block_table = block_table;
  view.tokens = tokens;
  view.block_tokens = block_tokens_;
  view.latent_dim = latent_dim();
  return view;
}

LatentCacheView PagedLatentCache::View(int64_t layer, SequenceId sequence, int64_t tokens) const {
  return View(layer, BlockTable(sequence), tokens);
}

uint16_t* PagedLatentCache::MutableRow(int64_t layer, absl::Span<const int32_t> block_table,
                                       int64_t position) {
  return MutableLayerBase(layer) + RowOffset(block_table, position);
}

uint16_t* PagedLatentCache::MutableRow(int64_t layer, SequenceId sequence, int64_t position) {
  return MutableRow(layer, BlockTable(sequence), position);
}

}  // namespace yard::engine
