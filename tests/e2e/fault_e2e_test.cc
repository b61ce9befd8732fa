// Worker failures on a real cluster (issue #6, DESIGN.md "Failure model"): while 16
// greedy streams run, a worker is killed with SIGKILL — an expert worker whose experts
// all have replicas elsewhere, one whose experts have none (the coordinator reloads
// them on the survivors), an attention worker (its requests resume on the other one),
// or a worker that is then restarted. Every stream must complete with exactly the
// tokens its prompt gives on the healthy cluster (deterministic mode: a request's
// tokens do not depend on its batch, the expert replica that served it, or which
// attention worker ran which part of it), and the recovery time is printed.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/generation.grpc.pb.h"
#include "tests/util/greedy_stream.h"
#include "tests/util/local_cluster.h"
#include "tests/util/run_binary.h"
#include "tests/util/test_model.h"

namespace yard {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStreams = 16;
constexpr int kMaxTokens = 160;

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

// Distinct short prompts.
std::vector<std::vector<int32_t>> Prompts() {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kStreams; ++i) {
    std::vector<int32_t> p = {0};
    for (int j = 0; j < 4 + i % 5; ++j) p.push_back(300 + 97 * i + 13 * j);
    prompts.push_back(p);
  }
  return prompts;
}

using Stream = testing::TimedStream;

// All prompts at once, one stream each; `during` runs on this thread meanwhile.
std::vector<Stream> RunStreams(const std::shared_ptr<grpc::Channel>& channel,
                               const std::function<void()>& during = nullptr) {
  const std::vector<std::vector<int32_t>> prompts = Prompts();
  std::vector<Stream> streams(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i) {
    clients.emplace_back([&, i] {
      auto stub = generation::Generation::NewStub(channel);
      streams[i] = testing::GreedyStream(*stub, prompts[i], kMaxTokens, std::chrono::seconds(180));
    });
  }
  if (during) during();
  for (std::thread& t : clients) t.join();
  return streams;
}

struct Worker {
  int id = 0;
  int pid = 0;
  int running = 0;
};

// Live workers of `role` from `yardctl status --json`, ascending id.
std::vector<Worker> Workers(const std::string& yardctl, const std::string& role) {
  const testing::RunResult r = testing::RunBinary(yardctl + " status --json");
  std::vector<Worker> out;
  const nlohmann::json status = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (status.is_discarded()) return out;
  for (const nlohmann::json& w : status["workers"]) {
    if (w["role"] != role || !w["healthy"].get<bool>()) continue;
    out.push_back({w["id"].get<int>(), w["pid"].get<int>(), w["running_requests"].get<int>()});
  }
  return out;
}

struct Scenario {
  std::string name;
  int attention = 1;
  int experts = 2;
  std::vector<std::string> coordinator_flags;
  // Which worker to kill: the role, and whether to start a new one after.
  std::string kill_role;
  bool restart = false;
};

