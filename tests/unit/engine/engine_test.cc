#include "engine/engine.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/fake_batch_forward.h"
#include "engine/fake_detokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr int64_t kVocab = 32;
constexpr int kBlockTokens = 4;

// Token t reads as two letters, "aA" for 0, "bB" for 1, ...: stop strings can start
// and end inside a token.
std::vector<std::string> TwoLetterTexts() {
  std::vector<std::string> texts;
  for (int t = 0; t < kVocab; ++t) {
    texts.push_back(std::string{static_cast<char>('a' + t % 26), static_cast<char>('A' + t % 26)});
  }
  return texts;
}

EngineOptions Options() {
  EngineOptions options;
  options.vocab_size = kVocab;
  options.scheduler.max_num_seqs = 8;
  options.scheduler.max_batch_tokens = 32;
  options.scheduler.max_prefill_chunk = 8;
  options.scheduler.max_context = 64;
  return options;
}

// An engine over the fake forward and a cache of `num_blocks` blocks (2 layers,
// latent_dim 5 + 3, 4 tokens per block), recording every event by request id.
class Env {
 public:
  explicit Env(int64_t num_blocks, EngineOptions options = Options(), bool detokenize = true)
      : detokenizer_(TwoLetterTexts()) {
    LatentCacheShape shape;
    shape.num_layers = 2;
    shape.kv_lora_rank = 5;
    shape.qk_rope_head_dim = 3;
    KvCacheOptions kv;
    kv.block_tokens = kBlockTokens;
    kv.num_blocks = num_blocks;
    cache_ = std::move(PagedLatentCache::Create(shape, kv).value());
    forward_ = std::make_unique<FakeBatchForward>(*cache_, kVocab);
    engine_ = std::move(
        Engine::Create(options, *cache_, *forward_, detokenize ? &detokenizer_ : nullptr).value());
  }

  Engine& engine() { return *engine_; }
  FakeBatchForward& forward() { return *forward_; }
  PagedLatentCache& cache() { return *cache_; }
  const FakeDetokenizer& detokenizer() const { return detokenizer_; }

  StreamCallback Recorder() {
    return [this](const StreamEvent& e) { events[e.request_id].push_back(e); };
  }
  absl::Status Submit(Request request) { return engine_->Submit(std::move(request), Recorder()); }

  std::vector<int32_t> Tokens(const std::string& id) const {
    std::vector<int32_t> tokens;
    auto it = events.find(id);
    if (it == events.end()) return tokens;
    for (const StreamEvent& e : it->second) {
      if (e.token) tokens.push_back(*e.token);
    }
    return tokens;
  }
  std::string Text(const std::string& id) const {
    std::string text;
    auto it = events.find(id);
    if (it == events.end()) return text;
    for (const StreamEvent& e : it->second) text += e.text;
    return text;
  }
  // The final event, after checking it is the only one and the last.
  StreamEvent Final(const std::string& id) const {
    auto it = events.find(id);
    EXPECT_NE(it, events.end()) << id;
    if (it == events.end()) return StreamEvent();
    int finals = 0;
    for (const StreamEvent& e : it->second) finals += e.finish.has_value() ? 1 : 0;
    EXPECT_EQ(finals, 1) << id;
    EXPECT_TRUE(it->second.back().finish.has_value()) << id << ": final event is not last";
    return it->second.back();
  }

  std::map<std::string, std::vector<StreamEvent>> events;

 private:
  FakeDetokenizer detokenizer_;
  std::unique_ptr<PagedLatentCache> cache_;
  std::unique_ptr<FakeBatchForward> forward_;
  std::unique_ptr<Engine> engine_;
};

Request MakeRequest(const std::string& id, std::vector<int32_t> prompt, int64_t max_tokens,
                    SamplingParams sampling = SamplingParams()) {
  Request r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling = sampling;
  return r;
}

