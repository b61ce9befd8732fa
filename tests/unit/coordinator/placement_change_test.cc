#include "coordinator/placement_change.h"

#include <vector>

#include "gtest/gtest.h"

namespace yard::coordinator {
namespace {

// Two MoE layers (1, 3), 4 experts, workers 10 and 20: the initial placement deals
// experts round-robin, slots numbered per worker in dealing order.
constexpr int64_t kExperts = 4;
const std::vector<uint32_t> kLayers = {1, 3};
const std::vector<uint32_t> kWorkers = {10, 20};

cluster::Placement Initial() {
  absl::StatusOr<cluster::Placement> p =
      PlanInitialPlacement(kLayers, kExperts, {{10, 8}, {20, 8}}, /*version=*/1);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(PlacementChangeTest, ToPhysicalPlanListsEachWorkersExpertsInOrder) {
  std::optional<PhysicalPlan> plan = ToPhysicalPlan(Initial(), kLayers, kWorkers);
  ASSERT_TRUE(plan.has_value());
  // Round-robin: worker 10 gets experts 0, 2; worker 20 gets 1, 3.
  EXPECT_EQ(plan->phy2log, (std::vector<std::vector<int32_t>>{{0, 2, 1, 3}, {0, 2, 1, 3}}));
  EXPECT_FALSE(ToPhysicalPlan(Initial(), kLayers, {10}).has_value());  // 20 not listed
  EXPECT_FALSE(ToPhysicalPlan(Initial(), {1, 2}, kWorkers).has_value());  // layer 2 absent
}

TEST(PlacementChangeTest, TheSamePlanLoadsAndReleasesNothing) {
  const cluster::Placement current = Initial();
  const PhysicalPlan same = *ToPhysicalPlan(current, kLayers, kWorkers);
  absl::StatusOr<PlacementChange> change =
      PlanPlacementChange(current, same, kExperts, {{10, 8}, {20, 8}});
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->next.version(), 2u);
  EXPECT_TRUE(change->loads.empty());
  EXPECT_TRUE(change->releases.empty());
  EXPECT_EQ(change->slots_loaded, 0);
  // Every (worker, slot) of next is one current had, holding the same expert.
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> had;
  for (const auto& l : current.layers()) {
    for (const auto& s : l.slots()) had[{s.worker_id(), s.slot()}] = s.logical_expert();
  }
  for (const auto& l : change->next.layers()) {
    for (const auto& s : l.slots()) {
      const std::pair<uint32_t, uint32_t> key(s.worker_id(), s.slot());
      ASSERT_TRUE(had.contains(key));
      EXPECT_EQ(had[key], s.logical_expert());
    }
  }
}

TEST(PlacementChangeTest, MovedAndReplicatedExpertsGetFreeSlotsAndOldOnesAreReleased) {
  const cluster::Placement current = Initial();  // each worker uses slots 0..3
  PhysicalPlan plan{kLayers, kWorkers, {}};
  // Layer 1 grows to 6 slots, 3 per worker: 10 holds {0, 2, 1}, 20 holds {0, 3, 1}, so
  // experts 0 and 1 have two replicas each.
  plan.phy2log = {{0, 2, 1, 0, 3, 1}, {0, 2, 1, 3}};
  absl::StatusOr<PlacementChange> change =
      PlanPlacementChange(current, plan, kExperts, {{10, 8}, {20, 8}});
  ASSERT_TRUE(change.ok()) << change.status();
  // Worker 10 newly holds layer 1's expert 1; worker 20 newly holds layer 1's expert 0.
  ASSERT_EQ(change->loads.size(), 2u);
  ASSERT_EQ(change->loads[10].slots_size(), 1);
  EXPECT_EQ(change->loads[10].slots(0).layer(), 1u);
  EXPECT_EQ(change->loads[10].slots(0).logical_expert(), 1u);
  EXPECT_GE(change->loads[10].slots(0).slot(), 4u);  // beside the 4 in use
  EXPECT_EQ(change->loads[10].placement_version(), 2u);
  ASSERT_EQ(change->loads[20].slots_size(), 1);
  EXPECT_EQ(change->loads[20].slots(0).logical_expert(), 0u);
  EXPECT_EQ(change->slots_loaded, 2);
  EXPECT_TRUE(change->releases.empty());  // every old slot is still named
  ASSERT_EQ(change->next.layers(0).slots_size(), 6);

  // Moving layer 3's expert 2 from worker 10 to 20 and 1 back: two loads, two releases.
  plan.phy2log = {{0, 2, 1, 3}, {0, 1, 2, 3}};
  change = PlanPlacementChange(current, plan, kExperts, {{10, 8}, {20, 8}});
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->slots_loaded, 2);
  ASSERT_EQ(change->releases.size(), 2u);
  EXPECT_EQ(change->releases[10].size(), 1u);
  EXPECT_EQ(change->releases[20].size(), 1u);
}

TEST(PlacementChangeTest, TooFewFreeSlotsIsFailedPrecondition) {
  const cluster::Placement current = Initial();  // 4 of 4 slots used on each
  PhysicalPlan plan{kLayers, kWorkers, {{0, 2, 1, 3}, {0, 1, 2, 3}}};
  EXPECT_EQ(PlanPlacementChange(current, plan, kExperts, {{10, 4}, {20, 4}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PlacementChangeTest, MalformedPlansAreInvalidArgument) {
  const cluster::Placement current = Initial();
  const std::vector<ExpertWorkerCapacity> caps = {{10, 8}, {20, 8}};
  auto code = [&](PhysicalPlan plan) {
    return PlanPlacementChange(current, plan, kExperts, caps).status().code();
  };
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code({kLayers, {}, {{0, 1, 2, 3}, {0, 1, 2, 3}}}), kBad);             // no workers
  EXPECT_EQ(code({kLayers, kWorkers, {{0, 1, 2, 3}}}), kBad);                     // a layer short
  EXPECT_EQ(code({kLayers, kWorkers, {{0, 1, 2}, {0, 1, 2, 3}}}), kBad);          // odd split
  EXPECT_EQ(code({kLayers, kWorkers, {{0, 1, 2, 4}, {0, 1, 2, 3}}}), kBad);       // expert 4
  EXPECT_EQ(code({kLayers, kWorkers, {{0, 1, 2, -1}, {0, 1, 2, 3}}}), kBad);      // expert -1
  EXPECT_EQ(code({kLayers, kWorkers, {{0, 1, 2, 2}, {0, 1, 2, 3}}}), kBad);       // 3 uncovered
  EXPECT_EQ(code({kLayers, {10, 30}, {{0, 1, 2, 3}, {0, 1, 2, 3}}}), kBad);       // 30 unknown
  EXPECT_EQ(code({{1, 1}, kWorkers, {{0, 1, 2, 3}, {0, 1, 2, 3}}}), kBad);        // layer twice
}

}  // namespace
}  // namespace yard::coordinator
