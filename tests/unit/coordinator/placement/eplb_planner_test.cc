// The hierarchical EPLB planner: balance on skewed loads, replica and slot
// invariants, both policies, stability against a current placement, bad input.
#include "coordinator/placement/eplb_planner.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace yard::coordinator::placement {
namespace {

constexpr int kLayers = 58;
constexpr int kExperts = 256;
constexpr int kSlots = 320;
constexpr int kWorkers = 40;

// Per layer: tokens ∝ 1 / rank^skew over a random ranking (each layer has its own
// hot experts).
ExpertLoad ZipfLoad(int layers, int experts, double skew, uint32_t seed) {
  std::mt19937 rng(seed);
  ExpertLoad load(layers, std::vector<double>(experts));
  std::vector<int> rank(experts);
  for (auto& layer : load) {
    std::iota(rank.begin(), rank.end(), 1);
    std::shuffle(rank.begin(), rank.end(), rng);
    for (int e = 0; e < experts; ++e) layer[e] = std::round(1e5 / std::pow(rank[e], skew));
  }
  return load;
}

// Every load scaled by a factor in [1 - amount, 1 + amount].
ExpertLoad Drift(const ExpertLoad& load, double amount, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> noise(1 - amount, 1 + amount);
  ExpertLoad drifted = load;
  for (auto& layer : drifted) {
    for (double& v : layer) v = std::round(v * noise(rng));
  }
  return drifted;
}

EplbOptions Options(int slots, int groups, int nodes, int workers) {
  EplbOptions options;
  options.num_slots = slots;
  options.num_groups = groups;
  options.num_nodes = nodes;
  options.num_workers = workers;
  return options;
}

std::vector<int> Replicas(const std::vector<int32_t>& row, int experts) {
  std::vector<int> count(experts, 0);
  for (int32_t e : row) ++count[e];
  return count;
}

// Shape, ranges, every expert placed; the plan's reported factors are the
// placement's.
void ExpectValidPlan(const EplbPlan& plan, const ExpertLoad& load, const EplbOptions& options) {
  const int experts = static_cast<int>(load[0].size());
  ASSERT_EQ(plan.phy2log.size(), load.size());
  ASSERT_EQ(plan.imbalance.size(), load.size());
  for (size_t layer = 0; layer < load.size(); ++layer) {
    const std::vector<int32_t>& row = plan.phy2log[layer];
    ASSERT_EQ(static_cast<int>(row.size()), options.num_slots) << "layer " << layer;
    for (int32_t e : row) ASSERT_TRUE(e >= 0 && e < experts) << "layer " << layer << ": " << e;
    const std::vector<int> replicas = Replicas(row, experts);
    for (int e = 0; e < experts; ++e) {
      ASSERT_GE(replicas[e], 1) << "layer " << layer << " expert " << e << " has no slot";
    }
  }
  absl::StatusOr<std::vector<double>> factors =
      LayerImbalance(load, plan.phy2log, options.num_workers);
  ASSERT_TRUE(factors.ok()) << factors.status();
  for (size_t layer = 0; layer < load.size(); ++layer) {
    EXPECT_NEAR((*factors)[layer], plan.imbalance[layer], 1e-9) << "layer " << layer;
  }
  EXPECT_NEAR(plan.mean_imbalance, MeanImbalance(*factors), 1e-12);
}

double IdentityImbalance(const ExpertLoad& load, const EplbOptions& options) {
  const Phy2Log identity = IdentityPlacement(static_cast<int>(load.size()),
                                             static_cast<int>(load[0].size()), options.num_slots);
  return MeanImbalance(*LayerImbalance(load, identity, options.num_workers));
}

TEST(ImbalanceTest, MaxOverMeanWithLoadSplitOverReplicas) {
  // Worker 0: experts 0, 1 (3 + 1); worker 1: 2, 3 (1 + 1); mean 3.
  EXPECT_NEAR((*LayerImbalance({{3, 1, 1, 1}}, {{0, 1, 2, 3}}, 2))[0], 4.0 / 3, 1e-12);
  // Experts 0 and 3 twice: worker 0 has 1.5 + 1 + 1, worker 1 has 1.5 + 0.5 + 0.5.
  EXPECT_NEAR((*LayerImbalance({{3, 1, 1, 1}}, {{0, 1, 2, 0, 3, 3}}, 2))[0], 3.5 / 3, 1e-12);
  EXPECT_DOUBLE_EQ((*LayerImbalance({{0, 0}}, {{0, 1}}, 2))[0], 1.0);
  EXPECT_DOUBLE_EQ(MeanImbalance({1.0, 2.0}), 1.5);
  EXPECT_EQ(CountChangedSlots({{1, 2, 3}}, {{1, 0, 3}}), 1);
  EXPECT_EQ(IdentityPlacement(1, 3, 5), (Phy2Log{{0, 1, 2, 0, 1}}));
}

TEST(EplbPlannerTest, GlobalPolicyBalancesZipfLoad) {
  const ExpertLoad load = ZipfLoad(kLayers, kExperts, 1.1, 1);
  // 8 groups on 40 nodes do not divide: one global pool.
  const EplbOptions options = Options(kSlots, 8, 40, kWorkers);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  EXPECT_FALSE(plan->hierarchical);
  const double before = IdentityImbalance(load, options);
  std::cout << "global: identity imbalance " << before << " -> " << plan->mean_imbalance << "\n";
  EXPECT_GT(before, 3.0);
  EXPECT_LT(plan->mean_imbalance, 1.05);
  for (double f : plan->imbalance) EXPECT_LT(f, 1.1);
  EXPECT_EQ(plan->total_slots_changed, 0);  // no current placement
}

TEST(EplbPlannerTest, HierarchicalPolicyKeepsWholeGroupsOnANode) {
  const ExpertLoad load = ZipfLoad(kLayers, kExperts, 1.1, 2);
  const int groups = 8, nodes = 4;
  const EplbOptions options = Options(kSlots, groups, nodes, kWorkers);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  EXPECT_TRUE(plan->hierarchical);
  const int slots_per_node = kSlots / nodes;
  const int experts_per_group = kExperts / groups;
  for (int layer = 0; layer < kLayers; ++layer) {
    std::vector<std::set<int>> groups_on_node(nodes);
    std::vector<int> node_of_group(groups, -1);
    for (int s = 0; s < kSlots; ++s) {
      const int node = s / slots_per_node;
      const int group = plan->phy2log[layer][s] / experts_per_group;
      groups_on_node[node].insert(group);
      if (node_of_group[group] < 0) node_of_group[group] = node;
      ASSERT_EQ(node_of_group[group], node)
          << "layer " << layer << ": group " << group << " spans nodes";
    }
    for (int node = 0; node < nodes; ++node) {
      EXPECT_EQ(groups_on_node[node].size(), static_cast<size_t>(groups / nodes));
    }
  }
  const double before = IdentityImbalance(load, options);
  std::cout << "hierarchical: identity imbalance " << before << " -> " << plan->mean_imbalance
            << "\n";
  EXPECT_LT(plan->mean_imbalance, before / 3);
}

// With balanced groups the hierarchical plan is as good as the global one.
TEST(EplbPlannerTest, HierarchicalBalancesWhenGroupsAllowIt) {
  ExpertLoad load(4, std::vector<double>(64));
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> tokens(100, 1000);
  for (auto& layer : load) {
    for (double& v : layer) v = tokens(rng);
  }
  const EplbOptions options = Options(96, 8, 4, 8);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  EXPECT_TRUE(plan->hierarchical);
  EXPECT_LT(plan->mean_imbalance, 1.1);
}

TEST(EplbPlannerTest, HotExpertsGetReplicasOnDistinctWorkers) {
  // Four experts take 100x the tokens of the others, in every layer a different four.
  ExpertLoad load(6, std::vector<double>(kExperts, 100));
  for (int layer = 0; layer < 6; ++layer) {
    for (int k = 0; k < 4; ++k) load[layer][(layer * 37 + k * 61) % kExperts] = 10000;
  }
  const EplbOptions options = Options(kSlots, 8, 40, kWorkers);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  const int per_worker = kSlots / kWorkers;
  for (int layer = 0; layer < 6; ++layer) {
    const std::vector<int> replicas = Replicas(plan->phy2log[layer], kExperts);
    for (int e = 0; e < kExperts; ++e) {
      if (load[layer][e] < 10000) continue;
      // 4 × 10000 of 65200 tokens over 320 slots: about 12 replicas each.
      EXPECT_GE(replicas[e], 10) << "layer " << layer << " hot expert " << e;
      std::set<int> workers;
      for (int s = 0; s < kSlots; ++s) {
        if (plan->phy2log[layer][s] == e) workers.insert(s / per_worker);
      }
      EXPECT_EQ(static_cast<int>(workers.size()), replicas[e])
          << "layer " << layer << ": two replicas of expert " << e << " share a worker";
    }
  }
  EXPECT_LT(plan->mean_imbalance, 1.1);
  EXPECT_GT(IdentityImbalance(load, options), 2.0);
}

// The greedy gives the split of replicas whose highest load per replica is least:
// no single move of a replica from one expert to another lowers it.
TEST(EplbPlannerTest, ReplicaCountsMinimizeTheHottestReplica) {
  const ExpertLoad load = ZipfLoad(8, 64, 1.3, 4);
  const EplbOptions options = Options(96, 1, 1, 12);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  for (int layer = 0; layer < 8; ++layer) {
    const std::vector<int> c = Replicas(plan->phy2log[layer], 64);
    double hottest = 0;
    for (int e = 0; e < 64; ++e) hottest = std::max(hottest, load[layer][e] / c[e]);
    for (int from = 0; from < 64; ++from) {
      if (c[from] < 2) continue;
      for (int to = 0; to < 64; ++to) {
        if (to == from) continue;
        std::vector<int> moved = c;
        --moved[from];
        ++moved[to];
        double after = 0;
        for (int e = 0; e < 64; ++e) after = std::max(after, load[layer][e] / moved[e]);
        ASSERT_GE(after, hottest * (1 - 1e-6)) << "layer " << layer << ": moving a replica of "
                                               << from << " to " << to << " lowers the max";
      }
    }
  }
}

TEST(EplbPlannerTest, ExactlyOneSlotPerExpertWhenSlotsEqualExperts) {
  const ExpertLoad load = ZipfLoad(3, 64, 1.0, 5);
  const EplbOptions options = Options(64, 4, 2, 8);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  for (const auto& row : plan->phy2log) {
    for (int c : Replicas(row, 64)) EXPECT_EQ(c, 1);
  }
}

TEST(EplbPlannerTest, ZeroLoadIsBalancedAndValid) {
  const ExpertLoad load(2, std::vector<double>(16, 0.0));
  const EplbOptions options = Options(24, 4, 2, 4);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  EXPECT_DOUBLE_EQ(plan->mean_imbalance, 1.0);
}

TEST(EplbPlannerTest, Deterministic) {
  const ExpertLoad load = ZipfLoad(4, kExperts, 1.1, 6);
  const EplbOptions options = Options(kSlots, 8, 4, kWorkers);
  EXPECT_EQ(PlanPlacement(load, options)->phy2log, PlanPlacement(load, options)->phy2log);
}

// Replanning the same load against its own plan changes nothing, even when the
// current placement has each worker's slots in another order.
TEST(EplbPlannerTest, SameLoadKeepsEverySlot) {
  const ExpertLoad load = ZipfLoad(kLayers, kExperts, 1.1, 7);
  for (int nodes : {4, 40}) {
    const EplbOptions options = Options(kSlots, 8, nodes, kWorkers);
    absl::StatusOr<EplbPlan> first = PlanPlacement(load, options);
    ASSERT_TRUE(first.ok()) << first.status();
    Phy2Log shuffled = first->phy2log;
    std::mt19937 rng(8);
    const int per_worker = kSlots / kWorkers;
    for (auto& row : shuffled) {
      for (int w = 0; w < kWorkers; ++w) {
        std::shuffle(row.begin() + w * per_worker, row.begin() + (w + 1) * per_worker, rng);
      }
    }
    absl::StatusOr<EplbPlan> again = PlanPlacement(load, options, &shuffled);
    ASSERT_TRUE(again.ok()) << again.status();
    ExpectValidPlan(*again, load, options);
    EXPECT_EQ(again->total_slots_changed, 0) << "nodes " << nodes;
    EXPECT_EQ(again->phy2log, shuffled) << "nodes " << nodes;
  }
}

// The rebalancer's steady state: the load drifts by ±5%; replanning against the
// previous plan moves a small fraction of what planning from scratch moves, at an
// imbalance within the tolerance of the fresh plan's. At the default tolerance the
// previous plan is mostly still good enough; at 1% the sticky plans must move some
// replicas.
TEST(EplbPlannerTest, ReplanAfterDriftMovesFewSlots) {
  const ExpertLoad load = ZipfLoad(kLayers, kExperts, 1.1, 9);
  const ExpertLoad drifted = Drift(load, 0.05, 10);
  for (double tolerance : {0.05, 0.01}) {
    for (int nodes : {40, 4}) {
      EplbOptions options = Options(kSlots, 8, nodes, kWorkers);
      options.stickiness_tolerance = tolerance;
      absl::StatusOr<EplbPlan> previous = PlanPlacement(load, options);
      ASSERT_TRUE(previous.ok()) << previous.status();
      absl::StatusOr<EplbPlan> scratch = PlanPlacement(drifted, options);
      ASSERT_TRUE(scratch.ok()) << scratch.status();
      absl::StatusOr<EplbPlan> sticky = PlanPlacement(drifted, options, &previous->phy2log);
      ASSERT_TRUE(sticky.ok()) << sticky.status();
      ExpectValidPlan(*sticky, drifted, options);

      const int64_t scratch_changed = CountChangedSlots(scratch->phy2log, previous->phy2log);
      EXPECT_EQ(sticky->total_slots_changed, CountChangedSlots(sticky->phy2log, previous->phy2log));
      std::cout << (nodes == 4 ? "hierarchical" : "global") << ", tolerance " << tolerance
                << ", replan after ±5% drift: slots changed sticky " << sticky->total_slots_changed
                << " vs scratch " << scratch_changed << " of " << kLayers * kSlots
                << "; imbalance sticky " << sticky->mean_imbalance << " vs scratch "
                << scratch->mean_imbalance << " (previous plan on the new load "
                << MeanImbalance(*LayerImbalance(drifted, previous->phy2log, kWorkers)) << ")\n";
      EXPECT_LT(sticky->total_slots_changed, scratch_changed / 4);
      EXPECT_LE(sticky->mean_imbalance, scratch->mean_imbalance * (1 + tolerance) + 1e-9);
      for (int layer = 0; layer < kLayers; ++layer) {
        EXPECT_LE(sticky->imbalance[layer], scratch->imbalance[layer] * (1 + tolerance) + 1e-9)
            << "layer " << layer;
      }
      if (tolerance < 0.05 && nodes == 40) {
        // The previous plan is out of tolerance here: the sticky path did the work.
        EXPECT_GT(sticky->total_slots_changed, 0);
      }
    }
  }
}

// A large drift still keeps most slots, while the swaps bring each layer back
// within the tolerance.
TEST(EplbPlannerTest, ReplanAfterLargeDriftRestoresBalance) {
  const ExpertLoad load = ZipfLoad(kLayers, kExperts, 1.1, 11);
  const ExpertLoad drifted = Drift(load, 0.3, 12);
  const EplbOptions options = Options(kSlots, 8, 40, kWorkers);
  absl::StatusOr<EplbPlan> previous = PlanPlacement(load, options);
  absl::StatusOr<EplbPlan> scratch = PlanPlacement(drifted, options);
  absl::StatusOr<EplbPlan> sticky = PlanPlacement(drifted, options, &previous->phy2log);
  ASSERT_TRUE(sticky.ok()) << sticky.status();
  ExpectValidPlan(*sticky, drifted, options);
  const double stale = MeanImbalance(*LayerImbalance(drifted, previous->phy2log, kWorkers));
  EXPECT_GT(stale, scratch->mean_imbalance * 1.05);
  EXPECT_LE(sticky->mean_imbalance, scratch->mean_imbalance * 1.05 + 1e-9);
  EXPECT_LT(sticky->total_slots_changed,
            CountChangedSlots(scratch->phy2log, previous->phy2log) / 4);
}

// With no tolerance a layer keeps the current placement only where that costs
// nothing; otherwise it takes the fresh plan's balance.
TEST(EplbPlannerTest, ZeroToleranceNeverLosesBalance) {
  const ExpertLoad load = ZipfLoad(16, kExperts, 1.1, 13);
  const ExpertLoad drifted = Drift(load, 0.1, 14);
  EplbOptions options = Options(kSlots, 8, 4, kWorkers);
  options.stickiness_tolerance = 0;
  absl::StatusOr<EplbPlan> previous = PlanPlacement(load, options);
  absl::StatusOr<EplbPlan> scratch = PlanPlacement(drifted, options);
  absl::StatusOr<EplbPlan> replanned = PlanPlacement(drifted, options, &previous->phy2log);
  ASSERT_TRUE(replanned.ok()) << replanned.status();
  ExpectValidPlan(*replanned, drifted, options);
  for (int layer = 0; layer < 16; ++layer) {
    EXPECT_LE(replanned->imbalance[layer], scratch->imbalance[layer] + 1e-9) << layer;
  }
}

// A current placement made under the global policy, replanned hierarchically: the
// groups must gather on nodes, and the result is still a valid hierarchical plan.
TEST(EplbPlannerTest, SwitchingPolicyAgainstCurrentStaysValid) {
  const ExpertLoad load = ZipfLoad(8, kExperts, 1.1, 15);
  absl::StatusOr<EplbPlan> global = PlanPlacement(load, Options(kSlots, 8, 40, kWorkers));
  ASSERT_TRUE(global.ok());
  const EplbOptions options = Options(kSlots, 8, 4, kWorkers);
  absl::StatusOr<EplbPlan> plan = PlanPlacement(load, options, &global->phy2log);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectValidPlan(*plan, load, options);
  absl::StatusOr<EplbPlan> fresh = PlanPlacement(load, options);
  for (int layer = 0; layer < 8; ++layer) {
    EXPECT_LE(plan->imbalance[layer], fresh->imbalance[layer] * 1.05 + 1e-9);
  }
}

TEST(EplbPlannerTest, RejectsBadInput) {
  const ExpertLoad load = ZipfLoad(2, 16, 1.0, 16);
  auto code = [](const ExpertLoad& l, const EplbOptions& o, const Phy2Log* current = nullptr) {
    return PlanPlacement(l, o, current).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(load, Options(24, 4, 2, 4)), absl::StatusCode::kOk);
  EXPECT_EQ(code(load, Options(15, 4, 1, 5)), kInvalid);  // R < experts
  EXPECT_EQ(code(load, Options(24, 4, 2, 5)), kInvalid);  // R % W
  EXPECT_EQ(code(load, Options(24, 4, 3, 4)), kInvalid);  // W % N
  EXPECT_EQ(code(load, Options(24, 3, 1, 4)), kInvalid);  // experts % G
  EXPECT_EQ(code(load, Options(24, 0, 1, 4)), kInvalid);
  EXPECT_EQ(code(load, Options(24, 4, 0, 4)), kInvalid);
  EXPECT_EQ(code(load, Options(24, 4, 1, 0)), kInvalid);
  EXPECT_EQ(code(load, Options(-8, 4, 1, 4)), kInvalid);
  EXPECT_EQ(code(load, Options(1 << 30, 4, 1, 4)), kInvalid);  // absurd R
  EplbOptions negative_tolerance = Options(24, 4, 2, 4);
  negative_tolerance.stickiness_tolerance = -0.1;
  EXPECT_EQ(code(load, negative_tolerance), kInvalid);

  EXPECT_EQ(code({}, Options(24, 4, 2, 4)), kInvalid);
  EXPECT_EQ(code({{}}, Options(24, 4, 2, 4)), kInvalid);
  ExpertLoad ragged = load;
  ragged[1].pop_back();
  EXPECT_EQ(code(ragged, Options(24, 4, 2, 4)), kInvalid);
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    ExpertLoad l = load;
    l[1][3] = bad;
    absl::Status status = PlanPlacement(l, Options(24, 4, 2, 4)).status();
    EXPECT_EQ(status.code(), kInvalid) << bad;
    EXPECT_NE(status.message().find("layer 1 expert 3"), std::string::npos) << status;
  }