SamplingParams Seeded(uint64_t seed, double temperature = 1.0, int top_k = 0, double top_p = 1.0) {
  SamplingParams p;
  p.seed = seed;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

struct Expected {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kLength;
};

// What a request generates alone, straight from the fake model's definition: no
// scheduler, no cache, no batching.
Expected Reference(const FakeBatchForward& forward, const Request& request, uint64_t seed,
                   const EngineOptions& options) {
  Expected out;
  std::vector<int32_t> context = request.prompt;
  for (uint64_t step = 0;; ++step) {
    const std::vector<float> logits = forward.ExpectedLogits(context);
    const int32_t t = Sample(logits, request.sampling, seed, step).value().token;
    out.tokens.push_back(t);
    context.push_back(t);
    const auto& eos = options.scheduler.eos_token_ids;
    const auto& stops = request.stop_token_ids;
    if (!request.ignore_eos && std::count(eos.begin(), eos.end(), t)) {
      out.finish = FinishReason::kEos;
      break;
    }
    if (std::count(stops.begin(), stops.end(), t)) {
      out.finish = FinishReason::kStop;
      break;
    }
    if (static_cast<int64_t>(out.tokens.size()) >= request.max_tokens ||
        static_cast<int64_t>(context.size()) >= options.scheduler.max_context) {
      out.finish = FinishReason::kLength;
      break;
    }
  }
  return out;
}

std::vector<int32_t> Prompt(int n, uint32_t salt) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = static_cast<int32_t>((salt * 7 + i * 13 + 1) % kVocab);
  return p;
}

// The seed the engine gives the index-th accepted request.
uint64_t SeedOf(const Request& r, int64_t index, const EngineOptions& options) {
  return r.sampling.seed.value_or(DeriveSeed(options.seed, static_cast<uint64_t>(index)));
}

TEST(EngineTest, RequestsMatchTheirStandaloneReference) {
  EngineOptions options = Options();
  options.scheduler.eos_token_ids = {0};
  Env env(64, options);
  std::vector<Request> requests = {
      MakeRequest("greedy", Prompt(5, 1), 12, Greedy()),
      MakeRequest("t1", Prompt(11, 2), 15, Seeded(7)),
      MakeRequest("topk", Prompt(3, 3), 20, Seeded(8, 0.8, 5)),
      MakeRequest("topp", Prompt(17, 4), 9, Seeded(9, 1.2, 0, 0.7)),
      MakeRequest("both", Prompt(1, 5), 14, Seeded(10, 0.5, 8, 0.9)),
      MakeRequest("unseeded", Prompt(4, 6), 14, SamplingParams()),
      MakeRequest("context", Prompt(30, 7), 60, Seeded(11)),  // 30 + 60 > 64
  };
  requests.back().ignore_eos = true;
  for (const Request& r : requests) ASSERT_TRUE(env.Submit(r).ok());
  EXPECT_FALSE(env.engine().idle());
  const int64_t steps = env.engine().RunUntilIdle();
  EXPECT_GT(steps, 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    const Expected expected = Reference(env.forward(), r, SeedOf(r, i, options), options);
    EXPECT_THAT(env.Tokens(r.id), ElementsAreArray(expected.tokens)) << r.id;
    EXPECT_EQ(env.Final(r.id).finish, expected.finish) << r.id;
  }
  EXPECT_EQ(env.Tokens("context").size(), 34u);
  const EngineStats stats = env.engine().stats();
  EXPECT_EQ(stats.active_requests, 0);
  EXPECT_EQ(stats.accepted_requests, 7);
  EXPECT_EQ(stats.finished_requests, 7);
  EXPECT_EQ(stats.kv.used_blocks, 0);
  EXPECT_TRUE(env.engine().idle());
  EXPECT_EQ(env.engine().Step().sequences, 0);  // idle step does nothing
}

// A seeded request's tokens do not depend on what else is in its batches.
TEST(EngineTest, BatchCompositionDoesNotChangeARequestsTokens) {
  const Request probe = MakeRequest("probe", Prompt(9, 42), 25, Seeded(1234, 1.0, 0, 0.95));
  Env alone(64);
  ASSERT_TRUE(alone.Submit(probe).ok());
  alone.engine().RunUntilIdle();

  Env crowded(64);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        crowded
            .Submit(MakeRequest(absl::StrCat("before", i), Prompt(3 + i * 5, i), 10 + i, Seeded(i)))
            .ok());
  }
  crowded.engine().Step();
  ASSERT_TRUE(crowded.Submit(probe).ok());
  for (int i = 0; i < 3; ++i) {
    crowded.engine().Step();
    ASSERT_TRUE(
        crowded
            .Submit(MakeRequest(absl::StrCat("after", i), Prompt(20, 9 + i), 30, Seeded(100 + i)))
            .ok());
  }
  crowded.engine().RunUntilIdle();
  EXPECT_EQ(alone.Tokens("probe"), crowded.Tokens("probe"));
  EXPECT_EQ(alone.Tokens("probe").size(), 25u);
}

