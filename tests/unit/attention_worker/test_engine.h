// An engine::Engine over the fake forward for attention-worker tests, plus a gate the
// tests put in EngineRunner's between_steps hook to hold the engine thread at a step
// boundary (deterministic: no sleeps).
#ifndef SWITCHYARD_TESTS_UNIT_ATTENTION_WORKER_TEST_ENGINE_H_
#define SWITCHYARD_TESTS_UNIT_ATTENTION_WORKER_TEST_ENGINE_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "engine/fake_batch_forward.h"
#include "engine/fake_detokenizer.h"
#include "gtest/gtest.h"

namespace yard::attention_worker::fixture {

inline constexpr int64_t kVocab = 32;
inline constexpr int64_t kNumBlocks = 64;
inline constexpr int kBlockTokens = 4;
inline constexpr int64_t kMaxContext = 64;
// A bound on every wait for something the test caused; reaching it fails the test.
inline constexpr auto kPatience = std::chrono::seconds(20);

// Wraps FakeBatchForward and calls `on_forward` before each forward (engine thread).
class ObservedForward : public engine::BatchForwardInterface {
 public:
  ObservedForward(engine::BatchForwardInterface& inner, std::function<void()> on_forward)
      : inner_(inner), on_forward_(std::move(on_forward)) {}
  absl::StatusOr<engine::ForwardResult> Forward(const engine::ForwardBatch& batch) override {
    if (on_forward_) on_forward_();
    return inner_.Forward(batch);
  }

 private:
  engine::BatchForwardInterface& inner_;
  std::function<void()> on_forward_;
};

// Cache, fake forward, one-letter detokenizer and engine. The engine is only touched
// on the runner's thread once a runner uses it.
class TestEngine {
 public:
  explicit TestEngine(std::function<void()> on_forward = nullptr)
      : detokenizer_(engine::FakeDetokenizer::Letters(kVocab)) {
    engine::LatentCacheShape shape;
    shape.num_layers = 2;
    shape.kv_lora_rank = 5;
    shape.qk_rope_head_dim = 3;
    engine::KvCacheOptions kv;
    kv.block_tokens = kBlockTokens;
    kv.num_blocks = kNumBlocks;
    cache_ = std::move(engine::PagedLatentCache::Create(shape, kv).value());
    fake_ = std::make_unique<engine::FakeBatchForward>(*cache_, kVocab);
    forward_ = std::make_unique<ObservedForward>(*fake_, std::move(on_forward));
    engine::EngineOptions options;
    options.vocab_size = kVocab;
    options.scheduler.max_num_seqs = 8;
    options.scheduler.max_batch_tokens = 32;
    options.scheduler.max_prefill_chunk = 8;
    options.scheduler.max_context = kMaxContext;
    engine_ = std::move(engine::Engine::Create(options, *cache_, *forward_, &detokenizer_).value());
    // Expectations come from a forward of their own (the engine's is on its thread).
    expect_cache_ = std::move(engine::PagedLatentCache::Create(shape, kv).value());
    expect_ = std::make_unique<engine::FakeBatchForward>(*expect_cache_, kVocab);
  }

  engine::Engine& engine() { return *engine_; }

  // The tokens greedy sampling generates after `context`.
  std::vector<int32_t> Greedy(std::vector<int32_t> context, int n) const {
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
      const std::vector<float> logits = expect_->ExpectedLogits(context);
      const int32_t next =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(next);
      context.push_back(next);
    }
    return out;
  }
  std::string Text(int32_t token) const { return detokenizer_.Text(token); }

 private:
  engine::FakeDetokenizer detokenizer_;
  std::unique_ptr<engine::PagedLatentCache> cache_;
  std::unique_ptr<engine::FakeBatchForward> fake_;
  std::unique_ptr<ObservedForward> forward_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<engine::PagedLatentCache> expect_cache_;
  std::unique_ptr<engine::FakeBatchForward> expect_;
};

// Counts between_steps calls; the call numbered beyond `allowed` blocks until Allow()
// raises the bound. Use as the runner's hook: [&gate] { gate.AtBoundary(); }.
class StepGate {
 public:
  explicit StepGate(int allowed) : allowed_(allowed) {}

  void AtBoundary() {
    std::unique_lock<std::mutex> lock(mu_);
    ++calls_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return calls_ <= allowed_; });
  }
  // Waits until a call is blocked at the gate (call number allowed + 1 arrived).
  bool WaitUntilHeld() {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, kPatience, [&] { return calls_ > allowed_; });
  }
  void Allow(int allowed) {
    std::lock_guard<std::mutex> lock(mu_);
    allowed_ = allowed;
    changed_.notify_all();
  }
  void Open() { Allow(1 << 30); }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int calls_ = 0;
  int allowed_;
};

}  // namespace yard::attention_worker::fixture

#endif  // SWITCHYARD_TESTS_UNIT_ATTENTION_WORKER_TEST_ENGINE_H_
