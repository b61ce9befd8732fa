#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "boost/asio/io_context.hpp"
#include "coordinator/clock.h"
#include "coordinator/expert_load_window.h"
#include "coordinator/placement_controller.h"
#include "coordinator/placement_plan.h"
#include "coordinator/rebalancer.h"
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

// Every slot of `placement` as (layer, worker, slot, expert), in placement order.
std::vector<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>> Slots(
    const cluster::Placement& placement) {
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>> slots;
  for (const auto& layer : placement.layers()) {
    for (const auto& slot : layer.slots()) {
      slots.emplace_back(layer.layer(), slot.worker_id(), slot.slot(), slot.logical_expert());
    }
  }
  return slots;
}

TEST(PlanInitialPlacementTest, RoundRobinWithSlotsNumberedPerWorker) {
  absl::StatusOr<cluster::Placement> plan =
      PlanInitialPlacement({1, 2}, 3, {{5, 10}, {8, 10}}, /*version=*/1);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->version(), 1u);
  ASSERT_EQ(plan->layers_size(), 2);
  EXPECT_THAT(Slots(*plan), ElementsAre(std::make_tuple(1u, 5u, 0u, 0u), std::make_tuple(1u, 8u, 0u, 1u),
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
  // Serving once the attention worker routes by it.
  EXPECT_FALSE(State().ready);
  controller_.OnAck(1, 1);
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
  // Losing an expert worker leaves experts uncovered: not serving.
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0), Worker(2, cluster::ROLE_EXPERT, 4),
                         Worker(3, cluster::ROLE_EXPERT, 4, /*alive=*/false)});
  EXPECT_FALSE(State().experts_complete);
  EXPECT_FALSE(State().ready);
  // Once its experts are placed on the survivor, the cluster serves again with one
  // expert worker fewer than it was started with.
  cluster::Placement recovered = v2;
  recovered.set_version(3);
  for (auto& layer : *recovered.mutable_layers()) {
    for (auto& slot : *layer.mutable_slots()) slot.set_worker_id(2);
  }
  controller_.Publish(recovered);
  controller_.OnAck(1, 3);
  const ClusterState degraded = State();
  EXPECT_TRUE(degraded.experts_complete);
  EXPECT_EQ(degraded.expert_workers, 1);
  EXPECT_TRUE(degraded.ready);
  // No attention worker alive: not serving.
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0, /*alive=*/false),
                         Worker(2, cluster::ROLE_EXPERT, 4)});
  EXPECT_FALSE(State().ready);
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


// An expert worker as it re-registers after a coordinator restart: the slots it holds
// (layer, expert) in slot order, and the newest placement version it saw.
WorkerRecord Reregistered(uint32_t id, std::vector<std::pair<uint32_t, uint32_t>> slots,
                          uint64_t version) {
  WorkerRecord record = Worker(id, cluster::ROLE_EXPERT, 8);
  for (size_t s = 0; s < slots.size(); ++s) {
    cluster::SlotLoad* load = record.info.add_loaded_slots();
    load->set_slot(static_cast<uint32_t>(s));
    load->set_layer(slots[s].first);
    load->set_logical_expert(slots[s].second);
  }
  record.info.set_placement_version(version);
  return record;
}

