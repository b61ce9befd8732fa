// The engine's one call into the model: run a batch of sequences' new tokens through
// every layer, writing their latent KV rows into the paged cache and returning logits
// where asked. The fast CPU model runner implements it over kernels/; tests use
// FakeBatchForward.
#ifndef SWITCHYARD_ENGINE_BATCH_FORWARD_H_
#define SWITCHYARD_ENGINE_BATCH_FORWARD_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kv_cache.h"

namespace yard::engine {

// One sequence's share of a step: its tokens at positions
// [start_position, start_position + tokens.size()).
struct ForwardSequence {
  SequenceId sequence_id = 0;
  // [n] token ids, n >= 1: a prefill chunk, or the one token of a decode step.
  std::vector<int32_t> tokens;
  int64_t start_position = 0;
  // Block ids of the sequence in the paged cache (the same in every layer), already
  // allocated: they cover at least start_position + n tokens. Positions below
  // start_position were written by earlier steps; the forward writes rows
  // [start_position, start_position + n) in every layer, and token i attends causally
  // to positions [0, start_position + i].
  std::vector<int32_t> block_table;
  // Whether the logits of the last token are wanted (the end of the prompt or a decode
  // step); a mid-prompt chunk only fills the cache.
  bool needs_logits = false;

  int64_t end_position() const { return start_position + static_cast<int64_t>(tokens.size()); }
};

struct ForwardBatch {
  std::vector<ForwardSequence> sequences;  // distinct sequence ids

  int64_t num_tokens() const {
    int64_t n = 0;
    for (const ForwardSequence& s : sequences) n += static_cast<int64_t>(s.tokens.size());
    return n;
  }
  int64_t num_logit_rows() const {
    int64_t n = 0;
    for (const ForwardSequence& s : sequences) n += s.needs_logits ? 1 : 0;
    return n;
  }
};

struct ForwardResult {
  // [num_logit_rows, vocab_size] fp32, row-major: one row per sequence with
  // needs_logits, in batch order, the logits of that sequence's last token.
  std::vector<float> logits;
};

// Implementations are called on the engine's thread, one call at a time; they may fan
// work out to a compute pool but return only when the batch is done. In deterministic
// mode a sequence's logits must not depend on the rest of the batch.
class BatchForwardInterface {
 public:
  virtual ~BatchForwardInterface() = default;
  // An error fails every request in the batch (the engine keeps serving others); the
  // cache rows of the batch's positions are then unspecified.
  virtual absl::StatusOr<ForwardResult> Forward(const ForwardBatch& batch) = 0;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_BATCH_FORWARD_H_