// A sampled request resumed elsewhere (prompt + the tokens it had generated, the same
// seed, first_sample_step = their count) generates exactly the rest of what it would
// have generated uninterrupted.
TEST(EngineTest, AResumedSampledRequestContinuesItsRandomStream) {
  const Request whole = MakeRequest("whole", Prompt(7, 3), 24, Seeded(99, 1.0, 0, 0.9));
  Env uninterrupted(64);
  ASSERT_TRUE(uninterrupted.Submit(whole).ok());
  uninterrupted.engine().RunUntilIdle();
  const std::vector<int32_t> all = uninterrupted.Tokens("whole");
  ASSERT_EQ(all.size(), 24u);

  constexpr int kBefore = 10;  // tokens streamed before the first worker was lost
  Request rest = whole;
  rest.id = "rest";
  rest.prompt.insert(rest.prompt.end(), all.begin(), all.begin() + kBefore);
  rest.max_tokens = whole.max_tokens - kBefore;
  Env resumed(64);
  Request restarted = rest;  // the old behaviour: the stream started over
  restarted.id = "restarted";
  rest.generated_before = kBefore;
  ASSERT_TRUE(resumed.Submit(rest).ok());
  ASSERT_TRUE(resumed.Submit(restarted).ok());
  resumed.engine().RunUntilIdle();
  EXPECT_EQ(resumed.Tokens("rest"), std::vector<int32_t>(all.begin() + kBefore, all.end()));
  EXPECT_NE(resumed.Tokens("restarted"), resumed.Tokens("rest"));
}

