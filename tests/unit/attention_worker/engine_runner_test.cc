#include "attention_worker/engine_runner.h"

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "gtest/gtest.h"
#include "tests/unit/attention_worker/test_engine.h"

namespace yard::attention_worker {
namespace {

using fixture::kNumBlocks;
using fixture::kPatience;
using fixture::StepGate;
using fixture::TestEngine;

// One request's events, written on the engine thread, read by the test.
class Events {
 public:
  engine::StreamCallback Callback() {
    return [this](const engine::StreamEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
      changed_.notify_all();
    };
  }
  bool WaitForFinish() {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, kPatience,
                             [&] { return !events_.empty() && events_.back().finish; });
  }
  std::vector<int32_t> Tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> tokens;
    for (const engine::StreamEvent& e : events_) {
      if (e.token) tokens.push_back(*e.token);
    }
    return tokens;
  }
  std::optional<engine::FinishReason> Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.empty() ? std::nullopt : events_.back().finish;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<engine::StreamEvent> events_;
};

engine::Request Greedy(const std::string& id, std::vector<int32_t> prompt, int64_t max_tokens) {
  engine::Request r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  return r;
}

// Returns once every task posted before it has run (tasks run in post order).
void Barrier(EngineRunner& runner) {
  std::promise<void> done;
  runner.Post([&done](engine::Engine&) { done.set_value(); });
  ASSERT_EQ(done.get_future().wait_for(kPatience), std::future_status::ready);
}

TEST(EngineRunnerTest, PostedSubmitRunsAndTheRequestFinishes) {
  TestEngine env;
  Events events;
  EngineRunner runner(env.engine(), nullptr);
  std::promise<absl::Status> submitted;
  runner.Post([&](engine::Engine& engine) {
    submitted.set_value(engine.Submit(Greedy("r1", {3, 1, 4}, 5), events.Callback()));
  });
  std::future<absl::Status> status = submitted.get_future();
  ASSERT_EQ(status.wait_for(kPatience), std::future_status::ready);
  ASSERT_TRUE(status.get().ok());
  ASSERT_TRUE(events.WaitForFinish());
  EXPECT_EQ(events.Tokens(), env.Greedy({3, 1, 4}, 5));
  EXPECT_EQ(events.Finish(), engine::FinishReason::kLength);
}

TEST(EngineRunnerTest, TasksRunInPostOrder) {
  TestEngine env;
  EngineRunner runner(env.engine(), nullptr);
  std::vector<int> order;  // engine thread only until the barrier
  for (int i = 0; i < 5; ++i) runner.Post([&order, i](engine::Engine&) { order.push_back(i); });
  Barrier(runner);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(EngineRunnerTest, BetweenStepsRunsBeforeEveryStep) {
  std::mutex mu;
  std::string log;  // 'B' between steps, 'F' a forward (a step)
  TestEngine env([&] {
    std::lock_guard<std::mutex> lock(mu);
    log += 'F';
  });
  Events a, b;
  EngineRunner runner(env.engine(), [&] {
    std::lock_guard<std::mutex> lock(mu);
    log += 'B';
  });
  runner.Post([&](engine::Engine& engine) {
    ASSERT_TRUE(engine.Submit(Greedy("a", {1, 2}, 3), a.Callback()).ok());
    ASSERT_TRUE(engine.Submit(Greedy("b", {7}, 6), b.Callback()).ok());
  });
  ASSERT_TRUE(a.WaitForFinish());
  ASSERT_TRUE(b.WaitForFinish());
  Barrier(runner);
  std::lock_guard<std::mutex> lock(mu);
  int forwards = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i] != 'F') continue;
    ++forwards;
    EXPECT_TRUE(i > 0 && log[i - 1] == 'B') << "a step without between_steps before it: " << log;
  }
  EXPECT_GE(forwards, 6) << log;  // b needs six tokens, one per step
}

TEST(EngineRunnerTest, LoadReflectsActiveRequestsAfterSteps) {
  TestEngine env;
  StepGate gate(/*allowed=*/1);  // one step, then hold
  Events a, b;
  EngineRunner runner(env.engine(), [&gate] { gate.AtBoundary(); });
  EXPECT_EQ(runner.load().active_requests, 0);

  runner.Post([&](engine::Engine& engine) {
    ASSERT_TRUE(engine.Submit(Greedy("a", {1, 2, 3, 4, 5}, 10), a.Callback()).ok());
    ASSERT_TRUE(engine.Submit(Greedy("b", {6}, 10), b.Callback()).ok());
  });
  ASSERT_TRUE(gate.WaitUntilHeld());  // one step done, the next not begun
  EngineLoad load = runner.load();
  EXPECT_EQ(load.active_requests, 2);
  EXPECT_EQ(load.waiting_requests, 0);
  EXPECT_GT(load.kv_blocks_used, 0);
  EXPECT_EQ(load.kv_blocks_total, kNumBlocks);

  gate.Open();
  ASSERT_TRUE(a.WaitForFinish());
  ASSERT_TRUE(b.WaitForFinish());
  Barrier(runner);  // the step that finished them has stored its load
  load = runner.load();
  EXPECT_EQ(load.active_requests, 0);
  EXPECT_EQ(load.kv_blocks_used, 0);
  EXPECT_EQ(load.kv_blocks_total, kNumBlocks);
}

TEST(EngineRunnerTest, TasksPostedBeforeDestructionStillRun) {
  TestEngine env;
  bool ran = false;
  {
    EngineRunner runner(env.engine(), nullptr);
    runner.Post([&ran](engine::Engine&) { ran = true; });
  }
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace yard::attention_worker