TEST(PlacementFromLoadedSlotsTest, RebuildsTheLayersWhenEveryExpertIsCovered) {
  std::vector<ExpertWorkerSlots> workers = {
      {7, 4, {}}, {5, 4, {}}};
  auto add = [](ExpertWorkerSlots& w, uint32_t slot, uint32_t layer, uint32_t expert) {
    cluster::SlotLoad load;
    load.set_slot(slot);
    load.set_layer(layer);
    load.set_logical_expert(expert);
    w.loaded.push_back(load);
  };
  add(workers[0], 0, 2, 1);
  add(workers[0], 3, 1, 0);
  add(workers[1], 1, 1, 1);
  add(workers[1], 0, 2, 0);
  add(workers[1], 2, 1, 1);  // a replica
  std::optional<cluster::Placement> placement = PlacementFromLoadedSlots({1, 2}, 2, workers, 9);
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(placement->version(), 9u);
  EXPECT_THAT(Slots(*placement), ElementsAre(std::make_tuple(1u, 5u, 1u, 1u), std::make_tuple(1u, 5u, 2u, 1u),
                               std::make_tuple(1u, 7u, 3u, 0u), std::make_tuple(2u, 5u, 0u, 0u),
                               std::make_tuple(2u, 7u, 0u, 1u)));

  // An uncovered expert, or any invalid slot, and nothing is taken over.
  std::vector<ExpertWorkerSlots> short_one = {workers[1]};
  EXPECT_FALSE(PlacementFromLoadedSlots({1, 2}, 2, short_one, 9).has_value());
  for (auto spoil : std::vector<std::function<void(ExpertWorkerSlots&)>>{
           [&](ExpertWorkerSlots& w) { add(w, 3, 0, 0); },   // a dense layer
           [&](ExpertWorkerSlots& w) { add(w, 3, 1, 2); },   // no expert 2
           [&](ExpertWorkerSlots& w) { add(w, 4, 1, 0); },   // beyond the capacity
           [&](ExpertWorkerSlots& w) { add(w, 1, 2, 1); }}) {  // slot 1 twice
    std::vector<ExpertWorkerSlots> spoiled = workers;
    spoil(spoiled[1]);
    EXPECT_FALSE(PlacementFromLoadedSlots({1, 2}, 2, spoiled, 9).has_value());
  }
}

TEST_F(PlacementControllerTest, AfterARestartTakesOverTheWorkersSlotsWithoutLoading) {
  auto sink = std::make_shared<RecordingSink>();
  controller_.Watch(sink);
  // Between them the two workers hold every expert of layers 1 and 2; versions went
  // up to 6 under the previous coordinator.
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0),
                         Reregistered(2, {{1, 0}, {1, 1}, {2, 0}, {2, 1}}, 6),
                         Reregistered(3, {{1, 2}, {1, 3}, {2, 2}, {2, 3}, {1, 0}}, 5)});
  Step();
  EXPECT_TRUE(loader_.calls.empty());
  ASSERT_EQ(sink->received.size(), 1u);
  EXPECT_EQ(sink->received[0].version(), 7u);
  EXPECT_EQ(sink->received[0].layers(0).slots_size(), 5);
  EXPECT_EQ(sink->received[0].peers_size(), 3);
  EXPECT_TRUE(State().experts_complete);
}

TEST_F(PlacementControllerTest, AfterARestartWithExpertsMissingLoadsAfreshFreeingTheOldSlots) {
  controller_.OnWorkers({Reregistered(2, {{1, 0}, {1, 1}}, 4), Worker(3, cluster::ROLE_EXPERT, 8)});
  Step();
  ASSERT_EQ(loader_.calls.size(), 2u);
  for (const auto& call : loader_.calls) {
    EXPECT_TRUE(call.request.release_others());
    EXPECT_EQ(call.request.placement_version(), 5u);  // above the reported version
  }
  loader_.Succeed(0);
  loader_.Succeed(1);
  Step();
  EXPECT_EQ(State().placement.version(), 5u);
}


