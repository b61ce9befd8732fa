// The distributed runtime against the single-process engine, with real processes on
// loopback: coordinator, attention workers and expert workers started as `./yard up`
// starts them, talking real gRPC and UCX. With --deterministic, the cluster's greedy
// tokens and their top-5 log-probabilities (log_softmax of the logits) must be bitwise
// identical to one process whose routed experts see the same rounded inputs, for
// every shape of cluster, for BF16 and FP8 dispatch.
#include <cstdlib>
#include <memory>
#include <string>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "engine/local_engine.h"
#include "gtest/gtest.h"
#include "model/presets.h"
#include "model/tokenizer/tokenizer.h"
#include "proto/generation.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/util/local_cluster.h"
#include "tests/util/run_binary.h"
#include "tests/util/test_model.h"

namespace yard {
namespace {

constexpr int kMaxTokens = 32;
constexpr int kTopLogprobs = 5;
constexpr const char* kTokenizerDir = "data/tokenizers/deepseek-v3";

// What one request produced: greedy tokens and each step's top-k (id, logprob).
struct Output {
  std::vector<int32_t> tokens;
  std::vector<std::vector<std::pair<int32_t, float>>> top;
  bool operator==(const Output&) const = default;
};

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

std::string WriteModel(const char* preset) {
  const std::string dir = TmpDir() + "/" + preset;
  const absl::Status s = testing::WriteTestModel(preset, dir);
  EXPECT_TRUE(s.ok()) << s;
  return dir;
}

std::vector<std::vector<int32_t>> Prompts(int n, int64_t vocab) {
  std::vector<std::vector<int32_t>> prompts;
  uint64_t x = 12345;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p(3 + (i * 7) % 37);
    for (int32_t& t : p) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      t = static_cast<int32_t>((x >> 33) % vocab);
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// The single-process engine, one request at a time (each its own solo run).
std::vector<Output> SingleProcess(const std::string& model_dir,
                                  engine::DispatchPrecision dispatch,
                                  const std::vector<std::vector<int32_t>>& prompts) {
  auto tokenizer = model::Tokenizer::Load(kTokenizerDir);
  EXPECT_TRUE(tokenizer.ok());
  engine::LocalEngineOptions options;
  options.deterministic = true;
  options.dispatch_precision = dispatch;
  options.max_context = 256;
  options.kv_cache_bytes = 64 << 20;
  auto local = engine::LocalEngine::Open(model_dir, tokenizer->get(), options);
  EXPECT_TRUE(local.ok()) << local.status();
  std::vector<Output> outputs(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    engine::Request r;
    r.id = absl::StrCat(i);
    r.prompt = prompts[i];
    r.max_tokens = kMaxTokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = kTopLogprobs;
    Output& out = outputs[i];
    EXPECT_TRUE((*local)->engine().Submit(r, [&out](const engine::StreamEvent& e) {
      if (!e.token) return;
      out.tokens.push_back(*e.token);
      std::vector<std::pair<int32_t, float>> top;
      for (const engine::TokenLogprob& t : e.top_logprobs) top.emplace_back(t.token, t.logprob);
      out.top.push_back(std::move(top));
    }).ok());
    (*local)->engine().RunUntilIdle();
  }
  return outputs;
}

// All prompts at once through the cluster, one stream each.
std::vector<Output> ThroughCluster(const std::string& address,
                                   const std::vector<std::vector<int32_t>>& prompts,
                                   std::vector<std::string>* errors) {
  std::vector<Output> outputs(prompts.size());
  errors->assign(prompts.size(), "");
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = generation::Generation::NewStub(channel);
      generation::GenerateRequest request;
      for (int32_t t : prompts[i]) request.mutable_token_ids()->add_ids(t);
      request.set_max_tokens(kMaxTokens);
      request.set_ignore_eos(true);
      request.set_logprobs(kTopLogprobs);
      request.mutable_sampling()->set_temperature(0);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
      auto reader = stub->Generate(&context, request);
      generation::GenerateResponse response;
      while (reader->Read(&response)) {
        for (int32_t t : response.token_ids()) outputs[i].tokens.push_back(t);
        for (const generation::Logprobs& lp : response.logprobs()) {
          std::vector<std::pair<int32_t, float>> top;
          for (const generation::TokenLogprob& t : lp.top()) top.emplace_back(t.id(), t.logprob());
          outputs[i].top.push_back(std::move(top));
        }
      }
      const grpc::Status status = reader->Finish();
      if (!status.ok()) (*errors)[i] = status.error_message();
    });
  }
  for (std::thread& t : threads) t.join();
  return outputs;
}

struct Shape {
  int attention;
  int experts;
  const char* dispatch;  // --dispatch-dtype
};

