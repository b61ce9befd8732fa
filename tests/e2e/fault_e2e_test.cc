// Worker failures on a real cluster (issue #6, DESIGN.md "Failure model"): while 16
// streams run (8 greedy, 8 sampled with seeds), a worker is killed with SIGKILL — an expert worker whose experts
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
#include <set>
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
      // Every other stream samples (seeded): a resumed one must continue its random
      // stream exactly where it broke.
      const float temperature = i % 2 == 1 ? 0.8f : 0.0f;
      streams[i] = testing::GreedyStream(*stub, prompts[i], kMaxTokens, std::chrono::seconds(180),
                                         temperature, /*seed=*/1000 + i);
    });
  }
  if (during) during();
  for (std::thread& t : clients) t.join();
  return streams;
}

// `yardctl status --json` as parsed JSON (discarded on a parse error).
nlohmann::json Status(const std::string& yardctl) {
  return nlohmann::json::parse(testing::RunBinary(yardctl + " status --json").out, nullptr,
                               /*allow_exceptions=*/false);
}

struct Worker {
  int id = 0;
  int pid = 0;
  int running = 0;
};

// Live workers of `role` from `yardctl status --json`, ascending id.
std::vector<Worker> Workers(const std::string& yardctl, const std::string& role) {
  std::vector<Worker> out;
  const nlohmann::json status = Status(yardctl);
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
  // Instead of killing it, stop the worker (SIGSTOP) for this long, then let it go on:
  // a silent worker that the coordinator declares dead and that then comes back.
  std::chrono::milliseconds pause{0};
};

// The cluster of a scenario: tiny-v3, deterministic, fast heartbeats.
testing::LocalClusterOptions ClusterOptions(const Scenario& scenario) {
  testing::LocalClusterOptions options;
  options.model_dir = TmpDir() + "/" + scenario.name;
  const absl::Status written = testing::WriteTestModel("tiny-v3", options.model_dir);
  EXPECT_TRUE(written.ok()) << written;
  options.tokenizer_dir = testing::kTestTokenizerDir;
  options.attention_workers = scenario.attention;
  options.expert_workers = scenario.experts;
  // A killed worker's gRPC stream and UCX endpoint fail at once; membership notices
  // within the heartbeat timeout.
  options.worker_flags = {"--deterministic", "--heartbeat-ms=50", "--expert-resend-ms=2000"};
  options.coordinator_flags = scenario.coordinator_flags;
  options.coordinator_flags.push_back("--heartbeat-timeout-ms=1000");
  options.log_dir = TmpDir() + "/logs-" + scenario.name;
  return options;
}