// The Rebalancer over the same controller and fake loader: plan, stage, publish, wait
// for the attention workers' acknowledgements, release.
class RebalancerTest : public PlacementControllerTest {
 protected:
  RebalancerTest()
      : load_({1, 2}, 4, absl::Seconds(60), clock_),
        rebalancer_(RebalancerOptions(), controller_, load_, loader_, context_.get_executor()) {
    controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0),
                           Worker(2, cluster::ROLE_EXPERT, 16),
                           Worker(3, cluster::ROLE_EXPERT, 16)});
    Step();
    loader_.Succeed(0);
    loader_.Succeed(1);
    Step();
    loader_.calls.clear();
  }
  static RebalanceOptions RebalancerOptions() {
    RebalanceOptions options;
    options.moe_layers = {1, 2};
    options.num_experts = 4;
    options.poll_interval = absl::Milliseconds(1);
    options.switch_timeout = absl::Milliseconds(200);
    return options;
  }
  // Expert 0 of both layers gets almost everything.
  void ReportSkewedLoad() {
    cluster::LoadReport report;
    for (uint32_t layer : {1u, 2u}) {
      cluster::LayerLoad* l = report.add_layers();
      l->set_layer(layer);
      for (uint64_t n : {100u, 5u, 5u, 5u}) l->add_tokens_per_expert(n);
    }
    ASSERT_TRUE(load_.Add(report).ok());
  }
  struct Outcome {
    std::vector<admin::RebalanceProgress> progress;
    std::optional<absl::Status> status;
  };
  void Start(bool apply, Outcome& out) {
    rebalancer_.Run(
        apply, [&out](admin::RebalanceProgress p) { out.progress.push_back(std::move(p)); },
        [&out](absl::Status s) { out.status = std::move(s); });
    Step();
  }
  // Runs the loop (timers included) until `done` or a second has passed.
  void RunUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 1000 && !done(); ++i) {
      context_.restart();
      context_.run_for(std::chrono::milliseconds(1));
    }
  }

  FakeClock clock_;
  ExpertLoadWindow load_;
  Rebalancer rebalancer_;
};

TEST_F(RebalancerTest, WithoutLoadItIsFailedPrecondition) {
  Outcome out;
  Start(/*apply=*/true, out);
  ASSERT_TRUE(out.status.has_value());
  EXPECT_EQ(out.status->code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(loader_.calls.empty());
}

TEST_F(RebalancerTest, DryRunReportsThePlanAndChangesNothing) {
  ReportSkewedLoad();
  Outcome out;
  Start(/*apply=*/false, out);
  ASSERT_TRUE(out.status.has_value());
  ASSERT_TRUE(out.status->ok()) << *out.status;
  ASSERT_EQ(out.progress.size(), 1u);
  const admin::RebalanceProgress& plan = out.progress[0];
  EXPECT_EQ(plan.phase(), "plan");
  EXPECT_EQ(plan.placement_version(), 2u);
  EXPECT_LT(plan.imbalance_after(), plan.imbalance_before());
  EXPECT_EQ(plan.layers_size(), 2);
  EXPECT_GT(plan.slots_loaded(), 0);
  EXPECT_TRUE(loader_.calls.empty());
  EXPECT_EQ(State().placement.version(), 1u);
}

TEST_F(RebalancerTest, ApplyStagesPublishesWaitsForEveryAttentionWorkerThenReleases) {
  ReportSkewedLoad();
  Outcome out;
  Start(/*apply=*/true, out);
  ASSERT_FALSE(out.status.has_value());
  ASSERT_FALSE(loader_.calls.empty());
  // A second rebalance meanwhile is refused.
  Outcome second;
  Start(/*apply=*/true, second);
  ASSERT_TRUE(second.status.has_value());
  EXPECT_EQ(second.status->code(), absl::StatusCode::kFailedPrecondition);
  // Nothing is published before every worker has staged its slots.
  EXPECT_EQ(State().placement.version(), 1u);
  for (size_t i = 0; i < loader_.calls.size(); ++i) {
    EXPECT_EQ(loader_.calls[i].request.placement_version(), 2u);
    loader_.Succeed(i);
  }
  RunUntil([&] { return State().placement.version() == 2; });
  EXPECT_EQ(State().placement.version(), 2u);
  // Published, but the attention worker still routes by v1: nothing is released.
  RunUntil([] { return false; });  // ~1 s of polling
  EXPECT_FALSE(out.status.has_value() && out.status->ok());
  EXPECT_TRUE(loader_.releases.empty());
}

TEST_F(RebalancerTest, ReleasesOnlyAfterTheAcknowledgement) {
  ReportSkewedLoad();
  Outcome out;
  Start(/*apply=*/true, out);
  for (size_t i = 0; i < loader_.calls.size(); ++i) loader_.Succeed(i);
  RunUntil([&] { return State().placement.version() == 2; });
  EXPECT_TRUE(loader_.releases.empty());
  controller_.OnAck(1, 2);
  RunUntil([&] { return out.status.has_value(); });
  ASSERT_TRUE(out.status.has_value());
  ASSERT_TRUE(out.status->ok()) << *out.status;
  EXPECT_FALSE(loader_.releases.empty());
  std::vector<std::string> phases;
  for (const admin::RebalanceProgress& p : out.progress) {
    if (phases.empty() || phases.back() != p.phase()) phases.push_back(p.phase());
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"plan", "load", "switch", "release", "done"}));
}