class FaultE2eTest : public ::testing::Test {
 protected:
  void Run(const Scenario& scenario) {
    testing::LocalClusterOptions options;
    options.model_dir = TmpDir() + "/" + scenario.name;
    const absl::Status written = testing::WriteTestModel("tiny-v3", options.model_dir);
    ASSERT_TRUE(written.ok()) << written;
    options.tokenizer_dir = testing::kTestTokenizerDir;
    options.attention_workers = scenario.attention;
    options.expert_workers = scenario.experts;
    // A killed worker's gRPC stream and UCX endpoint fail at once; membership notices
    // within the heartbeat timeout.
    options.worker_flags = {"--deterministic", "--heartbeat-ms=50", "--expert-resend-ms=2000"};
    options.coordinator_flags = scenario.coordinator_flags;
    options.coordinator_flags.push_back("--heartbeat-timeout-ms=1000");
    options.log_dir = TmpDir() + "/logs-" + scenario.name;
    auto cluster = testing::LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    const std::string yardctl = "tools/yardctl/yardctl --addr=" + (*cluster)->address() +
                                " --token=" + options.cluster_token;
    auto channel = grpc::CreateChannel((*cluster)->address(), grpc::InsecureChannelCredentials());

    // The truth: every prompt's tokens on the healthy cluster.
    const std::vector<Stream> healthy = RunStreams(channel);
    for (size_t i = 0; i < healthy.size(); ++i) {
      ASSERT_EQ(healthy[i].error, "") << "prompt " << i << "\n" << (*cluster)->LogTails();
      ASSERT_EQ(healthy[i].tokens.size(), static_cast<size_t>(kMaxTokens));
    }

    Clock::time_point killed_at;
    int victim = 0;
    const std::vector<Stream> faulty = RunStreams(channel, [&] {
      // Kill once the streams are well under way: the victim is the busiest worker
      // of its role (for attention workers), else the one with the highest id.
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      std::vector<Worker> workers = Workers(yardctl, scenario.kill_role);
      ASSERT_FALSE(workers.empty());
      Worker target = workers.back();
      for (const Worker& w : workers) {
        if (w.running > target.running) target = w;
      }
      victim = target.id;
      ASSERT_EQ(kill(target.pid, SIGKILL), 0);
      killed_at = Clock::now();
      std::printf("[%s] killed %s worker %d (pid %d, %d requests running)\n",
                  scenario.name.c_str(), scenario.kill_role.c_str(), target.id, target.pid,
                  target.running);
      if (scenario.restart) {
        ASSERT_TRUE((*cluster)->AddWorker(scenario.kill_role == "expert").ok());
      }
    });

    // No failed or corrupted request. The recovery time is the longest gap between two
    // tokens of a stream from the kill on (the stall the failure caused), beside the
    // longest gap before the kill (a normal step, for scale).
    double recovery_ms = 0, normal_ms = 0;
    int interrupted = 0;
    auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
    for (size_t i = 0; i < faulty.size(); ++i) {
      EXPECT_EQ(faulty[i].error, "") << "prompt " << i;
      EXPECT_EQ(faulty[i].tokens, healthy[i].tokens) << "prompt " << i;
      const std::vector<Clock::time_point>& at = faulty[i].arrivals;
      auto after = std::upper_bound(at.begin(), at.end(), killed_at);
      if (after == at.begin() || after == at.end()) continue;  // not running at the kill
      ++interrupted;
      for (auto it = at.begin() + 1; it != at.end(); ++it) {
        double& longest = it < after ? normal_ms : recovery_ms;
        longest = std::max(longest, ms(*it - *(it - 1)));
      }
    }
    std::printf("[%s] %d streams, %d running across the kill of worker %d; %s; recovery "
                "time (longest gap between two tokens of a stream after the kill) %.0f ms, "
                "longest gap before it %.0f ms\n",
                scenario.name.c_str(), kStreams, interrupted, victim,
                HasFailure() ? "FAILURES" : "none failed, outputs unchanged", recovery_ms,
                normal_ms);
    EXPECT_GT(interrupted, 0) << "the kill landed after the streams ended";
    if (HasFailure()) std::printf("%s\n", (*cluster)->LogTails().c_str());

    // The cluster still serves the same outputs (and a restarted worker gets work).
    const std::vector<Stream> after = RunStreams(channel, [&] {
      if (!scenario.restart) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      std::vector<Worker> workers = Workers(yardctl, scenario.kill_role);
      ASSERT_FALSE(workers.empty());
      EXPECT_GT(workers.back().id, victim) << "the restarted worker registered anew";
      if (scenario.kill_role == "attention") {
        EXPECT_GT(workers.back().running, 0) << "the restarted attention worker gets requests";
      }
    });
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].error, "") << "prompt " << i;
      EXPECT_EQ(after[i].tokens, healthy[i].tokens) << "prompt " << i;
    }
    if (scenario.restart && scenario.kill_role == "expert") {
      // The new expert worker was given slots (a rebalance onto it).
      const nlohmann::json status =
          nlohmann::json::parse(testing::RunBinary(yardctl + " status --json").out);
      int newest = 0, slots = 0;
      for (const nlohmann::json& w : status["workers"]) {
        if (w["role"] == "expert" && w["id"].get<int>() > newest) {
          newest = w["id"].get<int>();
          slots = w["slots_used"].get<int>();
        }
      }
      EXPECT_GT(newest, victim);
      EXPECT_GT(slots, 0) << "the restarted expert worker holds no slot";
    }
  }
};

TEST_F(FaultE2eTest, ExpertWorkerWithReplicasKilled) {
  Run({.name = "expert-replicated", .attention = 1, .experts = 3,
       .coordinator_flags = {"--expert-replicas=2"}, .kill_role = "expert"});
}

TEST_F(FaultE2eTest, ExpertWorkerWithoutReplicasKilled) {
  Run({.name = "expert-single", .attention = 1, .experts = 2, .kill_role = "expert"});
}

TEST_F(FaultE2eTest, AttentionWorkerKilled) {
  Run({.name = "attention", .attention = 2, .experts = 2, .kill_role = "attention"});
}

TEST_F(FaultE2eTest, ExpertWorkerKilledAndRestarted) {
  Run({.name = "expert-restart", .attention = 1, .experts = 2, .kill_role = "expert",
       .restart = true});
}

TEST_F(FaultE2eTest, AttentionWorkerKilledAndRestarted) {
  Run({.name = "attention-restart", .attention = 2, .experts = 2, .kill_role = "attention",
       .restart = true});
}

}  // namespace
}  // namespace yard