class FaultE2eTest : public ::testing::Test {
 protected:
  // Starts the scenario's cluster and records every prompt's tokens on it while
  // healthy (the truth the faulty runs are compared with).
  void StartHealthy(const Scenario& scenario) {
    options_ = ClusterOptions(scenario);
    auto cluster = testing::LocalCluster::Start(options_);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    yardctl_ = "tools/yardctl/yardctl --addr=" + cluster_->address() +
               " --token=" + options_.cluster_token;
    channel_ = grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials());
    healthy_ = RunStreams(channel_);
    for (size_t i = 0; i < healthy_.size(); ++i) {
      ASSERT_EQ(healthy_[i].error, "") << "prompt " << i << "\n" << cluster_->LogTails();
      ASSERT_EQ(healthy_[i].tokens.size(), static_cast<size_t>(kMaxTokens));
    }
  }

  void Run(const Scenario& scenario) {
    StartHealthy(scenario);
    if (HasFatalFailure()) return;

    Clock::time_point killed_at;
    Clock::time_point resumed_at;  // SIGCONT, for a paused worker
    int victim = 0;
    const std::vector<Stream> faulty = RunStreams(channel_, [&] {
      // Kill once the streams are well under way: the victim is the busiest worker
      // of its role (for attention workers), else the one with the highest id.
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      std::vector<Worker> workers = Workers(yardctl_, scenario.kill_role);
      ASSERT_FALSE(workers.empty());
      Worker target = workers.back();
      for (const Worker& w : workers) {
        if (w.running > target.running) target = w;
      }
      victim = target.id;
      const bool pause = scenario.pause.count() > 0;
      ASSERT_EQ(kill(target.pid, pause ? SIGSTOP : SIGKILL), 0);
      killed_at = Clock::now();
      std::printf("[%s] %s %s worker %d (pid %d, %d requests running)\n", scenario.name.c_str(),
                  pause ? "stopped" : "killed", scenario.kill_role.c_str(), target.id,
                  target.pid, target.running);
      if (pause) {
        std::this_thread::sleep_for(scenario.pause);
        ASSERT_EQ(kill(target.pid, SIGCONT), 0);
        resumed_at = Clock::now();
      }
      if (scenario.restart) {
        ASSERT_TRUE(cluster_->AddWorker(scenario.kill_role == "expert").ok());
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
      EXPECT_EQ(faulty[i].tokens, healthy_[i].tokens) << "prompt " << i;
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
    if (scenario.pause.count() > 0) {
      // The streams went on without waiting for the silent worker to come back.
      EXPECT_LT(recovery_ms, ms(scenario.pause) - 1000)
          << "the streams waited for the stopped worker";
    }
    if (HasFailure()) std::printf("%s\n", cluster_->LogTails().c_str());

    // Health says it serves again, though one worker fewer than started may be alive.
    EXPECT_TRUE(cluster_->Serving(std::chrono::seconds(10))) << "Health does not report serving";

    if (scenario.pause.count() > 0 && scenario.kill_role == "attention") {
      // The worker came back under its id (registered again, at a new data-plane
      // address) before the streams below, so that they are routed to it too.
      bool back = false;
      for (int i = 0; i < 200 && !back; ++i) {
        for (const Worker& w : Workers(yardctl_, "attention")) back |= w.id == victim;
        if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      std::printf("[%s] worker %d registered again %.0f ms after SIGCONT\n",
                  scenario.name.c_str(), victim, ms(Clock::now() - resumed_at));
      EXPECT_TRUE(back) << "the returning worker " << victim << " did not register again\n"
                        << cluster_->LogTails();
    }
    if (scenario.pause.count() > 0 && scenario.kill_role == "expert") {
      // The worker came back under its id, freed what it held (its experts had been
      // reloaded elsewhere) and is given slots again by a rebalance onto it, before the
      // streams below, so that they dispatch to it.
      int slots = 0;
      for (int i = 0; i < 200 && slots == 0; ++i) {
        const nlohmann::json status = Status(yardctl_);  // outlives the loop over it
        for (const nlohmann::json& w : status["workers"]) {
          if (w["id"].get<int>() == victim && w["healthy"].get<bool>()) {
            slots = w["slots_used"].get<int>();
          }
        }
        if (slots == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_GT(slots, 0) << "the returning worker " << victim << " holds no slot\n"
                          << Status(yardctl_).dump(1) << "\n"
                          << cluster_->LogTails();
    }

    // The cluster still serves the same outputs (and a restarted worker gets work).
    const bool returned = scenario.pause.count() > 0;
    const std::vector<Stream> after = RunStreams(channel_, [&] {
      if (!scenario.restart && !(returned && scenario.kill_role == "attention")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      std::vector<Worker> workers = Workers(yardctl_, scenario.kill_role);
      ASSERT_FALSE(workers.empty());
      if (returned) {
        // The returning attention worker, under its id, is routed to again.
        auto back = std::find_if(workers.begin(), workers.end(),
                                 [&](const Worker& w) { return w.id == victim; });
        ASSERT_NE(back, workers.end()) << "the returning worker is not live";
        EXPECT_GT(back->running, 0) << "the returning attention worker gets no requests";
        return;
      }
      EXPECT_GT(workers.back().id, victim) << "the restarted worker registered anew";
      if (scenario.kill_role == "attention") {
        EXPECT_GT(workers.back().running, 0) << "the restarted attention worker gets requests";
      }
    });
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].error, "") << "prompt " << i;
      EXPECT_EQ(after[i].tokens, healthy_[i].tokens) << "prompt " << i;
    }
    if (scenario.restart && scenario.kill_role == "expert") {
      // The new expert worker was given slots (a rebalance onto it).
      const nlohmann::json status = Status(yardctl_);
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

  testing::LocalClusterOptions options_;
  std::unique_ptr<testing::LocalCluster> cluster_;
  std::string yardctl_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<Stream> healthy_;
};

// The coordinator is SIGKILLed under 16 streams and started again on its port. Streams
// in flight end UNAVAILABLE (their connection was to the dead process; documented),
// having received only correct tokens; the workers register again under their ids,
// the expert workers' slots are taken over as the placement (nothing reloaded), and
// new requests give the same tokens as before.
TEST_F(FaultE2eTest, CoordinatorRestarted) {
  const Scenario scenario{.name = "coordinator-restart", .attention = 1, .experts = 2};
  StartHealthy(scenario);
  if (HasFatalFailure()) return;
  const nlohmann::json before = Status(yardctl_);
  ASSERT_FALSE(before.is_discarded());
  std::set<int> ids_before;
  for (const nlohmann::json& w : before["workers"]) ids_before.insert(w["id"].get<int>());

  Clock::time_point restarted_at;
  const std::vector<Stream> cut = RunStreams(channel_, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    ASSERT_TRUE(cluster_->KillCoordinator().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const absl::Status restarted = cluster_->RestartCoordinator();
    ASSERT_TRUE(restarted.ok()) << restarted;
    restarted_at = Clock::now();
  });
  int unavailable = 0;
  for (size_t i = 0; i < cut.size(); ++i) {
    // What arrived before the break is right.
    ASSERT_LE(cut[i].tokens.size(), healthy_[i].tokens.size());
    EXPECT_TRUE(std::equal(cut[i].tokens.begin(), cut[i].tokens.end(), healthy_[i].tokens.begin()))
        << "prompt " << i;
    if (cut[i].error.empty()) continue;
    EXPECT_EQ(cut[i].error.rfind(std::to_string(grpc::StatusCode::UNAVAILABLE) + ":", 0), 0u)
        << "prompt " << i << ": " << cut[i].error;
    ++unavailable;
  }
  EXPECT_GT(unavailable, 0) << "the kill landed after the streams ended";

  // Serving again once the workers have found the new coordinator.
  ASSERT_TRUE(cluster_->Serving(std::chrono::seconds(60))) << cluster_->LogTails();
  auto fresh = cluster_->Channel();
  const double back_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - restarted_at).count();
  const nlohmann::json after_restart = Status(yardctl_);
  std::set<int> ids_after;
  for (const nlohmann::json& w : after_restart["workers"]) ids_after.insert(w["id"].get<int>());
  EXPECT_EQ(ids_after, ids_before) << "the workers registered again under their ids";
  EXPECT_GT(after_restart["placement_version"].get<int>(), before["placement_version"].get<int>())
      << "placement versions go on above the old coordinator's";
  const std::string log = testing::RunBinary("cat " + options_.log_dir + "/coordinator_1.log").out;
  EXPECT_NE(log.find("taken over from the expert workers' slots"), std::string::npos) << log;

  const std::vector<Stream> after = RunStreams(fresh);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].error, "") << "prompt " << i;
    EXPECT_EQ(after[i].tokens, healthy_[i].tokens) << "prompt " << i;
  }
  std::printf("[%s] %d of %d streams ended UNAVAILABLE at the kill; serving again %.0f ms "
              "after the new coordinator listened; workers kept ids, placement v%d → v%d "
              "taken over; %s\n",
              scenario.name.c_str(), unavailable, kStreams, back_ms,
              before["placement_version"].get<int>(),
              after_restart["placement_version"].get<int>(),
              HasFailure() ? "FAILURES" : "new requests' outputs unchanged");
  if (HasFailure()) std::printf("%s\n", cluster_->LogTails().c_str());
}

// A silent expert worker (SIGSTOP beyond the heartbeat timeout): its rows wait for
// the coordinator to reload its experts on the other worker; then it comes back,
// registers again under its id at a new data-plane address (UcxDataPlane::Reset), is
// given slots by a rebalance, and serves the next streams.
TEST_F(FaultE2eTest, ExpertWorkerSilentThenBack) {
  Run({.name = "expert-silent", .attention = 1, .experts = 2, .kill_role = "expert",
       .pause = std::chrono::milliseconds(5000)});
}

// A silent attention worker (SIGSTOP beyond the heartbeat timeout): once the
// coordinator declares it dead it cancels the worker's streams and their requests
// resume on the other worker; when it comes back it registers again under its id and
// is routed to again.
TEST_F(FaultE2eTest, AttentionWorkerSilentThenBack) {
  Run({.name = "attention-silent", .attention = 2, .experts = 2, .kill_role = "attention",
       .pause = std::chrono::milliseconds(5000)});
}

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
