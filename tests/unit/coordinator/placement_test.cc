#include <map>
#include <optional>
#include <vector>

#include "boost/asio/io_context.hpp"
#include "coordinator/placement_controller.h"
#include "coordinator/placement_plan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/presets.h"

namespace yard::coordinator {
namespace {

using ::testing::ElementsAre;

TEST(MoeLayersTest, SkipsTheFirstDenseLayers) {
  absl::StatusOr<model::ModelConfig> config = model::PresetConfig("tiny-v3");
  ASSERT_TRUE(config.ok());
  ASSERT_EQ(config->first_k_dense_replace, 1);
  EXPECT_THAT(MoeLayers(*config), ElementsAre(1u, 2u));
  config->num_hidden_layers = 7;
  config->moe_layer_freq = 2;  // HF: layer % moe_layer_freq == 0
  EXPECT_THAT(MoeLayers(*config), ElementsAre(2u, 4u, 6u));
  config->n_routed_experts = 0;
  EXPECT_TRUE(MoeLayers(*config).empty());
}

TEST(PlanInitialPlacementTest, RoundRobinWithSlotsNumberedPerWorker) {
  absl::StatusOr<cluster::Placement> plan =
      PlanInitialPlacement({1, 2}, 3, {{5, 10}, {8, 10}}, /*version=*/1);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->version(), 1u);
  ASSERT_EQ(plan->layers_size(), 2);
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>> got;  // layer, worker, slot, e
  for (const auto& layer : plan->layers()) {
    for (const auto& slot : layer.slots()) {
      got.emplace_back(layer.layer(), slot.worker_id(), slot.slot(), slot.logical_expert());
    }
  }
  EXPECT_THAT(got, ElementsAre(std::make_tuple(1u, 5u, 0u, 0u), std::make_tuple(1u, 8u, 0u, 1u),
                               std::make_tuple(1u, 5u, 1u, 2u), std::make_tuple(2u, 8u, 1u, 0u),
                               std::make_tuple(2u, 5u, 2u, 1u), std::make_tuple(2u, 8u, 2u, 2u)));
}

TEST(PlanInitialPlacementTest, FullWorkersAreSkipped) {
  absl::StatusOr<cluster::Placement> plan = PlanInitialPlacement({0}, 4, {{1, 1}, {2, 3}}, 1);
  ASSERT_TRUE(plan.ok());
  std::map<uint32_t, int> per_worker;
  for (const auto& slot : plan->layers(0).slots()) ++per_worker[slot.worker_id()];
  EXPECT_EQ(per_worker[1], 1);
  EXPECT_EQ(per_worker[2], 3);
  EXPECT_EQ(plan->layers(0).slots(3).slot(), 2u);
}

TEST(PlanInitialPlacementTest, ShortCapacityIsFailedPrecondition) {
  absl::StatusOr<cluster::Placement> plan = PlanInitialPlacement({1, 2}, 16, {{1, 10}, {2, 21}}, 1);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("need 32 slots"), absl::string_view::npos)
      << plan.status();
  EXPECT_EQ(PlanInitialPlacement({1}, 2, {}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LoadRequestForTest, ListsOnlyThatWorkersSlots) {
  absl::StatusOr<cluster::Placement> plan = PlanInitialPlacement({3}, 3, {{1, 5}, {2, 5}}, 4);
  ASSERT_TRUE(plan.ok());
  cluster::LoadSlotsRequest request = LoadRequestFor(*plan, 1);
  EXPECT_EQ(request.placement_version(), 4u);
  ASSERT_EQ(request.slots_size(), 2);
  EXPECT_EQ(request.slots(1).slot(), 1u);
  EXPECT_EQ(request.slots(1).layer(), 3u);
  EXPECT_EQ(request.slots(1).logical_expert(), 2u);
}

// Records LoadSlots calls; the test answers them.
class FakeExpertLoader final : public ExpertLoaderInterface {
 public:
  struct Call {
    std::string address;
    cluster::LoadSlotsRequest request;
    Done done;
  };
  void LoadSlots(const std::string& address, cluster::LoadSlotsRequest request,
                 Done done) override {
    calls.push_back({address, std::move(request), std::move(done)});
  }
  void ReleaseSlots(const std::string& address, cluster::ReleaseSlotsRequest request,
                    ReleaseDone done) override {
    releases.push_back({address, std::move(request)});
    done(absl::OkStatus());
  }
  // Answers call `i` with every slot it asked for.
  void Succeed(size_t i) {
    cluster::LoadSlotsResponse response;
    for (const auto& slot : calls[i].request.slots()) response.add_loaded_slots(slot.slot());
    calls[i].done(response);
  }
  std::vector<Call> calls;
  std::vector<std::pair<std::string, cluster::ReleaseSlotsRequest>> releases;
};

class RecordingSink final : public PlacementSinkInterface {
 public:
  bool Push(const cluster::Placement& placement) override {
    received.push_back(placement);
    return open;
  }
  std::vector<cluster::Placement> received;
  bool open = true;
};

WorkerRecord Worker(uint32_t id, cluster::Role role, int capacity, bool alive = true) {
  WorkerRecord record;
  record.id = id;
  record.alive = alive;
  record.info.set_role(role);
  record.info.set_grpc_address(absl::StrCat("127.0.0.1:", 100 + id));
  record.info.set_data_plane_address(absl::StrCat("dp-", id));
  record.info.set_slot_capacity(capacity);
  return record;
}

class PlacementControllerTest : public ::testing::Test {
 protected:
  PlacementControllerTest()
      : controller_(Options(), loader_, [this](uint64_t v) { published_version_ = v; },
                    context_.get_executor()) {}

  static PlacementOptions Options() {
    PlacementOptions options;
    options.moe_layers = {1, 2};
    options.num_experts = 4;
    options.expected_attention_workers = 1;
    options.expected_expert_workers = 2;
    return options;
  }
  void Step() {
    context_.restart();
    context_.poll();
  }
  ClusterState State() {
    ClusterState state;
    controller_.GetState([&](ClusterState s) { state = std::move(s); });
    Step();
    return state;
  }

  boost::asio::io_context context_;
  FakeExpertLoader loader_;
  uint64_t published_version_ = 0;
  PlacementController controller_;
};

TEST_F(PlacementControllerTest, LoadsThenPublishesVersionOneToWatchers) {
  auto early = std::make_shared<RecordingSink>();
  controller_.Watch(early);
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0), Worker(2, cluster::ROLE_EXPERT, 4)});
  Step();
  EXPECT_TRUE(loader_.calls.empty());  // one expert worker short
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0), Worker(2, cluster::ROLE_EXPERT, 4),
                         Worker(3, cluster::ROLE_EXPERT, 4)});
  Step();
  ASSERT_EQ(loader_.calls.size(), 2u);
  EXPECT_EQ(loader_.calls[0].address, "127.0.0.1:102");
  EXPECT_EQ(loader_.calls[0].request.slots_size(), 4);
  loader_.Succeed(0);
  Step();
  EXPECT_TRUE(early->received.empty());  // not until every worker has loaded
  EXPECT_FALSE(State().ready);
  loader_.Succeed(1);
  Step();
  ASSERT_EQ(early->received.size(), 1u);
  const cluster::Placement& placement = early->received[0];
  EXPECT_EQ(placement.version(), 1u);
  EXPECT_EQ(placement.layers_size(), 2);
  // Every live worker is a peer: the attention worker too, since expert workers answer it.
  ASSERT_EQ(placement.peers_size(), 3);
  EXPECT_EQ(placement.peers(0).worker_id(), 1u);
  EXPECT_EQ(placement.peers(2).worker_id(), 3u);
  EXPECT_EQ(placement.peers(2).data_plane_address(), "dp-3");
  EXPECT_EQ(published_version_, 1u);
  // A late watcher gets the current placement at once.
  auto late = std::make_shared<RecordingSink>();
  controller_.Watch(late);
  Step();
  ASSERT_EQ(late->received.size(), 1u);
  const ClusterState state = State();
  EXPECT_TRUE(state.ready);
  EXPECT_TRUE(state.experts_complete);
  EXPECT_EQ(state.expert_workers, 2);
  // Later versions reach every open watcher.
  cluster::Placement v2 = placement;
  v2.set_version(2);
  early->open = false;
  controller_.Publish(v2);
  Step();
  EXPECT_EQ(late->received.back().version(), 2u);
  controller_.Publish(v2);  // not newer: ignored
  Step();
  EXPECT_EQ(late->received.size(), 2u);
  EXPECT_EQ(early->received.size(), 2u);  // closed sinks are dropped
  // Losing an expert worker leaves experts uncovered.
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0), Worker(2, cluster::ROLE_EXPERT, 4),
                         Worker(3, cluster::ROLE_EXPERT, 4, /*alive=*/false)});
  EXPECT_FALSE(State().experts_complete);
}