// The job waits for every worker's load, then releases what the others staged (the
// next plan counts those slots free) and ends with the failure.
TEST_F(RebalancerTest, AFailedLoadLeavesThePlacementInForceAndUnstagesTheRest) {
  ReportSkewedLoad();
  Outcome out;
  Start(/*apply=*/true, out);
  ASSERT_GE(loader_.calls.size(), 2u);
  loader_.calls[0].done(absl::UnavailableError("worker down"));
  Step();
  EXPECT_FALSE(out.status.has_value()) << "ended before the other loads answered";
  for (size_t i = 1; i < loader_.calls.size(); ++i) loader_.Succeed(i);
  RunUntil([&] { return out.status.has_value(); });
  ASSERT_TRUE(out.status.has_value());
  EXPECT_EQ(out.status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(State().placement.version(), 1u);
  ASSERT_EQ(loader_.releases.size(), loader_.calls.size() - 1);
  for (size_t i = 1; i < loader_.calls.size(); ++i) {
    EXPECT_EQ(loader_.releases[i - 1].first, loader_.calls[i].address);
    EXPECT_EQ(loader_.releases[i - 1].second.slots_size(), loader_.calls[i].request.slots_size());
  }
}

TEST_F(RebalancerTest, ASwitchNotAcknowledgedInTimeIsDeadlineExceededAndReleasesNothing) {
  ReportSkewedLoad();
  Outcome out;
  Start(/*apply=*/true, out);
  for (size_t i = 0; i < loader_.calls.size(); ++i) loader_.Succeed(i);
  RunUntil([&] { return out.status.has_value(); });
  ASSERT_TRUE(out.status.has_value());
  EXPECT_EQ(out.status->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(loader_.releases.empty());
}

TEST_F(RebalancerTest, ReplicateAddsOneSlotThenEvictRemovesItButNeverTheLastReplica) {
  Outcome add;
  PlacementEdit replicate;
  replicate.layer = 1;
  replicate.expert = 2;
  rebalancer_.Edit(
      replicate, [&add](admin::RebalanceProgress p) { add.progress.push_back(std::move(p)); },
      [&add](absl::Status s) { add.status = std::move(s); });
  Step();
  ASSERT_EQ(loader_.calls.size(), 1u);  // one worker stages one slot
  ASSERT_EQ(loader_.calls[0].request.slots_size(), 1);
  EXPECT_EQ(loader_.calls[0].request.slots(0).layer(), 1u);
  EXPECT_EQ(loader_.calls[0].request.slots(0).logical_expert(), 2u);
  loader_.Succeed(0);
  RunUntil([&] { return State().placement.version() == 2; });
  controller_.OnAck(1, 2);
  RunUntil([&] { return add.status.has_value(); });
  ASSERT_TRUE(add.status.has_value() && add.status->ok()) << add.status.value_or(absl::OkStatus());
  const cluster::Placement v2 = State().placement;
  ASSERT_EQ(v2.layers(0).slots_size(), 5);
  EXPECT_EQ(v2.layers(0).slots(4).logical_expert(), 2u);
  // The new replica is on the worker that did not hold expert 2 yet.
  EXPECT_NE(v2.layers(0).slots(4).worker_id(), v2.layers(0).slots(2).worker_id());

  auto edit = [&](PlacementEdit e) {
    Outcome out;
    rebalancer_.Edit(
        e, [&out](admin::RebalanceProgress p) { out.progress.push_back(std::move(p)); },
        [&out](absl::Status s) { out.status = std::move(s); });
    Step();
    return out;
  };
  PlacementEdit evict;
  evict.kind = PlacementEdit::Kind::kEvict;
  evict.layer = 1;
  evict.slot = 0;  // expert 0's only replica
  Outcome refused = edit(evict);
  ASSERT_TRUE(refused.status.has_value());
  EXPECT_EQ(refused.status->code(), absl::StatusCode::kFailedPrecondition);
  evict.slot = 9;
  refused = edit(evict);
  EXPECT_EQ(refused.status->code(), absl::StatusCode::kInvalidArgument);
  evict.layer = 0;  // dense
  refused = edit(evict);
  EXPECT_EQ(refused.status->code(), absl::StatusCode::kInvalidArgument);
  PlacementEdit bad = replicate;
  bad.expert = 4;
  refused = edit(bad);
  EXPECT_EQ(refused.status->code(), absl::StatusCode::kInvalidArgument);
  bad = replicate;
  bad.worker = 99;
  refused = edit(bad);
  EXPECT_EQ(refused.status->code(), absl::StatusCode::kInvalidArgument);

  evict.layer = 1;
  evict.slot = 4;  // the replica just added: nothing to load, one slot to release
  Outcome removed = edit(evict);
  RunUntil([&] { return State().placement.version() == 3; });
  controller_.OnAck(1, 3);
  RunUntil([&] { return removed.status.has_value(); });
  ASSERT_TRUE(removed.status.has_value() && removed.status->ok());
  EXPECT_EQ(State().placement.layers(0).slots_size(), 4);
  ASSERT_EQ(loader_.releases.size(), 1u);
  EXPECT_EQ(loader_.releases[0].second.slots_size(), 1);
}

// With a threshold, a skewed window triggers a rebalance by itself.
TEST_F(PlacementControllerTest, AutomaticRebalanceStartsAboveTheThreshold) {
  controller_.OnWorkers({Worker(1, cluster::ROLE_ATTENTION, 0), Worker(2, cluster::ROLE_EXPERT, 16),
                         Worker(3, cluster::ROLE_EXPERT, 16)});
  Step();
  loader_.Succeed(0);
  loader_.Succeed(1);
  Step();
  loader_.calls.clear();
  FakeClock clock;
  ExpertLoadWindow load({1, 2}, 4, absl::Seconds(60), clock);
  RebalanceOptions options;
  options.moe_layers = {1, 2};
  options.num_experts = 4;
  options.auto_threshold = 1.2;
  options.auto_interval = absl::Milliseconds(5);
  Rebalancer rebalancer(options, controller_, load, loader_, context_.get_executor());
  std::vector<std::string> log;
  rebalancer.StartAuto([&log](std::string line) { log.push_back(std::move(line)); });
  auto run_for = [&](int ms) {
    for (int i = 0; i < ms; ++i) {
      context_.restart();
      context_.run_for(std::chrono::milliseconds(1));
    }
  };
  run_for(50);
  EXPECT_TRUE(loader_.calls.empty()) << "no load, no rebalance";
  cluster::LoadReport report;
  for (uint32_t layer : {1u, 2u}) {
    cluster::LayerLoad* l = report.add_layers();
    l->set_layer(layer);
    for (uint64_t n : {100u, 5u, 5u, 5u}) l->add_tokens_per_expert(n);
  }
  ASSERT_TRUE(load.Add(report).ok());
  run_for(50);
  EXPECT_FALSE(loader_.calls.empty()) << "the skewed window started a rebalance";
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log[0].find("automatic rebalance"), std::string::npos) << log[0];
}

}  // namespace
}  // namespace yard::coordinator
