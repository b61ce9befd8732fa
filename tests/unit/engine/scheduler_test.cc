#include "engine/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "engine/fake_batch_forward.h"
#include "engine/kv_cache.h"
#include "engine/sampling.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

constexpr int64_t kVocab = 16;
constexpr int kBlockTokens = 4;

std::vector<int32_t> Iota(int n, int32_t from = 1) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = (from + i) % kVocab;
  return v;
}

SequenceSpec Spec(std::vector<int32_t> prompt, int64_t max_tokens) {
  SequenceSpec spec;
  spec.prompt = std::move(prompt);
  spec.max_tokens = max_tokens;
  return spec;
}

// A scheduler over a small cache (1 layer, latent_dim 4, 4 tokens per block) with the
// fake forward; tokens are chosen by the test or greedily from the fake's logits.
class Harness {
 public:
  explicit Harness(int64_t num_blocks, SchedulerOptions options = Defaults()) {
    LatentCacheShape shape;
    shape.num_layers = 1;
    shape.kv_lora_rank = 3;
    shape.qk_rope_head_dim = 1;
    KvCacheOptions kv;
    kv.block_tokens = kBlockTokens;
    kv.num_blocks = num_blocks;
    cache_ = std::move(PagedLatentCache::Create(shape, kv).value());
    scheduler_ = std::move(Scheduler::Create(options, *cache_).value());
    forward_ = std::make_unique<FakeBatchForward>(*cache_, kVocab);
  }

  static SchedulerOptions Defaults() {
    SchedulerOptions options;
    options.max_num_seqs = 8;
    options.max_batch_tokens = 64;
    options.max_prefill_chunk = 64;
    options.max_context = 1000;
    return options;
  }

  Scheduler& scheduler() { return *scheduler_; }
  PagedLatentCache& cache() { return *cache_; }
  FakeBatchForward& forward() { return *forward_; }

  SequenceId Add(SequenceSpec spec) { return scheduler_->Add(std::move(spec)).value(); }

  // Plan + Apply + Forward; returns the applied plan.
  StepPlan Begin() {
    StepPlan plan = scheduler_->Plan();
    EXPECT_TRUE(scheduler_->Apply(plan).ok());
    auto result = forward_->Forward(plan.batch);
    EXPECT_TRUE(result.ok()) << result.status();
    last_logits_ = result.ok() ? result->logits : std::vector<float>();
    return plan;
  }
  // Completes `plan` with greedy tokens from the forward's logits.
  std::vector<SequenceUpdate> CompleteGreedy(const StepPlan& plan) {
    std::vector<int32_t> sampled;
    for (int64_t r = 0; r < plan.batch.num_logit_rows(); ++r) {
      SamplingParams greedy;
      greedy.temperature = 0;
      sampled.push_back(
          Sample(absl::MakeSpan(last_logits_).subspan(r * kVocab, kVocab), greedy, 0, 0)
              .value()
              .token);
    }
    return Complete(plan, sampled);
  }
  std::vector<SequenceUpdate> Complete(const StepPlan& plan, std::vector<int32_t> sampled) {
    auto updates = scheduler_->Complete(plan, sampled);
    EXPECT_TRUE(updates.ok()) << updates.status();
    for (const SequenceUpdate& u : *updates) {
      if (u.token) generated_[u.sequence_id].push_back(*u.token);
      if (u.finish) finish_[u.sequence_id] = *u.finish;
    }
    return *updates;
  }
  // Steps greedily until no work; returns the number of steps.
  int RunGreedy() {
    int steps = 0;
    while (scheduler_->has_work()) {
      CompleteGreedy(Begin());
      ++steps;
    }
    return steps;
  }

  std::map<SequenceId, std::vector<int32_t>> generated_;
  std::map<SequenceId, FinishReason> finish_;

 private:
  std::unique_ptr<PagedLatentCache> cache_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<FakeBatchForward> forward_;
  std::vector<float> last_logits_;
};