void CheckClusterShapes(const char* preset, const std::vector<Shape>& shapes) {
  const std::string model_dir = WriteModel(preset);
  const int64_t vocab = model::PresetConfig(preset)->vocab_size;
  const std::vector<std::vector<int32_t>> prompts = Prompts(8, vocab);
  std::map<std::string, std::vector<Output>> expected;
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(absl::StrCat(preset, ": ", shape.attention, " attention × ", shape.experts,
                              " expert workers, ", shape.dispatch, " dispatch"));
    if (!expected.count(shape.dispatch)) {
      expected[shape.dispatch] = SingleProcess(
          model_dir, *engine::ParseDispatchPrecision(shape.dispatch), prompts);
    }
    testing::LocalClusterOptions options;
    options.model_dir = model_dir;
    options.tokenizer_dir = kTokenizerDir;
    options.attention_workers = shape.attention;
    options.expert_workers = shape.experts;
    options.worker_flags = {"--deterministic", absl::StrCat("--dispatch-dtype=", shape.dispatch)};
    options.log_dir = absl::StrCat(TmpDir(), "/logs-", preset, "-", shape.attention, "x",
                                   shape.experts, "-", shape.dispatch);
    auto cluster = testing::LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    std::vector<std::string> errors;
    const std::vector<Output> got = ThroughCluster((*cluster)->address(), prompts, &errors);
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(errors[i], "") << "prompt " << i << "\n" << (*cluster)->LogTails();
      ASSERT_EQ(got[i].tokens.size(), static_cast<size_t>(kMaxTokens)) << "prompt " << i;
      EXPECT_EQ(got[i].tokens, expected[shape.dispatch][i].tokens) << "prompt " << i;
      EXPECT_TRUE(got[i].top == expected[shape.dispatch][i].top)
          << "prompt " << i << ": top-" << kTopLogprobs << " log-probabilities differ";
    }
  }
}

const std::vector<Shape> kShapes = {
    {1, 1, "bf16"}, {1, 2, "bf16"}, {1, 4, "bf16"}, {2, 1, "bf16"},
    {2, 2, "bf16"}, {2, 4, "bf16"}, {1, 2, "fp8"},
};

TEST(ClusterE2eTest, TinyV3MatchesTheSingleProcessEngineBitwise) {
  CheckClusterShapes("tiny-v3", kShapes);
}

TEST(ClusterE2eTest, TinyV2MatchesTheSingleProcessEngineBitwise) {
  CheckClusterShapes("tiny-v2", kShapes);
}

// 64 streams at once on one attention worker: every one completes and equals its solo
// single-process run (deterministic mode makes a request's logits batch-independent).
TEST(ClusterE2eTest, SixtyFourConcurrentStreamsEqualTheirSoloRuns) {
  const std::string model_dir = WriteModel("tiny-v3");
  const std::vector<std::vector<int32_t>> prompts =
      Prompts(64, model::PresetConfig("tiny-v3")->vocab_size);
  const std::vector<Output> solo =
      SingleProcess(model_dir, engine::DispatchPrecision::kBf16, prompts);
  testing::LocalClusterOptions options;
  options.model_dir = model_dir;
  options.tokenizer_dir = kTokenizerDir;
  options.attention_workers = 1;
  options.expert_workers = 2;
  options.worker_flags = {"--deterministic"};
  options.log_dir = TmpDir() + "/logs-64";
  auto cluster = testing::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  std::vector<std::string> errors;
  const std::vector<Output> got = ThroughCluster((*cluster)->address(), prompts, &errors);
  int identical = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(errors[i], "") << "stream " << i;
    EXPECT_EQ(got[i].tokens, solo[i].tokens) << "stream " << i;
    identical += got[i] == solo[i];
  }
  EXPECT_EQ(identical, 64);
}

