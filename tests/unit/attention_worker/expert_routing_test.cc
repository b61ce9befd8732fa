#include "attention_worker/expert_routing.h"

#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace yard::attention_worker {
namespace {

// Layers 0 and 2 dense, 1 and 3 MoE; 3 experts.
const std::vector<bool> kMoeLayers = {false, true, false, true};
constexpr int64_t kExperts = 3;

void AddSlot(cluster::LayerPlacement* layer, uint32_t worker, uint32_t slot, uint32_t expert) {
  cluster::Slot* s = layer->add_slots();
  s->set_worker_id(worker);
  s->set_slot(slot);
  s->set_logical_expert(expert);
}

// Every expert of layers 1 and 3 once, on workers 30, 10, 20 (unsorted, repeated).
cluster::Placement Complete() {
  cluster::Placement p;
  p.set_version(7);
  cluster::LayerPlacement* l1 = p.add_layers();
  l1->set_layer(1);
  AddSlot(l1, 30, 0, 0);
  AddSlot(l1, 10, 0, 1);
  AddSlot(l1, 30, 1, 2);
  cluster::LayerPlacement* l3 = p.add_layers();
  l3->set_layer(3);
  AddSlot(l3, 20, 0, 2);
  AddSlot(l3, 10, 1, 1);
  AddSlot(l3, 20, 1, 0);
  return p;
}

bool Equal(const Replica& a, const Replica& b) { return a.worker == b.worker && a.slot == b.slot; }

TEST(ExpertRoutingTest, ReplicasPerLayerAndExpertAndSortedUniqueWorkers) {
  cluster::Placement p = Complete();
  // Two more replicas of layer 1's expert 2, in placement order.
  AddSlot(p.mutable_layers(0), 20, 5, 2);
  AddSlot(p.mutable_layers(0), 10, 6, 2);
  absl::StatusOr<ExpertRouting> routing = ExpertRouting::FromPlacement(p, kMoeLayers, kExperts);
  ASSERT_TRUE(routing.ok()) << routing.status();
  EXPECT_EQ(routing->version(), 7u);

  ASSERT_EQ(routing->replicas(1, 0).size(), 1u);
  EXPECT_TRUE(Equal(routing->replicas(1, 0)[0], {30, 0}));
  ASSERT_EQ(routing->replicas(1, 1).size(), 1u);
  EXPECT_TRUE(Equal(routing->replicas(1, 1)[0], {10, 0}));
  const std::vector<Replica>& e2 = routing->replicas(1, 2);
  ASSERT_EQ(e2.size(), 3u);
  EXPECT_TRUE(Equal(e2[0], {30, 1}));
  EXPECT_TRUE(Equal(e2[1], {20, 5}));
  EXPECT_TRUE(Equal(e2[2], {10, 6}));
  ASSERT_EQ(routing->replicas(3, 0).size(), 1u);
  EXPECT_TRUE(Equal(routing->replicas(3, 0)[0], {20, 1}));
  ASSERT_EQ(routing->replicas(3, 1).size(), 1u);
  EXPECT_TRUE(Equal(routing->replicas(3, 1)[0], {10, 1}));
  ASSERT_EQ(routing->replicas(3, 2).size(), 1u);
  EXPECT_TRUE(Equal(routing->replicas(3, 2)[0], {20, 0}));

  EXPECT_EQ(routing->workers(), (std::vector<uint32_t>{10, 20, 30}));
}

TEST(ExpertRoutingTest, ModelWithoutMoeLayersNeedsNoSlots) {
  cluster::Placement p;
  p.set_version(1);
  absl::StatusOr<ExpertRouting> routing =
      ExpertRouting::FromPlacement(p, {false, false}, kExperts);
  ASSERT_TRUE(routing.ok()) << routing.status();
  EXPECT_TRUE(routing->workers().empty());
}

TEST(ExpertRoutingTest, LayerThatIsNotMoeIsInvalidArgument) {
  cluster::Placement p = Complete();
  cluster::LayerPlacement* dense = p.add_layers();
  dense->set_layer(2);
  AddSlot(dense, 10, 9, 0);
  EXPECT_EQ(ExpertRouting::FromPlacement(p, kMoeLayers, kExperts).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ExpertRoutingTest, LayerBeyondTheModelIsInvalidArgument) {
  for (uint32_t layer : {4u, 1000u, 0xffffffffu}) {
    cluster::Placement p = Complete();
    cluster::LayerPlacement* beyond = p.add_layers();
    beyond->set_layer(layer);
    AddSlot(beyond, 10, 9, 0);
    EXPECT_EQ(ExpertRouting::FromPlacement(p, kMoeLayers, kExperts).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "layer " << layer;
  }
}

TEST(ExpertRoutingTest, ExpertIdOutOfRangeIsInvalidArgument) {
  cluster::Placement p = Complete();
  AddSlot(p.mutable_layers(1), 10, 9, kExperts);
  absl::StatusOr<ExpertRouting> routing = ExpertRouting::FromPlacement(p, kMoeLayers, kExperts);
  EXPECT_EQ(routing.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExpertRoutingTest, MoeExpertWithoutAReplicaIsInvalidArgument) {
  // Layer 3 loses its expert 1.
  cluster::Placement p = Complete();
  p.mutable_layers(1)->mutable_slots()->DeleteSubrange(1, 1);
  EXPECT_EQ(ExpertRouting::FromPlacement(p, kMoeLayers, kExperts).status().code(),
            absl::StatusCode::kInvalidArgument);

  // A MoE layer missing altogether.
  cluster::Placement no_layer3 = Complete();
  no_layer3.mutable_layers()->DeleteSubrange(1, 1);
  EXPECT_EQ(ExpertRouting::FromPlacement(no_layer3, kMoeLayers, kExperts).status().code(),
            absl::StatusCode::kInvalidArgument);

  // An empty placement for a MoE model.
  EXPECT_EQ(ExpertRouting::FromPlacement(cluster::Placement(), kMoeLayers, kExperts).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace yard::attention_worker
