// Continuous batching over sequences sharing one paged latent KV cache.
//
// Each step the scheduler plans a batch without mutating anything (Plan), the caller
// commits it (Apply: KV blocks, admissions, preemptions), runs the forward on
// plan.batch, samples, and reports the sampled tokens back (Complete: append, stop
// conditions, retire). Policy, in order, under a per-step token budget:
//   1. Running sequences in admission order (oldest first). One that is decoding takes
//      1 token; one that is prefilling takes a chunk of at most max_prefill_chunk
//      tokens, from the budget left after the decodes behind it (decodes are never
//      starved by a long prompt). Prefill chunks and decodes share a step (mixed
//      batches).
//   2. If its KV blocks do not fit: a prefill chunk shrinks to what fits; otherwise the
//      newest running sequence is preempted (recompute policy: its blocks are freed and
//      it goes back to the front of the waiting queue with its generated tokens kept,
//      so after re-admission it re-prefills prompt + generated tokens and goes on with
//      the same token index — the continuation is identical, given a forward whose
//      logits do not depend on chunking or batching, i.e. deterministic mode). The
//      oldest running sequence can always proceed alone (Add refuses a request the
//      whole cache could not hold), so the scheduler never livelocks.
//   3. If nothing was preempted, waiting sequences are admitted strictly first come,
//      first served while the budget, max_num_seqs and free blocks for their first
//      chunk allow; the head of the queue that does not fit blocks the rest.
// Stop conditions handled here are those on tokens: eos ids, stop token ids,
// max_tokens, and a full context; stop strings need text and are the engine's (it
// calls Remove).
//
// Sequence states (a finished sequence is removed):
//
//   Add ─▶ WAITING ──admit──▶ PREFILLING ──last prompt chunk──▶ DECODING ──stop──▶ FINISHED
//            ▲                     │                               │
//            └────── PREEMPTED ◀───┴───────────────────────────────┘
//           (blocks freed, front of the queue)      Remove: any state ─▶ FINISHED
//
// Thread rule: one thread (the engine's). Borrows the cache, which must outlive it;
// the scheduler is the only one allocating in it.
#ifndef SWITCHYARD_ENGINE_SCHEDULER_H_
#define SWITCHYARD_ENGINE_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/batch_forward.h"
#include "engine/kv_cache.h"
#include "engine/request.h"

namespace yard::engine {

struct SchedulerOptions {
  // Sequences admitted (holding KV blocks) at once.
  int max_num_seqs = 64;
  // Tokens processed per step, prefill and decode together; >= max_num_seqs, so every
  // running decode fits.
  int64_t max_batch_tokens = 2048;
  // Prompt tokens of one sequence per step.
  int64_t max_prefill_chunk = 512;
  // Tokens (prompt + generated) a sequence may reach: the model's
  // max_position_embeddings, or less. Required (> 1).
  int64_t max_context = 0;
  // The model's end-of-sequence ids: generating one finishes with kEos.
  std::vector<int32_t> eos_token_ids;
};

// InvalidArgument naming the field.
absl::Status ValidateSchedulerOptions(const SchedulerOptions& options);

// What a sequence is asked to do.
struct SequenceSpec {
  std::vector<int32_t> prompt;  // [n] token ids, 1 <= n < max_context
  int64_t max_tokens = 0;       // > 0
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
};

enum class SequenceState { kWaiting, kPrefilling, kDecoding };

// A planned step. `batch` is what the forward runs; the rest is the scheduler's
// bookkeeping for Apply and Complete.
struct StepPlan {
  ForwardBatch batch;
  // Parallel to batch.sequences: tokens the sequence has generated so far, i.e. the
  // index of the token its logits (if any) will produce — the sampling step.
  std::vector<int64_t> num_generated;
  std::vector<SequenceId> admitted;   // WAITING → PREFILLING, in queue order
  std::vector<SequenceId> preempted;  // → WAITING, newest first
  uint64_t version = 0;               // the scheduler's version when planned
  std::optional<KvCachePlan> kv;      // the blocks the step allocates and frees