// The operator's view of a running cluster: `yardctl status` lists every worker, and
// `yardctl experts` shows the load the attention worker reported, down to the token:
// each MoE layer routed top_k rows for every token forwarded (prompt + generated - 1
// per request). Without the admin token both are refused.
TEST(ClusterE2eTest, YardctlShowsTheWorkersAndTheRoutedLoadOnlyWithTheToken) {
  const std::string model_dir = WriteModel("tiny-v3");
  const model::ModelConfig config = *model::PresetConfig("tiny-v3");
  testing::LocalClusterOptions options;
  options.model_dir = model_dir;
  options.tokenizer_dir = kTokenizerDir;
  options.attention_workers = 1;
  options.expert_workers = 2;
  options.worker_flags = {"--load-report-ms=100", "--heartbeat-ms=100"};
  options.log_dir = TmpDir() + "/logs-admin";
  auto cluster = testing::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string yardctl = "tools/yardctl/yardctl --addr=" + (*cluster)->address();

  testing::RunResult refused = testing::RunBinary("YARD_TOKEN= " + yardctl + " status");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("UNAUTHENTICATED"), std::string::npos) << refused.err;
  refused = testing::RunBinary(yardctl + " experts --token=wrong");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("UNAUTHENTICATED"), std::string::npos) << refused.err;

  const std::string token = " --token=" + options.cluster_token;
  testing::RunResult status = testing::RunBinary(yardctl + " status --json" + token);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const nlohmann::json s = nlohmann::json::parse(status.out);
  ASSERT_EQ(s["workers"].size(), 3u) << status.out;
  int experts_seen = 0;
  for (const nlohmann::json& w : s["workers"]) {
    EXPECT_TRUE(w["healthy"].get<bool>());
    EXPECT_GT(w["pid"].get<int>(), 0);
    if (w["role"] == "expert") {
      ++experts_seen;
      EXPECT_GT(w["slots_used"].get<int>(), 0);
    }
  }
  EXPECT_EQ(experts_seen, 2);
  EXPECT_EQ(s["placement_version"].get<int>(), 1);
  // The human-readable form names the roles too.
  status = testing::RunBinary("YARD_TOKEN=" + options.cluster_token + " " + yardctl + " status");
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("expert"), std::string::npos);

  const std::vector<std::vector<int32_t>> prompts = Prompts(4, config.vocab_size);
  std::vector<std::string> errors;
  ThroughCluster((*cluster)->address(), prompts, &errors);
  uint64_t forwarded = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(errors[i], "");
    forwarded += prompts[i].size() + kMaxTokens - 1;
  }
  const uint64_t want = forwarded * config.num_experts_per_tok;
  // Reports come every 100 ms; wait until all of the routed rows have arrived.
  nlohmann::json experts;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const testing::RunResult r = testing::RunBinary(yardctl + " experts --json" + token);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    experts = nlohmann::json::parse(r.out);
    // Every layer complete: a report may be taken mid-step, between two layers.
    bool complete = true;
    for (const nlohmann::json& layer : experts["layers"]) {
      uint64_t sum = 0;
      for (uint64_t n : layer["tokens_per_expert"]) sum += n;
      complete &= sum >= want;
    }
    if (complete) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  int moe_layers = 0;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) moe_layers += config.IsMoeLayer(l);
  ASSERT_EQ(experts["layers"].size(), static_cast<size_t>(moe_layers));
  for (const nlohmann::json& layer : experts["layers"]) {
    uint64_t per_expert = 0, per_slot = 0;
    for (uint64_t n : layer["tokens_per_expert"]) per_expert += n;
    for (const nlohmann::json& slot : layer["slots"]) per_slot += slot["tokens"].get<uint64_t>();
    EXPECT_EQ(per_expert, want) << "layer " << layer["layer"];
    EXPECT_EQ(per_slot, want) << "layer " << layer["layer"];
    EXPECT_GE(layer["imbalance"].get<double>(), 1.0);
  }
  const testing::RunResult one =
      testing::RunBinary(yardctl + " experts --layer=" + std::to_string(experts["layers"][0]["layer"].get<int>()) + token);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("imbalance"), std::string::npos) << one.out;
}

// bench/load against a real cluster: a steady stream from 4 clients completes with no
// error and reports its rates and latencies; a prompt file that cannot be read is a
// clear error, not a crash.
TEST(ClusterE2eTest, LoadToolDrivesTheClusterAndReportsRatesAndLatencies) {
  testing::LocalClusterOptions options;
  options.model_dir = WriteModel("tiny-v3");
  options.tokenizer_dir = kTokenizerDir;
  options.attention_workers = 1;
  options.expert_workers = 2;
  options.log_dir = TmpDir() + "/logs-load";
  auto cluster = testing::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string prompts = TmpDir() + "/prompts.txt";
  std::ofstream(prompts) << "The capital of France is\n\nOnce upon a time\n";
  const std::string load = "bench/load --addr=" + (*cluster)->address();
  const testing::RunResult r = testing::RunBinary(
      load + " --concurrency=4 --duration=2 --max-tokens=8 --json --prompt-file=" + prompts);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const std::string last_line = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  const nlohmann::json j = nlohmann::json::parse(last_line);
  EXPECT_GT(j["requests"].get<int>(), 4);
  EXPECT_GT(j["output_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["ttft_ms_p50"].get<double>(), 0);
  EXPECT_GE(j["itl_ms_p99"].get<double>(), j["itl_ms_p50"].get<double>());
  EXPECT_TRUE(j["errors"].empty()) << j.dump();
  const testing::RunResult missing =
      testing::RunBinary(load + " --duration=1 --prompt-file=" + TmpDir() + "/nope.txt");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace yard
