// A deterministic stand-in for the model, for engine and scheduler tests (and later
// integration tests of the serving layers).
//
// Every processed token writes its KV row in every layer as a function of
// (token, position, layer). The logits of a sequence's last token are a function of
// every row of its context [0, end), read back through the batch's block table in
// every layer. So outputs depend on the whole token history exactly as a real model's
// do, and a wrong block table, a row not written, or another sequence overwriting
// this one's blocks changes the logits — the end-to-end check of the cache plumbing.
// ExpectedLogits computes the same logits from the token list alone.
//
// Not thread-safe (the engine's thread). Borrows the cache, which must outlive it.
#ifndef SWITCHYARD_ENGINE_FAKE_BATCH_FORWARD_H_
#define SWITCHYARD_ENGINE_FAKE_BATCH_FORWARD_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/batch_forward.h"
#include "engine/kv_cache.h"

namespace yard::engine {

class FakeBatchForward : public BatchForwardInterface {
 public:
  // Logits lie in [-8, 8) in steps of 1/256.
  FakeBatchForward(PagedLatentCache& cache, int64_t vocab_size)
      : cache_(cache), vocab_size_(vocab_size) {}

  // InvalidArgument for a malformed batch (no tokens, a token outside the vocabulary, a
  // block table not covering the positions, duplicate sequences); or the injected
  // failure.
  absl::StatusOr<ForwardResult> Forward(const ForwardBatch& batch) override;

  // The logits after processing `context` (all tokens of a sequence so far), as
  // Forward computes them: [vocab_size] fp32.
  std::vector<float> ExpectedLogits(absl::Span<const int32_t> context) const;

  // The next `calls` Forward calls fail with `status` (and write nothing).
  void FailNext(int calls, absl::Status status) {
    fail_calls_ = calls;
    fail_status_ = std::move(status);
  }
  // Every batch Forward received, in order.
  const std::vector<ForwardBatch>& batches() const { return batches_; }
  void ClearBatches() { batches_.clear(); }

  // What token `token` at `position` stores in element `element` of its row in
  // `layer` (bf16 bits).
  static uint16_t RowValue(int32_t token, int64_t position, int64_t layer, int64_t element);

 private:
  std::vector<float> LogitsFromDigest(uint64_t digest) const;

  PagedLatentCache& cache_;
  const int64_t vocab_size_;
  int fail_calls_ = 0;
  absl::Status fail_status_;
  std::vector<ForwardBatch> batches_;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_FAKE_BATCH_FORWARD_H_
