#include "engine/fake_batch_forward.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace yard::engine {

namespace {

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Folds one row into the running digest: every element, so a partial overwrite shows.
uint64_t Fold(uint64_t digest, const uint16_t* row, int latent_dim) {
  for (int j = 0; j < latent_dim; ++j)
    digest = Mix(digest ^ (row[j] + (static_cast<uint64_t>(j) << 16)));
  return digest;
}

}  // namespace

uint16_t FakeBatchForward::RowValue(int32_t token, int64_t position, int64_t layer,
                                    int64_t element) {
  const uint64_t h = Mix(static_cast<uint64_t>(token) * 0x9e3779b97f4a7c15ULL ^
                         Mix(static_cast<uint64_t>(position) + 0x1234567ULL) ^
                         Mix(static_cast<uint64_t>(layer) << 20 | static_cast<uint64_t>(element)));
  return static_cast<uint16_t>(h >> 48);
}

std::vector<float> FakeBatchForward::LogitsFromDigest(uint64_t digest) const {
  std::vector<float> logits(vocab_size_);
  for (int64_t v = 0; v < vocab_size_; ++v) {
    const uint64_t h = Mix(digest ^ Mix(static_cast<uint64_t>(v) + 0x51ed27ULL));
    logits[v] = static_cast<float>(static_cast<int64_t>(h >> 52)) / 256.0f - 8.0f;
  }
  return logits;
}

std::vector<float> FakeBatchForward::ExpectedLogits(absl::Span<const int32_t> context) const {
  const int64_t layers = cache_.shape().num_layers;
  const int latent_dim = cache_.latent_dim();
  std::vector<uint16_t> row(latent_dim);
  uint64_t digest = 0;
  for (int64_t layer = 0; layer < layers; ++layer) {
    for (int64_t p = 0; p < static_cast<int64_t>(context.size()); ++p) {
      for (int j = 0; j < latent_dim; ++j) row[j] = RowValue(context[p], p, layer, j);
      digest = Fold(digest, row.data(), latent_dim);
    }
  }
  return LogitsFromDigest(digest);
}

absl::StatusOr<ForwardResult> FakeBatchForward::Forward(const ForwardBatch& batch) {
  batches_.push_back(batch);
  if (fail_calls_ > 0) {
    --fail_calls_;
    return fail_status_;
  }
  absl::flat_hash_set<SequenceId> seen;
  for (const ForwardSequence& fs : batch.sequences) {
    const std::string where = absl::StrCat("fake forward: sequence ", fs.sequence_id, ": ");
    if (!seen.insert(fs.sequence_id).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "appears twice"));
    }
    if (fs.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(where, "no tokens"));
    if (fs.start_position < 0 ||
        cache_.BlocksFor(fs.end_position()) > static_cast<int64_t>(fs.block_table.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "block table of ", fs.block_table.size(),
                       " blocks for positions up to ", fs.end_position()));
    }
    for (int32_t block : fs.block_table) {
      if (block < 0 || block >= cache_.num_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "block id ", block));
      }
    }
    for (int32_t token : fs.tokens) {
      if (token < 0 || token >= vocab_size_) {
        return absl::InvalidArgumentError(absl::StrCat(where, "token ", token));
      }
    }
  }
  const int64_t layers = cache_.shape().num_layers;
  const int latent_dim = cache_.latent_dim();
  ForwardResult result;
  result.logits.reserve(batch.num_logit_rows() * vocab_size_);
  for (const ForwardSequence& fs : batch.sequences) {
    for (int64_t layer = 0; layer < layers; ++layer) {
      for (size_t i = 0; i < fs.tokens.size(); ++i) {
        const int64_t position = fs.start_position + static_cast<int64_t>(i);
        uint16_t* row = cache_.MutableRow(layer, fs.block_table, position);
        for (int j = 0; j < latent_dim; ++j) row[j] = RowValue(fs.tokens[i], position, layer, j);
      }
    }
    if (!fs.needs_logits) continue;
    uint64_t digest = 0;
    for (int64_t layer = 0; layer < layers; ++layer) {
      const LatentCacheView view = cache_.View(layer, fs.block_table, fs.end_position());
      for (int64_t p = 0; p < view.tokens; ++p) digest = Fold(digest, view.Row(p), latent_dim);
    }
    const std::vector<float> logits = LogitsFromDigest(digest);
    result.logits.insert(result.logits.end(), logits.begin(), logits.end());
  }
  return result;
}

}  // namespace yard::engine
