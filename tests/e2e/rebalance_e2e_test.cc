// Live rebalancing on a real cluster (issue #5): while a steady stream of requests with
// a skewed mix runs, `yardctl rebalance --apply` completes; no request fails; every
// greedy output equals the one before the rebalance (deterministic mode: an expert's
// output does not depend on which slot or worker computed it); the imbalance measured
// from per-slot counts falls. The decode step times around the rebalance, as clients
// and the attention worker's engine see them, are printed (not asserted; see below).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/cleanup/cleanup.h"
#include "gtest/gtest.h"
#include "model/presets.h"
#include "nlohmann/json.hpp"
#include "proto/admin.grpc.pb.h"
#include "proto/generation.grpc.pb.h"
#include "tests/util/greedy_stream.h"
#include "tests/util/local_cluster.h"
#include "tests/util/run_binary.h"
#include "tests/util/test_model.h"

namespace yard {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxTokens = 24;
constexpr const char* kTokenizerDir = "data/tokenizers/deepseek-v3";

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

// Prompts of a few repeated token ids: their tokens route to the same few experts.
std::vector<std::vector<int32_t>> SkewedPrompts() {
  std::vector<std::vector<int32_t>> prompts;
  for (int32_t base : {270, 1805, 4000, 270}) {
    std::vector<int32_t> p(12 + base % 5, base);
    p[0] = 0;
    prompts.push_back(p);
  }
  return prompts;
}

using Stream = testing::TimedStream;

Stream Generate(generation::Generation::Stub& stub, const std::vector<int32_t>& prompt) {
  return testing::GreedyStream(stub, prompt, kMaxTokens, std::chrono::seconds(120));
}

// Max / mean of the expert workers' routed rows under the newest placement version
// in the window, from `yardctl experts --json`.
double MeasuredImbalance(const nlohmann::json& experts) {
  double sum_of_layers = 0;
  int layers = 0;
  for (const nlohmann::json& layer : experts["layers"]) {
    std::map<uint32_t, double> per_worker;
    double total = 0;
    for (const nlohmann::json& slot : layer["slots"]) {
      per_worker[slot["worker_id"].get<uint32_t>()] += slot["tokens"].get<double>();
      total += slot["tokens"].get<double>();
    }
    if (total <= 0) continue;
    double max = 0;
    for (const auto& [w, n] : per_worker) max = std::max(max, n);
    sum_of_layers += max / (total / per_worker.size());
    ++layers;
  }
  return layers == 0 ? 0 : sum_of_layers / layers;
}

// Cluster options for a fresh tiny-v3 checkpoint in $TEST_TMPDIR/NAME (logs in
// logs-NAME), deterministic workers heartbeating every 50 ms.
testing::LocalClusterOptions TinyCluster(const std::string& name, int attention, int experts) {
  testing::LocalClusterOptions options;
  options.model_dir = TmpDir() + "/" + name;
  const absl::Status written = testing::WriteTestModel("tiny-v3", options.model_dir);
  EXPECT_TRUE(written.ok()) << written;
  options.tokenizer_dir = kTokenizerDir;
  options.attention_workers = attention;
  options.expert_workers = experts;
  options.worker_flags = {"--deterministic", "--heartbeat-ms=50"};
  options.log_dir = TmpDir() + "/logs-" + name;
  return options;
}

TEST(RebalanceE2eTest, LiveRebalanceUnderSkewedLoadLosesNothingAndChangesNoOutput) {
  testing::LocalClusterOptions options = TinyCluster("rebalance", 1, 2);
  options.worker_flags.push_back("--load-report-ms=100");
  options.coordinator_flags = {"--load-window-s=2"};
  auto cluster = testing::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string yardctl = "tools/yardctl/yardctl --addr=" + (*cluster)->address() +
                              " --token=" + options.cluster_token;
  auto channel = grpc::CreateChannel((*cluster)->address(), grpc::InsecureChannelCredentials());
  auto stub = generation::Generation::NewStub(channel);

  // Before: each prompt's greedy output under placement v1.
  const std::vector<std::vector<int32_t>> prompts = SkewedPrompts();
  std::vector<std::vector<int32_t>> before;
  for (const auto& p : prompts) {
    Stream s = Generate(*stub, p);
    ASSERT_EQ(s.error, "");
    ASSERT_EQ(s.tokens.size(), static_cast<size_t>(kMaxTokens));
    before.push_back(s.tokens);
  }

  // A steady stream: each client loops over the prompts until told to stop.
  constexpr int kClients = 4;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<size_t, Stream>> done;  // (prompt, stream)
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto client = generation::Generation::NewStub(channel);
      for (size_t i = c; !stop.load(); ++i) {
        const size_t prompt = i % prompts.size();
        Stream s = Generate(*client, prompts[prompt]);
        std::lock_guard<std::mutex> lock(mu);
        done.emplace_back(prompt, std::move(s));
      }
    });
  }
  // A failed ASSERT returns early: the clients still stop and are joined.
  absl::Cleanup join_clients = [&] {
    stop = true;
    for (std::thread& t : clients) {
      if (t.joinable()) t.join();
    }
  };
  // The attention worker's own decode-only step times, as its heartbeats report them
  // (every 50 ms) through Admin.Status: (when sampled, p50, max) per heartbeat.
  struct StepSample {
    Clock::time_point at;
    double p50_ms, max_ms;
  };
  std::vector<StepSample> steps;
  std::atomic<bool> stop_sampling{false};
  std::thread sampler([&] {
    auto admin = admin::Admin::NewStub(channel);
    admin::WorkerStatus last;
    while (!stop_sampling.load()) {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + options.cluster_token);
      admin::StatusResponse status;
      if (admin->Status(&context, admin::StatusRequest(), &status).ok()) {
        for (const admin::WorkerStatus& w : status.workers()) {
          if (w.role() != "attention" || w.decode_steps() == 0) continue;
          if (w.decode_step_max_ms() == last.decode_step_max_ms() &&
              w.decode_step_p50_ms() == last.decode_step_p50_ms()) {
            continue;  // the same heartbeat as the last sample
          }
          last = w;
          steps.push_back({Clock::now(), w.decode_step_p50_ms(), w.decode_step_max_ms()});
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  absl::Cleanup join_sampler = [&] {
    stop_sampling = true;
    if (sampler.joinable()) sampler.join();
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // a window of v1 load
  const nlohmann::json experts_v1 =
      nlohmann::json::parse(testing::RunBinary(yardctl + " experts --json").out);
  const double measured_before = MeasuredImbalance(experts_v1);

  // The rebalance whose steps are timed is opened on the Admin API from here, so the
  // window holds the rebalance alone and not a process start-up on these two busy
  // cores; `yardctl rebalance --apply` then runs a second one under the same stream.
  // yardctl's start-up just above slows the steps beside it: two heartbeats pass first,
  // so that no heartbeat sampled in the window reports them.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto admin = admin::Admin::NewStub(channel);
  grpc::ClientContext admin_context;
  admin_context.AddMetadata("authorization", "Bearer " + options.cluster_token);
  admin::RebalanceRequest apply;
  apply.set_apply(true);
  const Clock::time_point rebalance_start = Clock::now();
  auto progress = admin->Rebalance(&admin_context, apply);
  admin::RebalanceProgress step, planned;
  std::vector<std::string> phases;
  while (progress->Read(&step)) {
    if (phases.empty() || phases.back() != step.phase()) phases.push_back(step.phase());
    if (step.phase() == "plan") planned = step;
  }
  const grpc::Status applied = progress->Finish();
  const Clock::time_point rebalance_end = Clock::now();
  ASSERT_TRUE(applied.ok()) << applied.error_message();
  EXPECT_EQ(phases, (std::vector<std::string>{"plan", "load", "switch", "release", "done"}));
  const nlohmann::json plan = {{"placement_version", planned.placement_version()},
                               {"imbalance_before", planned.imbalance_before()},
                               {"imbalance_after", planned.imbalance_after()},
                               {"slots_loaded", planned.slots_loaded()}};
  EXPECT_EQ(plan["placement_version"].get<int>(), 2);
  EXPECT_LT(plan["imbalance_after"].get<double>(), plan["imbalance_before"].get<double>());

  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // a window of v2 load
  const nlohmann::json experts_v2 =
      nlohmann::json::parse(testing::RunBinary(yardctl + " experts --json").out);
  // yardctl under the same stream: the load is balanced now, so the plan keeps (nearly)
  // every expert where it is, and it completes all the same.
  std::move(join_sampler).Invoke();
  const testing::RunResult again = testing::RunBinary(yardctl + " rebalance --apply --json");
  std::move(join_clients).Invoke();
  ASSERT_EQ(again.exit_code, 0) << again.err << again.out;
  const nlohmann::json second = nlohmann::json::parse(again.out.substr(again.out.rfind('{')));
  EXPECT_EQ(second["placement_version"].get<int>(), 3);
  EXPECT_TRUE(second["applied"].get<bool>());
  std::printf("second rebalance (yardctl): %d slots loaded, imbalance %.3f -> %.3f\n",
              second["slots_loaded"].get<int>(), second["imbalance_before"].get<double>(),
              second["imbalance_after"].get<double>());
  ASSERT_EQ(experts_v2["placement_version"].get<int>(), 2);
  const double measured_after = MeasuredImbalance(experts_v2);

  // Nothing failed, nothing changed.
  int during = 0;
  std::vector<double> gaps_before, gaps_during;
  for (const auto& [prompt, s] : done) {
    EXPECT_EQ(s.error, "") << "prompt " << prompt;
    EXPECT_EQ(s.tokens, before[prompt]) << "prompt " << prompt;
    // Decode steps: the gaps between a stream's tokens (the first one is the prefill's).
    for (size_t i = 2; i < s.arrivals.size(); ++i) {
      const double ms =
          std::chrono::duration<double, std::milli>(s.arrivals[i] - s.arrivals[i - 1]).count();
      if (s.arrivals[i] < rebalance_start) gaps_before.push_back(ms);
      if (s.arrivals[i] > rebalance_start && s.arrivals[i - 1] < rebalance_end) {
        gaps_during.push_back(ms);
      }
    }
    during += s.sent < rebalance_end && s.finished > rebalance_start;
  }
  EXPECT_GT(during, 0) << "no request was in flight during the rebalance";
  // The figures below are reported, not asserted (see the end); a window without a
  // decode gap in it (the rebalance can take 30 ms) reports zeros.
  auto at = [](std::vector<double>& v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
  };
  const double median = at(gaps_before, 0.5);
  const double longest = at(gaps_during, 1.0);
  const double p99_before = at(gaps_before, 0.99);
  const double longest_before = at(gaps_before, 1.0);
  std::printf("before the rebalance: %zu decode gaps, p99 %.2f ms, longest %.2f ms\n",
              gaps_before.size(), p99_before, longest_before);
  std::printf(
      "rebalance: %zu requests, %d decoding during it (%.0f ms); imbalance planned %.3f -> %.3f, "
      "measured %.3f -> %.3f; %d slots loaded; decode step median %.2f ms, longest during the "
      "rebalance %.2f ms (%.2fx)\n",
      done.size(), during,
      std::chrono::duration<double, std::milli>(rebalance_end - rebalance_start).count(),
      plan["imbalance_before"].get<double>(), plan["imbalance_after"].get<double>(),
      measured_before, measured_after, plan["slots_loaded"].get<int>(), median, longest,
      median > 0 ? longest / median : 0.0);
  // The engine's view: decode-only steps (no prompt in the batch), per heartbeat.
  std::vector<double> p50_before, max_before;
  double engine_longest = 0;
  for (const StepSample& sample : steps) {
    if (sample.at < rebalance_start) {
      p50_before.push_back(sample.p50_ms);
      max_before.push_back(sample.max_ms);
    }
    // A heartbeat sampled up to 100 ms after the window covers steps inside it.
    if (sample.at >= rebalance_start && sample.at <= rebalance_end + std::chrono::milliseconds(100)) {
      engine_longest = std::max(engine_longest, sample.max_ms);
    }
  }
  const double engine_median = at(p50_before, 0.5);
  // The machine's own noise, for comparison: how often a heartbeat's window without a
  // rebalance already holds a step beyond 1.5x the median.
  const auto over = std::count_if(max_before.begin(), max_before.end(),
                                  [&](double ms) { return ms > 1.5 * engine_median; });
  std::printf(
      "engine decode steps: median %.2f ms; longest per 50 ms before the rebalance: median "
      "%.2f ms, worst %.2f ms, over 1.5x the median in %ld of %zu; longest during the "
      "rebalance %.2f ms (%.2fx the median)\n",
      engine_median, at(max_before, 0.5), at(max_before, 1.0), static_cast<long>(over),
      max_before.size(), engine_longest, engine_median > 0 ? engine_longest / engine_median : 0.0);

  EXPECT_LT(measured_after, measured_before);
  // The step figures are printed, not asserted (timings on a shared 2-core machine):
  // issue #5 asks for the longest decode step during a rebalance to stay within 1.5x
  // the median. With the workers splitting the cores (one kernel thread each here), 20
  // runs one after another gave 0.84-1.44x (engine) and 0.90-1.40x, once 1.68x
  // (clients); with two threads each the pools preempt one another mid-step and it was
  // 1.2-1.7x (README.md, 2026-12-03).
}

// `yardctl drain` of an expert worker and of an attention worker under a steady stream,
// each then stopped: no request fails and every output is unchanged.
TEST(RebalanceE2eTest, DrainedWorkersCanBeStoppedWithNoRequestLost) {
  const testing::LocalClusterOptions options = TinyCluster("drain", 2, 2);
  auto cluster = testing::LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string yardctl = "tools/yardctl/yardctl --addr=" + (*cluster)->address() +
                              " --token=" + options.cluster_token;
  auto channel = grpc::CreateChannel((*cluster)->address(), grpc::InsecureChannelCredentials());
  auto stub = generation::Generation::NewStub(channel);
  const std::vector<std::vector<int32_t>> prompts = SkewedPrompts();
  std::vector<std::vector<int32_t>> before;
  for (const auto& p : prompts) before.push_back(Generate(*stub, p).tokens);

  // The worker of each role with the highest id, and its pid.
  const nlohmann::json status =
      nlohmann::json::parse(testing::RunBinary(yardctl + " status --json").out);
  std::map<std::string, std::pair<int, int>> last;  // role → (id, pid)
  for (const nlohmann::json& w : status["workers"]) {
    last[w["role"].get<std::string>()] = {w["id"].get<int>(), w["pid"].get<int>()};
  }
  ASSERT_EQ(last.size(), 2u);

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<size_t, Stream>> done;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      auto client = generation::Generation::NewStub(channel);
      for (size_t i = c; !stop.load(); ++i) {
        Stream s = Generate(*client, prompts[i % prompts.size()]);
        std::lock_guard<std::mutex> lock(mu);
        done.emplace_back(i % prompts.size(), std::move(s));
      }
    });
  }
  // A failed ASSERT returns early: the clients still stop and are joined.
  absl::Cleanup join_clients = [&] {
    stop = true;
    for (std::thread& t : clients) {
      if (t.joinable()) t.join();
    }
  };
  for (const char* role : {"expert", "attention"}) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto [id, pid] = last[role];
    const testing::RunResult drained =
        testing::RunBinary(yardctl + " drain " + std::to_string(id) + " --json");
    ASSERT_EQ(drained.exit_code, 0) << role << ": " << drained.err << drained.out;
    EXPECT_NE(drained.out.find("\"drained\":true"), std::string::npos) << drained.out;
    const nlohmann::json after =
        nlohmann::json::parse(testing::RunBinary(yardctl + " status --json").out);
    for (const nlohmann::json& w : after["workers"]) {
      if (w["id"].get<int>() == id && w["role"] == "expert") {
        EXPECT_EQ(w["slots_used"].get<int>(), 0) << "the drained expert worker holds slots";
      }
    }
    // Stopped as an operator would (SIGTERM: the worker closes its connections and
    // exits). SIGKILL of an expert worker is issue #6's fault test: on UCX 1.13 over TCP
    // it has once crashed a connected attention worker, found by this test (see the
    // closing note of 2026-12-02).
    ASSERT_EQ(kill(pid, SIGTERM), 0) << role;
    std::printf("drained and stopped %s worker %d (pid %d)\n", role, id, pid);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  std::move(join_clients).Invoke();
  size_t after_kills = 0;
  for (const auto& [prompt, s] : done) {
    EXPECT_EQ(s.error, "") << "prompt " << prompt;
    EXPECT_EQ(s.tokens, before[prompt]) << "prompt " << prompt;
    ++after_kills;
  }
  std::printf("%zu requests, none failed\n", after_kills);
  EXPECT_GT(after_kills, 8u);
}

}  // namespace
}  // namespace yard
