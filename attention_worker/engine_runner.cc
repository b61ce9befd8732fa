#include "attention_worker/engine_runner.h"

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
    if (!engine_.idle()) engine_.Step();
    const engine::EngineStats stats = engine_.stats();
    active_.store(stats.active_requests);
    waiting_.store(stats.scheduler.waiting);
    kv_used_.store(stats.kv.used_blocks);
    kv_total_.store(stats.kv.num_blocks);
  }
}

}  // namespace yard::attention_worker