  const EplbOptions options = Options(24, 4, 2, 4);
  const Phy2Log good = PlanPlacement(load, options)->phy2log;
  EXPECT_EQ(code(load, options, &good), absl::StatusCode::kOk);
  Phy2Log wrong_layers = good;
  wrong_layers.pop_back();
  EXPECT_EQ(code(load, options, &wrong_layers), kInvalid);
  Phy2Log short_row = good;
  short_row[0].pop_back();
  EXPECT_EQ(code(load, options, &short_row), kInvalid);
  Phy2Log out_of_range = good;
  out_of_range[1][5] = 16;
  EXPECT_EQ(code(load, options, &out_of_range), kInvalid);
  out_of_range[1][5] = -1;
  EXPECT_EQ(code(load, options, &out_of_range), kInvalid);
  Phy2Log missing_expert = good;
  for (int32_t& e : missing_expert[0]) {
    if (e == 7) e = 8;
  }
  absl::Status status = PlanPlacement(load, options, &missing_expert).status();
  EXPECT_EQ(status.code(), kInvalid);
  EXPECT_NE(status.message().find("no slot for expert 7"), std::string::npos) << status;

  EXPECT_EQ(LayerImbalance(load, good, 5).status().code(), kInvalid);  // 24 % 5
  EXPECT_EQ(LayerImbalance(load, good, 0).status().code(), kInvalid);
  EXPECT_EQ(LayerImbalance(load, short_row, 4).status().code(), kInvalid);
}

}  // namespace
}  // namespace yard::coordinator::placement
