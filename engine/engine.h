// The single-process engine: requests in, streamed tokens out. Each Step plans a batch
// with the continuous-batching Scheduler, runs it through a BatchForwardInterface,
// samples each sequence that produced logits (per-request seeded RNG, so a request's
// tokens never depend on its batch-mates), applies stop conditions and streams events.
//
// Usage (one thread, or one actor's strand):
//   ASSIGN_OR_RETURN(auto cache, PagedLatentCache::Create(shape, kv_options));
//   MyModelRunner runner(..., *cache);   // implements BatchForwardInterface
//   ASSIGN_OR_RETURN(auto engine, Engine::Create(options, *cache, runner, &detok));
//   RETURN_IF_ERROR(engine->Submit(request, [](const StreamEvent& e) { ... }));
//   engine->RunUntilIdle();              // or Step() from the owner's loop
//
// Thread rule: not thread-safe. Every method, the forward and the stream callbacks run
// on the caller's one thread. Callbacks are invoked from inside Submit, Cancel and
// Step, once the engine's state is consistent, one at a time and in order; a callback
// may call Submit and Cancel (the events those cause are delivered after it returns),
// never Step or RunUntilIdle (checked).
//
// Ownership: borrows the cache, the forward and the detokenizer (all must outlive the
// engine); owns the scheduler and every request's callback until its final event.
//
// A request's life:
//
//   Submit ─ok─▶ ACTIVE (waiting / prefilling / decoding / preempted: the scheduler's)
//     │            │  token events (0 or more)
//     │ error      ▼
//     ▼          FINISHED: exactly one final event (eos, length, stop, cancelled, error)
//   nothing         — then the engine forgets the id (it may be reused)
//   queued, no event
#ifndef SWITCHYARD_ENGINE_ENGINE_H_
#define SWITCHYARD_ENGINE_ENGINE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/batch_forward.h"
#include "engine/detokenizer.h"
#include "engine/kv_cache.h"
#include "engine/request.h"
#include "engine/sampling.h"
#include "engine/scheduler.h"
#include "engine/stop_strings.h"

namespace yard::engine {

struct EngineOptions {
  // Rows of the forward's logits; token ids must be below it. Required.
  int64_t vocab_size = 0;
  SchedulerOptions scheduler;
  // Requests without SamplingParams::seed get DeriveSeed(seed, n) for the n-th
  // accepted request, so a run is reproducible given the order of submissions.
  uint64_t seed = 0;
  // Waiting requests at most; beyond it Submit is ResourceExhausted. 0: no limit.
  int64_t max_waiting = 0;
};

struct StepStats {
  int64_t sequences = 0;  // in the batch
  int64_t tokens = 0;     // processed by the forward
  int64_t admitted = 0;
  int64_t preempted = 0;
  int64_t generated = 0;  // tokens sampled
  int64_t finished = 0;   // requests that got their final event this step
};

struct EngineStats {
  SchedulerStats scheduler;
  KvCacheStats kv;
  int64_t active_requests = 0;
  int64_t accepted_requests = 0;  // total
  int64_t finished_requests = 0;  // total
  int64_t generated_tokens = 0;   // total
};

class Engine {
 public:
  // InvalidArgument for bad options (vocab_size <= 0, ValidateSchedulerOptions).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      const EngineOptions& options, PagedLatentCache& cache, BatchForwardInterface& forward,
      const DetokenizerInterface* detokenizer = nullptr);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Accepts a request; `callback` then gets its events. Errors (nothing queued, no
  // event): InvalidArgument for an empty id or callback, an empty prompt, a prompt of
  // max_context tokens or more, max_tokens <= 0, a token id (prompt or stop) outside
  // [0, vocab_size), an empty stop string, stop strings without a detokenizer, bad
  // sampling params; AlreadyExists for the id of an unfinished request;
  // ResourceExhausted when the waiting queue is full or the request could never fit
  // in the KV cache.
  absl::Status Submit(Request request, StreamCallback callback);

  // Ends a request now (waiting or running): frees its blocks and streams its final
  // kCancelled event. NotFound if no unfinished request has that id.
  absl::Status Cancel(absl::string_view request_id);

  // One iteration: plan, forward, sample, apply, stream. Does nothing when idle.
  StepStats Step();
  // Steps until every request has finished; returns the number of steps.
  int64_t RunUntilIdle();

  bool idle() const { return !scheduler_->has_work() && outbox_.empty(); }
  EngineStats stats() const;

 private:
  struct RequestRecord {
    std::string id;
    SequenceId sequence = 0;
    SamplingParams sampling;
    uint64_t seed = 0;
    uint64_t generated_before = 0;  // Request::generated_before
    // Text released by replaying a resumed request's tokens, sent with its next event.
    std::string pending_text;
    StreamCallback callback;
    std::unique_ptr<TokenTextStreamInterface> text;  // null without a detokenizer
    std::optional<StopStringMatcher> stops;          // with a detokenizer
    bool finished = false;                           // final event queued
  };

  Engine(const EngineOptions& options, PagedLatentCache& cache, BatchForwardInterface& forward,
         const DetokenizerInterface* detokenizer, std::unique_ptr<Scheduler> scheduler);

  absl::Status ValidateRequest(const Request& request, const StreamCallback& callback) const;
  // Feeds a resumed request's earlier tokens through its text stream and stop-string
  // matcher (Request::generated_before, ::streamed_text).
  void ReplayGenerated(RequestRecord& record, const std::vector<int32_t>& tokens,
                       absl::string_view sent);
  // Text of `token` through the request's detokenizer and stop strings.
  StopStringMatcher::Result TokenText(RequestRecord& record, int32_t token);
  // Everything the request's detokenizer and stop matcher still hold.
  std::string FlushText(RequestRecord& record);
  // Queues the request's final event (`event` may carry its last token and text).
  void Finish(RequestRecord& record, StreamEvent event, FinishReason reason,
              absl::Status status = absl::OkStatus());
  // Fails every request of a batch whose forward failed.
  void FailBatch(const StepPlan& plan, const absl::Status& status);
  // Hands queued events to their callbacks; re-entrant calls return at once.
  void Deliver();

  const EngineOptions options_;
  PagedLatentCache& cache_;
  BatchForwardInterface& forward_;
  const DetokenizerInterface* const detokenizer_;
  std::unique_ptr<Scheduler> scheduler_;

  // Stable addresses: records are found by sequence and referenced across callbacks.
  absl::node_hash_map<std::string, RequestRecord> requests_;
  absl::flat_hash_map<SequenceId, RequestRecord*> by_sequence_;  // unfinished only
  std::deque<StreamEvent> outbox_;
  bool in_step_ = false;
  bool delivering_ = false;
  int64_t accepted_ = 0;
  int64_t finished_ = 0;
  int64_t generated_ = 0;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_ENGINE_H_
