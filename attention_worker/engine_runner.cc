#include "attention_worker/engine_runner.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace yard::attention_worker {

EngineRunner::EngineRunner(engine::Engine& engine, std::function<void()> between_steps)
    : engine_(engine), between_steps_(std::move(between_steps)), thread_([this] { Loop(); }) {}

EngineRunner::~EngineRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void EngineRunner::Post(std::function<void(engine::Engine&)> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

EngineLoad EngineRunner::load() const {
  return EngineLoad{active_.load(), waiting_.load(), kv_used_.load(), kv_total_.load()};
}

void EngineRunner::Loop() {
  while (true) {
    std::deque<std::function<void(engine::Engine&)>> tasks;
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty() || !engine_.idle(); });
      tasks.swap(tasks_);
      stopping = stopping_;
    }
    for (auto& task : tasks) task(engine_);
    if (stopping) return;
    if (between_steps_) between_steps_();
    if (!engine_.idle()) {
      const auto start = std::chrono::steady_clock::now();
      const engine::StepStats step = engine_.Step();
      if (step.sequences > 0 && step.tokens == step.sequences) {
        const double ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start).count();
        std::lock_guard<std::mutex> lock(steps_mu_);
        if (decode_step_ms_.size() < 4096) decode_step_ms_.push_back(ms);
      }
    }
    const engine::EngineStats stats = engine_.stats();
    active_.store(stats.active_requests);
    waiting_.store(stats.scheduler.waiting);
    kv_used_.store(stats.kv.used_blocks);
    kv_total_.store(stats.kv.num_blocks);
  }
}

DecodeStepTimes EngineRunner::TakeDecodeSteps() {
  std::vector<double> ms;
  {
    std::lock_guard<std::mutex> lock(steps_mu_);
    ms.swap(decode_step_ms_);
  }
  DecodeStepTimes times;
  times.count = static_cast<int64_t>(ms.size());
  if (ms.empty()) return times;
  std::sort(ms.begin(), ms.end());
  times.p50_ms = ms[ms.size() / 2];
  times.max_ms = ms.back();
  return times;
}

}  // namespace yard::attention_worker