TEST(EngineTest, UnseededRequestsFollowTheEngineSeed) {
  auto run = [](uint64_t seed) {
    EngineOptions options = Options();
    options.seed = seed;
    Env env(64, options);
    for (int i = 0; i < 4; ++i) {
      EXPECT_TRUE(env.Submit(MakeRequest(absl::StrCat("r", i), Prompt(4, i), 20)).ok());
    }
    env.engine().RunUntilIdle();
    std::vector<std::vector<int32_t>> out;
    for (int i = 0; i < 4; ++i) out.push_back(env.Tokens(absl::StrCat("r", i)));
    return out;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(EngineTest, BadRequestsAreRejectedAndNothingIsQueued) {
  EngineOptions options = Options();
  options.max_waiting = 2;
  Env env(8, options);  // 32 tokens of cache
  Env no_text(8, options, /*detokenize=*/false);
  auto code = [&](Request r, Env& e) { return e.Submit(std::move(r)).code(); };
  using absl::StatusCode;
  const Request good = MakeRequest("ok", Prompt(3, 0), 4);

  Request r = good;
  r.id = "";
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.prompt.clear();
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.prompt = Prompt(64, 0);  // max_context 64
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.max_tokens = 0;
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r.max_tokens = -3;
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.prompt[1] = kVocab;
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r.prompt[1] = -1;
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.stop_token_ids = {kVocab + 5};
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.stop = {"x", ""};
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.stop = {"x"};
  EXPECT_EQ(code(r, no_text), StatusCode::kInvalidArgument);
  r = good;
  r.sampling.temperature = -1;
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.sampling.top_p = 0;
  EXPECT_EQ(code(r, env), StatusCode::kInvalidArgument);
  r = good;
  r.max_tokens = 40;  // 42 tokens, 41 cached: 11 blocks > 8
  EXPECT_EQ(code(r, env), StatusCode::kResourceExhausted);
  EXPECT_EQ(env.engine().Submit(good, StreamCallback()).code(), StatusCode::kInvalidArgument);

  EXPECT_TRUE(env.engine().idle());
  EXPECT_EQ(env.engine().stats().accepted_requests, 0);
  env.engine().RunUntilIdle();
  EXPECT_TRUE(env.events.empty());

  // Duplicates and a full queue.
  ASSERT_TRUE(env.Submit(good).ok());
  EXPECT_EQ(code(good, env), StatusCode::kAlreadyExists);
  r = good;
  r.id = "second";
  ASSERT_TRUE(env.Submit(r).ok());
  r.id = "third";
  EXPECT_EQ(code(r, env), StatusCode::kResourceExhausted);
  env.engine().RunUntilIdle();
  EXPECT_EQ(env.Final("ok").finish, FinishReason::kLength);
  ASSERT_TRUE(env.Submit(good).ok());  // a finished id can be reused
  env.engine().RunUntilIdle();
  EXPECT_EQ(env.events["ok"].size(), 8u);  // two runs of 4 tokens
}

// Runs `r` alone in `env` without stop strings; its text (2 characters per token).
std::string RunAlone(Env& env, Request r) {
  r.stop.clear();
  EXPECT_TRUE(env.Submit(r).ok());
  env.engine().RunUntilIdle();
  const std::string text = env.Text(r.id);
  EXPECT_EQ(text.size(), 2 * static_cast<size_t>(r.max_tokens));
  return text;
}

TEST(EngineTest, StopStringSpanningTokensEndsTheTextBeforeIt) {
  Request r = MakeRequest("s", Prompt(6, 3), 12, Greedy());
  r.ignore_eos = true;
  Env probe(64);
  const std::string full = RunAlone(probe, r);
  EXPECT_EQ(probe.Final("s").finish, FinishReason::kLength);

  // Characters 5 and 6: the end of token 2 and the start of token 3.
  const std::string stop = full.substr(5, 2);
  const size_t at = full.find(stop);
  ASSERT_LE(at, 5u);
  r.stop = {"never", stop};
  Env env(64);
  ASSERT_TRUE(env.Submit(r).ok());
  env.engine().RunUntilIdle();
  const StreamEvent final_event = env.Final("s");
  EXPECT_EQ(final_event.finish, FinishReason::kStop);
  EXPECT_EQ(env.Text("s"), full.substr(0, at));
  // Tokens stream up to and including the one that completed the stop string.
  const size_t last_token = (at + stop.size() - 1) / 2;
  const std::vector<int32_t> all = probe.Tokens("s");
  EXPECT_THAT(env.Tokens("s"), ElementsAreArray(all.begin(), all.begin() + last_token + 1));
  EXPECT_EQ(env.cache().free_blocks(), 64);
}

// A request resumed while part of a stop string was held back: the resumed engine is
// told the tokens and the text the client already has, matches the stop string across
// the break, and the client's text is what it would have been uninterrupted.
TEST(EngineTest, AResumedRequestMatchesAStopStringSpanningTheBreak) {
  Request r = MakeRequest("s", Prompt(6, 3), 12, Greedy());
  r.ignore_eos = true;
  Env probe(64);
  const std::string full = RunAlone(probe, r);
  // Characters 5..8: the end of token 2, token 3, the start of token 4.
  const std::string stop = full.substr(5, 4);
  ASSERT_EQ(full.find(stop), 5u);
  r.stop = {stop};
  Env whole(64);
  ASSERT_TRUE(whole.Submit(r).ok());
  whole.engine().RunUntilIdle();
  ASSERT_EQ(whole.Final("s").finish, FinishReason::kStop);
  ASSERT_EQ(whole.Text("s"), full.substr(0, 5));

  // The break after token 3: the client has the tokens 0..3 and the text before the
  // stop string's start; characters 5..7 were held back.
  constexpr int kBefore = 4;
  const std::vector<int32_t> tokens = probe.Tokens("s");
  std::string sent;
  for (int i = 0; i < kBefore; ++i) sent += whole.events["s"][i].text;
  ASSERT_EQ(sent, full.substr(0, 5));
  Request rest = r;
  rest.id = "rest";
  rest.prompt.insert(rest.prompt.end(), tokens.begin(), tokens.begin() + kBefore);
  rest.max_tokens = r.max_tokens - kBefore;
  rest.generated_before = kBefore;
  rest.streamed_text = sent;
  Env resumed(64);
  ASSERT_TRUE(resumed.Submit(rest).ok());
  resumed.engine().RunUntilIdle();
  EXPECT_EQ(resumed.Final("rest").finish, FinishReason::kStop);
  EXPECT_EQ(sent + resumed.Text("rest"), whole.Text("s"));
  EXPECT_THAT(resumed.Tokens("rest"), ElementsAre(tokens[kBefore]));

  // Without a stop string the held-back text is sent with the next token.
  Request plain = rest;
  plain.id = "plain";
  plain.stop.clear();
  plain.streamed_text = full.substr(0, 3);  // as if characters 3..7 had been held
  Env resumed_plain(64);
  ASSERT_TRUE(resumed_plain.Submit(plain).ok());
  resumed_plain.engine().RunUntilIdle();
  EXPECT_EQ(plain.streamed_text + resumed_plain.Text("plain"), full);

  // generated_before must leave the original prompt.
  Request bad = rest;
  bad.id = "bad";
  bad.generated_before = static_cast<int64_t>(bad.prompt.size());
  EXPECT_EQ(resumed.Submit(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, EosAndStopTokensAreReportedButNotDetokenized) {
  Request r = MakeRequest("e", Prompt(6, 5), 12, Greedy());
  Env probe(64);
  ASSERT_TRUE(probe.Submit(r).ok());
  probe.engine().RunUntilIdle();
  const std::vector<int32_t> all = probe.Tokens("e");
  ASSERT_EQ(all.size(), 12u);
  const int32_t marker = all[3];
  const size_t first = std::find(all.begin(), all.end(), marker) - all.begin();
  std::string text_before;
  for (size_t i = 0; i < first; ++i) text_before += probe.detokenizer().Text(all[i]);

  EngineOptions options = Options();
  options.scheduler.eos_token_ids = {marker};
  Env eos(64, options);
  ASSERT_TRUE(eos.Submit(r).ok());
  eos.engine().RunUntilIdle();
  EXPECT_EQ(eos.Final("e").finish, FinishReason::kEos);
  EXPECT_EQ(eos.Final("e").token, marker);
  EXPECT_EQ(eos.Tokens("e").size(), first + 1);
  EXPECT_EQ(eos.Text("e"), text_before);

  Env ignore(64, options);
  Request ignoring = r;
  ignoring.ignore_eos = true;
  ASSERT_TRUE(ignore.Submit(ignoring).ok());
  ignore.engine().RunUntilIdle();
  EXPECT_EQ(ignore.Tokens("e"), all);

  Env stop(64);
  Request stopping = r;
  stopping.stop_token_ids = {marker};
  ASSERT_TRUE(stop.Submit(stopping).ok());
  stop.engine().RunUntilIdle();
  EXPECT_EQ(stop.Final("e").finish, FinishReason::kStop);
  EXPECT_EQ(stop.Tokens("e").size(), first + 1);
  EXPECT_EQ(stop.Text("e"), text_before);
}

TEST(EngineTest, LogprobsStreamWithTokens) {
  Env env(64);
  SamplingParams p = Seeded(3);
  p.logprobs = true;
  p.top_logprobs = 3;
  ASSERT_TRUE(env.Submit(MakeRequest("l", Prompt(4, 1), 5, p)).ok());
  ASSERT_TRUE(env.Submit(MakeRequest("n", Prompt(4, 1), 5, Seeded(3))).ok());
  env.engine().RunUntilIdle();
  for (const StreamEvent& e : env.events["l"]) {
    ASSERT_TRUE(e.logprob.has_value());
    EXPECT_LE(*e.logprob, 0.0f);
    ASSERT_EQ(e.top_logprobs.size(), 3u);
    EXPECT_GE(e.top_logprobs[0].logprob, *e.logprob - 1e-6f);
  }
  for (const StreamEvent& e : env.events["n"]) EXPECT_FALSE(e.logprob.has_value());
  EXPECT_EQ(env.Tokens("l"), env.Tokens("n"));  // logprobs change nothing sampled
}

TEST(EngineTest, CancelWaitingAndRunningRequests) {
  EngineOptions options = Options();
  options.scheduler.max_num_seqs = 1;
  Env env(16, options);
  ASSERT_TRUE(env.Submit(MakeRequest("run", Prompt(5, 1), 20)).ok());
  ASSERT_TRUE(env.Submit(MakeRequest("wait", Prompt(5, 2), 20)).ok());
  env.engine().Step();
  env.engine().Step();
  EXPECT_EQ(env.Tokens("run").size(), 2u);
  EXPECT_GT(env.cache().stats().used_blocks, 0);

  ASSERT_TRUE(env.engine().Cancel("wait").ok());
  StreamEvent final_event = env.Final("wait");
  EXPECT_EQ(final_event.finish, FinishReason::kCancelled);
  EXPECT_FALSE(final_event.token.has_value());
  EXPECT_EQ(env.events["wait"].size(), 1u);

  ASSERT_TRUE(env.engine().Cancel("run").ok());
  EXPECT_EQ(env.Final("run").finish, FinishReason::kCancelled);
  EXPECT_EQ(env.cache().stats().used_blocks, 0);
  EXPECT_EQ(env.engine().Cancel("run").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(env.engine().Cancel("nobody").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(env.engine().idle());
  env.engine().RunUntilIdle();
  EXPECT_EQ(env.events["run"].size(), 3u);  // 2 tokens + the final event
}

TEST(EngineTest, CallbacksMayCancelAndSubmit) {
  Env env(64);
  Engine& engine = env.engine();
  int a_tokens = 0;
  ASSERT_TRUE(
      engine
          .Submit(MakeRequest("a", Prompt(3, 1), 30),
                  [&](const StreamEvent& e) {
                    env.events["a"].push_back(e);
                    if (!e.token || e.finish) return;
                    ++a_tokens;
                    if (a_tokens == 2) {
                      EXPECT_TRUE(engine.Cancel("b").ok());
                      EXPECT_TRUE(
                          engine.Submit(MakeRequest("c", Prompt(2, 3), 3), env.Recorder()).ok());
                    }
                    if (a_tokens == 3) {
                      EXPECT_TRUE(engine.Cancel("a").ok());
                    }
                  })
          .ok());
  ASSERT_TRUE(env.Submit(MakeRequest("b", Prompt(3, 2), 30)).ok());
  engine.RunUntilIdle();
  EXPECT_EQ(env.Final("a").finish, FinishReason::kCancelled);
  EXPECT_EQ(env.Tokens("a").size(), 3u);
  EXPECT_EQ(env.Final("b").finish, FinishReason::kCancelled);
  EXPECT_EQ(env.Final("c").finish, FinishReason::kLength);
  EXPECT_EQ(env.Tokens("c").size(), 3u);
  EXPECT_EQ(env.cache().stats().used_blocks, 0);
}

TEST(EngineTest, AFailedForwardFailsItsBatchAndTheEngineGoesOn) {
  Env env(64);
  ASSERT_TRUE(env.Submit(MakeRequest("x", Prompt(3, 1), 5)).ok());
  ASSERT_TRUE(env.Submit(MakeRequest("y", Prompt(20, 2), 5)).ok());  // mid-prefill
  env.forward().FailNext(1, absl::UnavailableError("expert worker lost"));
  env.engine().Step();
  for (const char* id : {"x", "y"}) {
    const StreamEvent e = env.Final(id);
    EXPECT_EQ(e.finish, FinishReason::kError);
    EXPECT_EQ(e.status.code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(env.cache().stats().used_blocks, 0);
  EXPECT_TRUE(env.engine().idle());
  const Request z = MakeRequest("z", Prompt(3, 1), 5, Seeded(1));
  ASSERT_TRUE(env.Submit(z).ok());
  env.engine().RunUntilIdle();
  EXPECT_EQ(env.Tokens("z"), Reference(env.forward(), z, 1, Options()).tokens);
}

TEST(EngineTest, PreemptionUnderATinyCacheKeepsEveryContinuation) {
  EngineOptions options = Options();
  options.scheduler.max_prefill_chunk = 5;
  std::vector<Request> requests;
  for (int i = 0; i < 10; ++i) {
    requests.push_back(MakeRequest(absl::StrCat("r", i), Prompt(2 + i * 3 % 13, i), 8 + i * 5 % 17,
                                   i % 3 == 0 ? Greedy() : Seeded(i, 0.9, i % 2 ? 6 : 0)));
  }
  Env tight(9, options);  // 36 tokens for 10 sequences of up to ~30
  for (const Request& r : requests) ASSERT_TRUE(tight.Submit(r).ok());
  tight.engine().RunUntilIdle();
  EXPECT_GT(tight.engine().stats().scheduler.preemptions, 3);
  EXPECT_EQ(tight.cache().stats().used_blocks, 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    const Expected expected =
        Reference(tight.forward(), requests[i], SeedOf(requests[i], i, options), options);
    EXPECT_THAT(tight.Tokens(requests[i].id), ElementsAreArray(expected.tokens)) << i;
    EXPECT_EQ(tight.Final(requests[i].id).finish, expected.finish);
  }
}

// Random submits, cancels (also from callbacks), forward failures and steps over a
// small cache: every accepted request ends exactly once with its final event last,
// nothing rejected streams, and every request's tokens are its standalone reference
// (or a prefix of it when it ended early).
TEST(EngineTest, RandomStressNeverLosesARequest) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    EngineOptions options = Options();
    options.scheduler.max_num_seqs = 4;
    options.scheduler.max_batch_tokens = 12;
    options.scheduler.max_prefill_chunk = 5;
    options.scheduler.max_context = 40;
    options.scheduler.eos_token_ids = {0};
    options.max_waiting = 6;
    options.seed = seed;
    Env env(10, options);
    Engine& engine = env.engine();

    std::map<std::string, Request> accepted;
    std::map<std::string, int64_t> index;
    std::set<std::string> rejected;
    std::vector<std::string> ids;
    int next = 0;
    auto submit = [&]() {
      Request r;
      r.id = absl::StrCat("q", next++);
      r.prompt = Prompt(1 + static_cast<int>(rng() % 20), rng());
      r.max_tokens = 1 + static_cast<int64_t>(rng() % 25);
      switch (rng() % 4) {
        case 0:
          r.sampling = Greedy();
          break;
        case 1:
          r.sampling = Seeded(rng(), 0.7, 4, 0.9);
          break;
        case 2:
          break;  // unseeded
        default:
          r.sampling = Seeded(rng());
      }
      if (rng() % 4 == 0) r.stop_token_ids = {static_cast<int32_t>(rng() % kVocab)};
      if (rng() % 4 == 0) r.stop = {std::string(1, static_cast<char>('a' + rng() % 26))};
      if (rng() % 8 == 0) r.prompt[0] = kVocab + 1;  // invalid
      r.ignore_eos = rng() % 5 == 0;
      const std::string id = r.id;
      const absl::Status status = engine.Submit(r, [&, id](const StreamEvent& e) {
        env.events[id].push_back(e);
        // Now and then a client hangs up on another request from inside a callback.
        if (!ids.empty() && rng() % 50 == 0) (void)engine.Cancel(ids[rng() % ids.size()]);
      });
      if (status.ok()) {
        index[id] = static_cast<int64_t>(accepted.size());
        accepted[id] = r;
        ids.push_back(id);
      } else {
        rejected.insert(id);
      }
    };
    for (int iter = 0; iter < 400; ++iter) {
      const uint32_t op = rng() % 10;
      if (op < 3) {
        submit();
      } else if (op == 3 && !ids.empty()) {
        (void)engine.Cancel(ids[rng() % ids.size()]);
      } else if (op == 4 && rng() % 8 == 0) {
        env.forward().FailNext(1, absl::InternalError("injected"));
      } else {
        engine.Step();
      }
    }
    engine.RunUntilIdle();

    EXPECT_GT(accepted.size(), 50u);
    EXPECT_FALSE(rejected.empty());
    for (const std::string& id : rejected) EXPECT_EQ(env.events.count(id), 0u) << id;
    std::map<FinishReason, int> reasons;
    for (const auto& [id, r] : accepted) {
      const StreamEvent final_event = env.Final(id);
      ASSERT_TRUE(final_event.finish.has_value());
      const FinishReason reason = *final_event.finish;
      ++reasons[reason];
      const Expected expected = Reference(env.forward(), r, SeedOf(r, index[id], options), options);
      const std::vector<int32_t> tokens = env.Tokens(id);
      ASSERT_LE(tokens.size(), expected.tokens.size()) << id;
      EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), expected.tokens.begin())) << id;
      const bool stopped_by_text = reason == FinishReason::kStop && !r.stop.empty() &&
                                   tokens.size() <= expected.tokens.size();
      if (reason != FinishReason::kCancelled && reason != FinishReason::kError &&
          !stopped_by_text) {
        EXPECT_EQ(tokens, expected.tokens) << id;
        EXPECT_EQ(reason, expected.finish) << id;
      }
      if (reason == FinishReason::kStop && !r.stop.empty() && tokens != expected.tokens) {
        // Stopped by text: the stop string appears in the full text, never in what streamed.
        EXPECT_EQ(env.Text(id).find(r.stop[0]), std::string::npos) << id;
      }
    }
    EXPECT_GT(reasons[FinishReason::kCancelled], 0);
    EXPECT_GT(reasons[FinishReason::kLength], 0);
    EXPECT_GT(env.engine().stats().scheduler.preemptions, 0);
    EXPECT_EQ(env.engine().stats().active_requests, 0);
    EXPECT_EQ(env.cache().stats().used_blocks, 0);
    EXPECT_EQ(env.engine().stats().finished_requests, static_cast<int64_t>(accepted.size()));
  }
}

}  // namespace
}  // namespace yard::engine