TEST(SchedulerTest, RejectsBadOptions) {
  Harness h(4);
  SchedulerOptions options = Harness::Defaults();
  options.max_batch_tokens = options.max_num_seqs - 1;
  EXPECT_EQ(Scheduler::Create(options, h.cache()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Harness::Defaults();
  options.max_context = 0;
  EXPECT_EQ(Scheduler::Create(options, h.cache()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Harness::Defaults();
  options.max_prefill_chunk = 0;
  EXPECT_EQ(Scheduler::Create(options, h.cache()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, AddValidates) {
  SchedulerOptions options = Harness::Defaults();
  options.max_context = 10;
  Harness h(2, options);  // 8 tokens of cache
  Scheduler& s = h.scheduler();
  EXPECT_EQ(s.Add(Spec({}, 4)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Add(Spec(Iota(3), 0)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Add(Spec(Iota(10), 4)).status().code(), absl::StatusCode::kInvalidArgument);
  // 3 + 7 = 10 tokens, 9 cached: 3 blocks > 2.
  EXPECT_EQ(s.Add(Spec(Iota(3), 7)).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_FALSE(s.has_work());
  // 3 + 6 = 9 tokens, 8 cached: fits exactly.
  EXPECT_TRUE(s.Add(Spec(Iota(3), 6)).ok());
  // The context cap bounds the need: 9 + 100 is cut to 10 tokens... which needs 3.
  EXPECT_EQ(s.Add(Spec(Iota(9), 100)).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(SchedulerTest, PlanMutatesNothingAndAdmitsFcfsWithinLimits) {
  SchedulerOptions options = Harness::Defaults();
  options.max_num_seqs = 2;
  Harness h(16, options);
  Scheduler& s = h.scheduler();
  const SequenceId a = h.Add(Spec(Iota(5), 3));
  const SequenceId b = h.Add(Spec(Iota(3), 3));
  const SequenceId c = h.Add(Spec(Iota(2), 3));

  const StepPlan plan = s.Plan();
  const StepPlan again = s.Plan();
  EXPECT_EQ(again.batch.sequences.size(), plan.batch.sequences.size());
  EXPECT_EQ(s.num_waiting(), 3);
  EXPECT_EQ(s.state(a), SequenceState::kWaiting);
  EXPECT_EQ(h.cache().free_blocks(), 16);

  EXPECT_THAT(plan.admitted, ElementsAre(a, b));
  EXPECT_THAT(plan.preempted, IsEmpty());
  ASSERT_EQ(plan.batch.sequences.size(), 2u);
  const ForwardSequence& fa = plan.batch.sequences[0];
  EXPECT_EQ(fa.sequence_id, a);
  EXPECT_EQ(fa.start_position, 0);
  EXPECT_THAT(fa.tokens, ElementsAreArray(Iota(5)));
  EXPECT_THAT(fa.block_table, ElementsAre(0, 1));
  EXPECT_TRUE(fa.needs_logits);
  EXPECT_THAT(plan.batch.sequences[1].block_table, ElementsAre(2));
  EXPECT_THAT(plan.num_generated, ElementsAre(0, 0));

  ASSERT_TRUE(s.Apply(plan).ok());
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 1);
  EXPECT_EQ(s.state(a), SequenceState::kPrefilling);
  EXPECT_EQ(s.state(c), SequenceState::kWaiting);
  EXPECT_EQ(h.cache().free_blocks(), 13);
  EXPECT_THAT(h.cache().BlockTable(a), ElementsAre(0, 1));
  // Plan is refused until the step completes.
  EXPECT_EQ(s.Apply(plan).code(), absl::StatusCode::kFailedPrecondition);
  h.Complete(plan, {7, 8});
  EXPECT_EQ(s.state(a), SequenceState::kDecoding);
  EXPECT_THAT(s.tokens(a).subspan(5), ElementsAre(7));
  EXPECT_EQ(s.num_generated(b), 1);

  // c waits for a free slot: b finishes (max_tokens 3) after two more steps.
  for (int i = 0; i < 2; ++i) {
    const StepPlan p = s.Plan();
    EXPECT_THAT(p.admitted, IsEmpty());
    ASSERT_TRUE(s.Apply(p).ok());
    h.Complete(p, {1, 2});
  }
  EXPECT_EQ(h.finish_.at(a), FinishReason::kLength);
  EXPECT_EQ(h.finish_.at(b), FinishReason::kLength);
  EXPECT_EQ(h.cache().free_blocks(), 16);
  const StepPlan p = s.Plan();
  EXPECT_THAT(p.admitted, ElementsAre(c));
}

TEST(SchedulerTest, StaleAndOutOfOrderCallsAreRefused) {
  Harness h(16);
  Scheduler& s = h.scheduler();
  h.Add(Spec(Iota(3), 3));
  StepPlan plan = s.Plan();
  h.Add(Spec(Iota(3), 3));
  EXPECT_EQ(s.Apply(plan).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h.cache().free_blocks(), 16);
  EXPECT_EQ(s.Complete(plan, {1}).status().code(), absl::StatusCode::kFailedPrecondition);
  plan = s.Plan();
  ASSERT_TRUE(s.Apply(plan).ok());
  EXPECT_EQ(s.Complete(plan, {1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.Complete(plan, {1, 2}).ok());
  EXPECT_EQ(s.Complete(plan, {1, 2}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SchedulerTest, ChunkedPrefillSplitsWithPositionsAndTables) {
  SchedulerOptions options = Harness::Defaults();
  options.max_prefill_chunk = 4;
  Harness h(16, options);
  Scheduler& s = h.scheduler();
  const std::vector<int32_t> prompt = Iota(10);
  const SequenceId a = h.Add(Spec(prompt, 5));

  struct Expect {
    int64_t start, count, blocks;
    bool logits;
  };
  for (const Expect& e : {Expect{0, 4, 1, false}, Expect{4, 4, 2, false}, Expect{8, 2, 3, true}}) {
    const StepPlan plan = h.Begin();
    ASSERT_EQ(plan.batch.sequences.size(), 1u);
    const ForwardSequence& fs = plan.batch.sequences[0];
    EXPECT_EQ(fs.start_position, e.start);
    EXPECT_THAT(fs.tokens,
                ElementsAreArray(prompt.begin() + e.start, prompt.begin() + e.start + e.count));
    EXPECT_EQ(static_cast<int64_t>(fs.block_table.size()), e.blocks);
    EXPECT_EQ(fs.needs_logits, e.logits);
    EXPECT_EQ(plan.batch.num_logit_rows(), e.logits ? 1 : 0);
    h.CompleteGreedy(plan);
    EXPECT_EQ(s.state(a), e.logits ? SequenceState::kDecoding : SequenceState::kPrefilling);
  }
  // Decode: one token at position 10, reusing the third block.
  const StepPlan plan = h.Begin();
  ASSERT_EQ(plan.batch.sequences.size(), 1u);
  EXPECT_EQ(plan.batch.sequences[0].start_position, 10);
  EXPECT_EQ(plan.batch.sequences[0].tokens.size(), 1u);
  EXPECT_EQ(plan.batch.sequences[0].block_table.size(), 3u);
  EXPECT_THAT(plan.num_generated, ElementsAre(1));
  h.CompleteGreedy(plan);
  h.RunGreedy();

  // The chunked run produced what a whole-sequence forward predicts.
  std::vector<int32_t> context = prompt;
  for (int32_t t : h.generated_.at(a)) {
    const std::vector<float> logits = h.forward().ExpectedLogits(context);
    const int32_t argmax =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(t, argmax);
    context.push_back(t);
  }
  EXPECT_EQ(h.generated_.at(a).size(), 5u);
}

TEST(SchedulerTest, DecodesBatchAndAreNotStarvedByAPrefill) {
  SchedulerOptions options = Harness::Defaults();
  options.max_batch_tokens = 8;
  options.max_prefill_chunk = 8;
  Harness h(64, options);
  Scheduler& s = h.scheduler();
  const SequenceId a = h.Add(Spec(Iota(2), 20));
  const SequenceId b = h.Add(Spec(Iota(3), 20));
  const SequenceId c = h.Add(Spec(Iota(2), 20));
  h.CompleteGreedy(h.Begin());  // all three prefilled: 7 tokens
  const SequenceId d = h.Add(Spec(Iota(30), 20));

  StepPlan plan = h.Begin();
  ASSERT_EQ(plan.batch.sequences.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    const ForwardSequence& fs = plan.batch.sequences[i];
    EXPECT_EQ(fs.tokens.size(), 1u);
    EXPECT_TRUE(fs.needs_logits);
    EXPECT_EQ(fs.start_position, static_cast<int64_t>(s.tokens(fs.sequence_id).size()) - 1);
  }
  EXPECT_EQ(plan.batch.sequences[0].sequence_id, a);
  EXPECT_EQ(plan.batch.sequences[1].sequence_id, b);
  EXPECT_EQ(plan.batch.sequences[2].sequence_id, c);
  EXPECT_EQ(plan.batch.sequences[3].sequence_id, d);
  EXPECT_EQ(plan.batch.sequences[3].tokens.size(), 5u);  // 8 - 3 decodes
  EXPECT_EQ(plan.batch.num_tokens(), 8);
  h.CompleteGreedy(plan);

  // Now d is the oldest prefill... no: a, b, c are older and decode first; d gets the
  // rest of the budget every step, and the decodes get a token every step.
  plan = h.Begin();
  EXPECT_EQ(plan.batch.sequences.size(), 4u);
  EXPECT_EQ(plan.batch.sequences[3].start_position, 5);
  EXPECT_EQ(plan.batch.sequences[3].tokens.size(), 5u);
  h.CompleteGreedy(plan);
}

TEST(SchedulerTest, RetiresOnEveryStopCondition) {
  SchedulerOptions options = Harness::Defaults();
  options.eos_token_ids = {15};
  options.max_context = 7;
  Harness h(32, options);
  Scheduler& s = h.scheduler();
  const SequenceId eos = h.Add(Spec(Iota(2), 10));
  SequenceSpec ignore = Spec(Iota(2), 2);
  ignore.ignore_eos = true;
  const SequenceId ignore_eos = h.Add(ignore);
  SequenceSpec stop = Spec(Iota(2), 10);
  stop.stop_token_ids = {9};
  const SequenceId stop_token = h.Add(stop);
  const SequenceId length = h.Add(Spec(Iota(2), 2));
  const SequenceId context = h.Add(Spec(Iota(4), 10));  // full at 7 tokens
  const SequenceId error = h.Add(Spec(Iota(2), 10));

  StepPlan plan = h.Begin();
  ASSERT_EQ(plan.batch.num_logit_rows(), 6);
  std::vector<SequenceUpdate> updates = h.Complete(plan, {15, 15, 9, 1, 1, kNoToken});
  ASSERT_EQ(updates.size(), 6u);
  EXPECT_EQ(updates[0].finish, FinishReason::kEos);
  EXPECT_EQ(updates[0].token, 15);
  EXPECT_EQ(updates[1].finish, std::nullopt);
  EXPECT_EQ(updates[2].finish, FinishReason::kStop);
  EXPECT_EQ(updates[3].finish, std::nullopt);
  EXPECT_EQ(updates[4].finish, std::nullopt);
  EXPECT_EQ(updates[5].finish, FinishReason::kError);
  EXPECT_EQ(updates[5].token, std::nullopt);
  for (SequenceId id : {eos, stop_token, error}) {
    EXPECT_EQ(s.state(id), std::nullopt);
    EXPECT_THAT(h.cache().BlockTable(id), IsEmpty());
  }
  plan = h.Begin();
  updates = h.Complete(plan, {3, 3, 3});
  EXPECT_EQ(updates[0].finish, FinishReason::kLength);  // ignore_eos: 2 of 2
  EXPECT_EQ(updates[1].finish, FinishReason::kLength);  // 2 of 2
  EXPECT_EQ(updates[2].finish, std::nullopt);           // 6 of 7 context tokens
  plan = h.Begin();
  updates = h.Complete(plan, {3});
  EXPECT_EQ(updates[0].sequence_id, context);
  EXPECT_EQ(updates[0].finish, FinishReason::kLength);
  EXPECT_EQ(s.tokens(ignore_eos).size(), 0u);
  EXPECT_EQ(h.generated_.at(context).size(), 3u);
  EXPECT_FALSE(s.has_work());
  EXPECT_EQ(h.cache().free_blocks(), 32);
  (void)length;
}

TEST(SchedulerTest, PreemptsTheNewestAndResumesItWithItsTokens) {
  Harness h(4);  // 16 tokens of cache
  Scheduler& s = h.scheduler();
  const SequenceId a = h.Add(Spec(Iota(6), 8));
  const SequenceId b = h.Add(Spec(Iota(6, 3), 8));
  h.CompleteGreedy(h.Begin());  // both hold 2 blocks; 7 tokens each
  h.CompleteGreedy(h.Begin());  // positions 6 and 7 fit in them
  h.CompleteGreedy(h.Begin());
  EXPECT_EQ(h.cache().free_blocks(), 0);

  // Position 8 needs a third block for both: b (newest) is preempted, a decodes.
  StepPlan plan = s.Plan();
  EXPECT_THAT(plan.preempted, ElementsAre(b));
  EXPECT_THAT(plan.admitted, IsEmpty());
  ASSERT_EQ(plan.batch.sequences.size(), 1u);
  EXPECT_EQ(plan.batch.sequences[0].sequence_id, a);
  EXPECT_EQ(plan.batch.sequences[0].block_table.size(), 3u);
  ASSERT_TRUE(s.Apply(plan).ok());
  ASSERT_TRUE(h.forward().Forward(plan.batch).ok());
  EXPECT_EQ(s.state(b), SequenceState::kWaiting);
  EXPECT_THAT(h.cache().BlockTable(b), IsEmpty());
  EXPECT_EQ(s.tokens(b).size(), 9u);  // prompt + 3 generated, kept
  EXPECT_EQ(s.num_generated(b), 3);
  EXPECT_EQ(s.stats().preemptions, 1);
  h.Complete(plan, {5});

  // b waits (a needs the space) until a is done; then it re-prefills all 9 tokens and
  // samples its fourth token.
  while (s.state(a).has_value()) {
    plan = h.Begin();
    for (const ForwardSequence& fs : plan.batch.sequences) EXPECT_EQ(fs.sequence_id, a);
    h.Complete(plan, {5});
  }
  plan = h.Begin();
  EXPECT_THAT(plan.admitted, ElementsAre(b));
  ASSERT_EQ(plan.batch.sequences.size(), 1u);
  EXPECT_EQ(plan.batch.sequences[0].start_position, 0);
  EXPECT_EQ(plan.batch.sequences[0].tokens.size(), 9u);
  EXPECT_TRUE(plan.batch.sequences[0].needs_logits);
  EXPECT_THAT(plan.num_generated, ElementsAre(3));
  h.CompleteGreedy(plan);
  h.RunGreedy();
  EXPECT_EQ(h.generated_.at(b).size(), 8u);
}

TEST(SchedulerTest, AnUnluckyNewestSequencePreemptsItself) {
  Harness h(4);
  Scheduler& s = h.scheduler();
  const SequenceId a = h.Add(Spec(Iota(5), 8));  // 2 blocks, room up to 8 tokens
  const SequenceId b = h.Add(Spec(Iota(8), 8));  // 2 blocks, full at 8
  h.CompleteGreedy(h.Begin());
  EXPECT_EQ(h.cache().free_blocks(), 0);
  // a (position 5) fits in its blocks; b (position 8) needs a block and only itself
  // is behind it.
  const StepPlan plan = s.Plan();
  EXPECT_THAT(plan.preempted, ElementsAre(b));
  ASSERT_EQ(plan.batch.sequences.size(), 1u);
  EXPECT_EQ(plan.batch.sequences[0].sequence_id, a);
  ASSERT_TRUE(s.Apply(plan).ok());
  EXPECT_EQ(h.cache().free_blocks(), 2);
}

TEST(SchedulerTest, WaitingQueueIsStrictlyFirstComeFirstServed) {
  Harness h(4);
  Scheduler& s = h.scheduler();
  h.Add(Spec(Iota(10), 2));  // 3 blocks
  h.CompleteGreedy(h.Begin());
  const SequenceId big = h.Add(Spec(Iota(8), 1));    // 2 blocks: does not fit
  const SequenceId small = h.Add(Spec(Iota(2), 1));  // would fit, but waits its turn
  const StepPlan plan = s.Plan();
  EXPECT_THAT(plan.admitted, IsEmpty());
  h.RunGreedy();
  EXPECT_EQ(h.finish_.at(big), FinishReason::kLength);
  EXPECT_EQ(h.finish_.at(small), FinishReason::kLength);
}

TEST(SchedulerTest, RemoveWaitingAndRunning) {
  Harness h(8);
  Scheduler& s = h.scheduler();
  const SequenceId a = h.Add(Spec(Iota(6), 8));
  h.CompleteGreedy(h.Begin());
  const SequenceId b = h.Add(Spec(Iota(3), 8));
  EXPECT_EQ(s.num_waiting(), 1);
  ASSERT_TRUE(s.Remove(b).ok());
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_EQ(s.Remove(b).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(h.cache().free_blocks(), 6);
  ASSERT_TRUE(s.Remove(a).ok());
  EXPECT_EQ(h.cache().free_blocks(), 8);
  EXPECT_FALSE(s.has_work());
  EXPECT_TRUE(s.Plan().empty());
}

TEST(SchedulerTest, RemovedDuringAStepIsSkippedAtComplete) {
  Harness h(8);
  Scheduler& s = h.scheduler();
  const SequenceId a = h.Add(Spec(Iota(3), 8));
  const SequenceId b = h.Add(Spec(Iota(3), 8));
  const StepPlan plan = h.Begin();
  ASSERT_TRUE(s.Remove(a).ok());
  const std::vector<SequenceUpdate> updates = h.Complete(plan, {1, 2});
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].sequence_id, b);
}

// Greedy continuations under heavy preemption equal those with room to spare.
TEST(SchedulerTest, PreemptionDoesNotChangeContinuations) {
  std::mt19937 rng(11);
  std::vector<SequenceSpec> specs;
  for (int i = 0; i < 12; ++i) {
    specs.push_back(
        Spec(Iota(1 + static_cast<int>(rng() % 12), static_cast<int32_t>(rng() % kVocab)),
             1 + static_cast<int64_t>(rng() % 14)));
  }
  auto run = [&](int64_t blocks, int64_t* preemptions) {
    SchedulerOptions options = Harness::Defaults();
    options.max_prefill_chunk = 5;
    options.max_batch_tokens = 12;
    Harness h(blocks, options);
    std::vector<SequenceId> ids;
    for (const SequenceSpec& spec : specs) ids.push_back(h.Add(spec));
    h.RunGreedy();
    *preemptions = h.scheduler().stats().preemptions;
    EXPECT_EQ(h.cache().free_blocks(), blocks);
    std::vector<std::vector<int32_t>> out;
    for (SequenceId id : ids) out.push_back(h.generated_[id]);
    return out;
  };
  int64_t tight_preemptions = 0, roomy_preemptions = 0;
  const auto roomy = run(256, &roomy_preemptions);
  const auto tight = run(7, &tight_preemptions);
  EXPECT_EQ(roomy_preemptions, 0);
  EXPECT_GT(tight_preemptions, 3);
  EXPECT_EQ(tight, roomy);
}

}  // namespace
}  // namespace yard::engine
