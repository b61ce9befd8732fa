#include "attention_worker/expert_load.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace yard::attention_worker {
namespace {

// Layers 0 dense, 1 and 2 MoE; 3 experts. Layer 1: expert 0 on two slots.
const std::vector<bool> kMoeLayers = {false, true, true};
constexpr int64_t kExperts = 3;

cluster::Placement Placement(uint64_t version) {
  cluster::Placement p;
  p.set_version(version);
  for (uint32_t layer : {1u, 2u}) {
    cluster::LayerPlacement* l = p.add_layers();
    l->set_layer(layer);
    for (uint32_t e = 0; e < kExperts; ++e) {
      cluster::Slot* s = l->add_slots();
      s->set_worker_id(7);
      s->set_slot(layer * 10 + e);
      s->set_logical_expert(e);
    }
    if (layer == 1) {
      cluster::Slot* s = l->add_slots();
      s->set_worker_id(8);
      s->set_slot(0);
      s->set_logical_expert(0);
    }
  }
  return p;
}

ExpertRouting Routing(uint64_t version) {
  absl::StatusOr<ExpertRouting> r = ExpertRouting::FromPlacement(Placement(version), kMoeLayers, kExperts);
  EXPECT_TRUE(r.ok()) << r.status();
  return *std::move(r);
}

std::vector<uint64_t> Values(const google::protobuf::RepeatedField<uint64_t>& f) {
  return {f.begin(), f.end()};
}

TEST(ExpertLoadCounterTest, CountsPerExpertAndPerPhysicalSlotThenStartsAfresh) {
  ExpertLoadCounter counter(kExperts);
  const ExpertRouting routing = Routing(3);
  counter.Count(1, 0, routing.replicas(1, 0)[0]);  // before Install: not counted
  EXPECT_TRUE(counter.Take(5).empty());
  counter.Install(routing);
  EXPECT_TRUE(counter.Take(5).empty()) << "nothing routed: no report";
  for (int i = 0; i < 3; ++i) counter.Count(1, 0, routing.replicas(1, 0)[i % 2]);
  counter.Count(1, 2, routing.replicas(1, 2)[0]);
  counter.Count(2, 1, routing.replicas(2, 1)[0]);

  std::vector<cluster::LoadReport> reports = counter.Take(5);
  ASSERT_EQ(reports.size(), 1u);
  const cluster::LoadReport& r = reports[0];
  EXPECT_EQ(r.worker_id(), 5u);
  EXPECT_EQ(r.placement_version(), 3u);
  EXPECT_GE(r.window_ms(), 0);
  ASSERT_EQ(r.layers_size(), 2);
  EXPECT_EQ(r.layers(0).layer(), 1u);
  EXPECT_EQ(Values(r.layers(0).tokens_per_expert()), (std::vector<uint64_t>{3, 0, 1}));
  // Slots in placement order: e0 (worker 7), e1, e2, e0 (worker 8).
  EXPECT_EQ(Values(r.layers(0).tokens_per_slot()), (std::vector<uint64_t>{2, 0, 1, 1}));
  EXPECT_EQ(r.layers(1).layer(), 2u);
  EXPECT_EQ(Values(r.layers(1).tokens_per_expert()), (std::vector<uint64_t>{0, 1, 0}));
  EXPECT_EQ(Values(r.layers(1).tokens_per_slot()), (std::vector<uint64_t>{0, 1, 0}));
  EXPECT_TRUE(counter.Take(5).empty()) << "counts were taken";
}

TEST(ExpertLoadCounterTest, ANewPlacementKeepsTheOldVersionsCountsUntilTaken) {
  ExpertLoadCounter counter(kExperts);
  const ExpertRouting v1 = Routing(1);
  const ExpertRouting v2 = Routing(2);
  counter.Install(v1);
  counter.Count(1, 1, v1.replicas(1, 1)[0]);
  counter.Install(v2);
  counter.Count(2, 2, v2.replicas(2, 2)[0]);
  std::vector<cluster::LoadReport> reports = counter.Take(1);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].placement_version(), 1u);
  EXPECT_EQ(reports[0].layers(0).tokens_per_expert(1), 1u);
  EXPECT_EQ(reports[1].placement_version(), 2u);
  EXPECT_EQ(reports[1].layers(1).tokens_per_expert(2), 1u);
  counter.Count(1, 0, v2.replicas(1, 0)[1]);
  reports = counter.Take(1);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].placement_version(), 2u);
  EXPECT_EQ(reports[0].layers(0).tokens_per_slot(3), 1u);
}

// Take on another thread while the engine thread counts: no count is lost or doubled.
TEST(ExpertLoadCounterTest, ConcurrentTakesLoseNothing) {
  ExpertLoadCounter counter(kExperts);
  const ExpertRouting routing = Routing(1);
  counter.Install(routing);
  constexpr int kRows = 200000;
  std::thread engine([&] {
    for (int i = 0; i < kRows; ++i) counter.Count(2, i % 3, routing.replicas(2, i % 3)[0]);
  });
  uint64_t total = 0;
  auto drain = [&] {
    for (const cluster::LoadReport& r : counter.Take(1)) {
      for (const cluster::LayerLoad& l : r.layers()) {
        for (uint64_t n : l.tokens_per_expert()) total += n;
      }
    }
  };
  for (int i = 0; i < 100; ++i) drain();
  engine.join();
  drain();
  EXPECT_EQ(total, static_cast<uint64_t>(kRows));
}

TEST(ExpertLoadCounterTest, ZeroExpertsCountsNothing) {
  ExpertLoadCounter counter(0);
  const ExpertRouting routing = Routing(1);
  counter.Install(routing);
  counter.Count(1, 0, routing.replicas(1, 0)[0]);
  EXPECT_TRUE(counter.Take(1).empty());
}

}  // namespace
}  // namespace yard::attention_worker
