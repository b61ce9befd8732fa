// The whole single-process engine on a real (tiny) checkpoint: continuous batching of
// many greedy requests over the fast model, with a KV cache so small that sequences
// are preempted and recomputed, gives each request exactly the tokens it gets alone
// (deterministic mode).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/local_engine.h"
#include "gtest/gtest.h"
#include "model/presets.h"
#include "tools/make_model/random_checkpoint.h"

namespace yard::engine {
namespace {

std::string WriteTinyModel() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/tiny_v3";
  model::RandomCheckpointOptions options;
  options.progress = model::ProgressMode::kNever;
  options.overwrite = true;
  EXPECT_TRUE(model::WriteRandomCheckpoint(*model::PresetConfig("tiny-v3"), dir, options).ok());
  return dir;
}

std::vector<int32_t> Prompt(int i) {
  std::vector<int32_t> p;
  for (int j = 0; j < 6 + 3 * i; ++j) p.push_back((7919 * (i + 1) + 104729 * j) % 128000);
  return p;
}

// Runs `prompts` together (or one at a time) and returns each request's tokens.
std::vector<std::vector<int32_t>> Generate(LocalEngine& local,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           int max_tokens) {
  std::vector<std::vector<int32_t>> out(prompts.size());
  std::vector<int> finals(prompts.size(), 0);
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = "r" + std::to_string(i);
    r.prompt = prompts[i];
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    EXPECT_TRUE(local.engine()
                    .Submit(r,
                            [&, i](const StreamEvent& e) {
                              if (e.token) out[i].push_back(*e.token);
                              if (e.finish) {
                                ++finals[i];
                                EXPECT_EQ(*e.finish, FinishReason::kLength) << e.status;
                              }
                            })
                    .ok());
  }
  local.engine().RunUntilIdle();
  for (int f : finals) EXPECT_EQ(f, 1);
  return out;
}

TEST(LocalEngineTest, BatchedWithPreemptionEqualsSolo) {
  const std::string dir = WriteTinyModel();
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back(Prompt(i));
  constexpr int kMaxTokens = 20;

  LocalEngineOptions roomy;
  roomy.deterministic = true;
  roomy.block_tokens = 16;
  auto solo_engine = LocalEngine::Open(dir, nullptr, roomy);
  ASSERT_TRUE(solo_engine.ok()) << solo_engine.status();
  std::vector<std::vector<int32_t>> solo;
  for (const auto& p : prompts) solo.push_back(Generate(**solo_engine, {p}, kMaxTokens)[0]);

  // 8 requests need ~330 token slots; give the cache 12 blocks of 16 (192).
  LocalEngineOptions tight = roomy;
  tight.kv_cache_bytes = 12 * 16 * (64 + 16) * 2 * 3;
  auto batched_engine = LocalEngine::Open(dir, nullptr, tight);
  ASSERT_TRUE(batched_engine.ok()) << batched_engine.status();
  std::vector<std::vector<int32_t>> batched = Generate(**batched_engine, prompts, kMaxTokens);
  EXPECT_GT((*batched_engine)->engine().stats().scheduler.preemptions, 0)
      << "the cache was meant to force preemption";
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(batched[i].size(), static_cast<size_t>(kMaxTokens));
    EXPECT_EQ(batched[i], solo[i]) << "request " << i;
  }
}

}  // namespace
}  // namespace yard::engine