  bool empty() const { return batch.sequences.empty() && preempted.empty(); }
};

// A sentinel for Complete: sampling failed for this row.
inline constexpr int32_t kNoToken = -1;

// What happened to a sequence in Complete.
struct SequenceUpdate {
  SequenceId sequence_id = 0;
  std::optional<int32_t> token;        // the token appended; absent if sampling failed
  std::optional<FinishReason> finish;  // retired (its blocks are already free)
};

struct SchedulerStats {
  int64_t waiting = 0;
  int64_t running = 0;
  int64_t steps = 0;             // plans applied
  int64_t preemptions = 0;       // total
  int64_t scheduled_tokens = 0;  // total tokens sent to the forward
};

class Scheduler {
 public:
  // InvalidArgument for bad options (ValidateSchedulerOptions).
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerOptions& options,
                                                           PagedLatentCache& cache);

  // Queues a sequence (WAITING). InvalidArgument: empty prompt, max_tokens <= 0, prompt
  // of max_context tokens or more. ResourceExhausted: it could never fit, i.e. its
  // longest run (min(prompt + max_tokens, max_context) - 1 cached tokens) needs more
  // blocks than the whole cache has. Nothing is queued on error.
  absl::StatusOr<SequenceId> Add(SequenceSpec spec);
  // Finishes a sequence in any state, freeing its blocks. NotFound if unknown
  // (finished already).
  absl::Status Remove(SequenceId sequence);

  // The next step; mutates nothing. Empty when there is no work. Must not be called
  // between Apply and Complete (checked).
  StepPlan Plan() const;
  // Commits `plan`. FailedPrecondition (nothing changed) if the scheduler or cache
  // changed since Plan.
  absl::Status Apply(const StepPlan& plan);
  // Reports the step's outcome: `sampled` has one token per batch sequence with
  // needs_logits, in batch order (kNoToken when sampling failed). Advances every
  // batch sequence, appends tokens, retires finished sequences (freeing blocks) and
  // returns one update per appended token or failure, in batch order. Sequences
  // removed since Apply are skipped. FailedPrecondition unless `plan` is the plan last
  // applied and not yet completed; InvalidArgument for a wrong number of tokens.
  absl::StatusOr<std::vector<SequenceUpdate>> Complete(const StepPlan& plan,
                                                       absl::Span<const int32_t> sampled);

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  bool step_in_flight() const { return in_flight_; }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  // Absent once finished (or never added).
  std::optional<SequenceState> state(SequenceId sequence) const;
  // Prompt then generated tokens (empty if unknown).
  absl::Span<const int32_t> tokens(SequenceId sequence) const;
  int64_t num_generated(SequenceId sequence) const;
  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Sequence {
    SequenceId id = 0;
    std::vector<int32_t> tokens;  // prompt then generated
    int64_t prompt_len = 0;
    int64_t computed = 0;  // tokens whose KV rows are in the cache
    int64_t max_tokens = 0;
    std::vector<int32_t> stop_token_ids;
    bool ignore_eos = false;
    SequenceState state = SequenceState::kWaiting;

    int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }
  };

  Scheduler(const SchedulerOptions& options, PagedLatentCache& cache)
      : options_(options), cache_(cache) {}

  std::optional<FinishReason> StopReason(const Sequence& seq, int32_t token) const;
  void Schedule(const Sequence& seq, int64_t count, StepPlan& plan) const;

  const SchedulerOptions options_;
  PagedLatentCache& cache_;

  absl::flat_hash_map<SequenceId, Sequence> sequences_;
  std::deque<SequenceId> waiting_;   // front is next
  std::vector<SequenceId> running_;  // admission order, oldest first
  SequenceId next_id_ = 1;
  uint64_t version_ = 0;
  bool in_flight_ = false;  // applied, not yet completed
  uint64_t applied_version_ = 0;
  int64_t steps_ = 0;
  int64_t preemptions_ = 0;
  int64_t scheduled_tokens_ = 0;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_SCHEDULER_H_
