// Runs an attention worker's engine on its own thread — the engine thread — so that a
// step (which blocks on expert round trips) never runs on a gRPC thread. Everything
// that touches the engine is posted here and runs between steps, in post order.
//
//   idle (waiting for posts) ─post─▶ run posts ─engine has work─▶ Step ─▶ run posts ─▶ ...
//
// Threading: Post and the load snapshot may be used from any thread; posted tasks and
// `between_steps` run on the engine thread. Ownership: borrows the engine, which must
// outlive the runner; the destructor stops and joins the thread (tasks still queued
// are run first so that no caller waits forever).
#ifndef SWITCHYARD_ATTENTION_WORKER_ENGINE_RUNNER_H_
#define SWITCHYARD_ATTENTION_WORKER_ENGINE_RUNNER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/engine.h"

namespace yard::attention_worker {

// Decode-only steps (every sequence in the batch decoding one token) since the last
// TakeDecodeSteps: how long a step takes when no prompt shares it.
struct DecodeStepTimes {
  int64_t count = 0;
  double p50_ms = 0;
  double max_ms = 0;
};

struct EngineLoad {
  int64_t active_requests = 0;   // accepted and not finished
  int64_t waiting_requests = 0;  // not yet admitted to the running batch
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
};

class EngineRunner {
 public:
  // between_steps: called on the engine thread before every step (placement switches
  // happen there, at a step boundary).
  EngineRunner(engine::Engine& engine, std::function<void()> between_steps);
  ~EngineRunner();
  EngineRunner(const EngineRunner&) = delete;
  EngineRunner& operator=(const EngineRunner&) = delete;

  void Post(std::function<void(engine::Engine&)> task);

  // As of the end of the last step.
  EngineLoad load() const;
  // Any thread; starts the next interval.
  DecodeStepTimes TakeDecodeSteps();

 private:
  void Loop();

  engine::Engine& engine_;
  const std::function<void()> between_steps_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void(engine::Engine&)>> tasks_;
  bool stopping_ = false;

  std::atomic<int64_t> active_{0}, waiting_{0}, kv_used_{0}, kv_total_{0};
  std::mutex steps_mu_;
  std::vector<double> decode_step_ms_;  // since the last take (at most kMaxKept)
  std::thread thread_;
};

}  // namespace yard::attention_worker

#endif  // SWITCHYARD_ATTENTION_WORKER_ENGINE_RUNNER_H_