TEST_F(PlacementControllerTest, ShortCapacityWaitsAndReportsTheError) {
  controller_.OnWorkers({Worker(2, cluster::ROLE_EXPERT, 3), Worker(3, cluster::ROLE_EXPERT, 3)});
  Step();
  EXPECT_TRUE(loader_.calls.empty());
  const ClusterState state = State();
  EXPECT_EQ(state.last_error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(state.placement.version(), 0u);
}

TEST_F(PlacementControllerTest, FailedLoadRetriesOnTheNextMembershipChange) {
  const WorkerSnapshot workers = {Worker(2, cluster::ROLE_EXPERT, 4),
                                  Worker(3, cluster::ROLE_EXPERT, 4)};
  controller_.OnWorkers(workers);
  Step();
  ASSERT_EQ(loader_.calls.size(), 2u);
  loader_.calls[0].done(absl::UnavailableError("down"));
  loader_.Succeed(1);  // stale now
  Step();
  EXPECT_EQ(State().last_error.code(), absl::StatusCode::kUnavailable);
  controller_.OnWorkers(workers);
  Step();
  ASSERT_EQ(loader_.calls.size(), 4u);
  loader_.Succeed(2);
  loader_.Succeed(3);
  Step();
  EXPECT_EQ(State().placement.version(), 1u);
  EXPECT_TRUE(State().last_error.ok());
}

}  // namespace
}  // namespace yard::coordinator
