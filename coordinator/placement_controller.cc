#include "coordinator/placement_controller.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/placement_plan.h"

namespace yard::coordinator {
namespace {

// Every live worker is a data-plane peer of the others: attention workers send to expert
// workers, which answer them.
void FillPeers(const WorkerSnapshot& workers, cluster::Placement& placement) {
  placement.clear_peers();
  for (const WorkerRecord& worker : workers) {
    if (!worker.alive || worker.info.data_plane_address().empty()) continue;
    cluster::Peer* peer = placement.add_peers();
    peer->set_worker_id(worker.id);
    peer->set_data_plane_address(worker.info.data_plane_address());
  }
}

}  // namespace

PlacementController::PlacementController(PlacementOptions options, ExpertLoaderInterface& loader,
                                         absl::AnyInvocable<void(uint64_t)> on_published,
                                         actor::Actor::Executor executor)
    : options_(std::move(options)),
      loader_(loader),
      on_published_(std::move(on_published)),
      actor_("placement", std::move(executor)) {}

PlacementController::~PlacementController() = default;

void PlacementController::OnWorkers(WorkerSnapshot workers) {
  actor_.Post("placement.on_workers", [this, workers = std::move(workers)]() mutable {
    workers_ = std::move(workers);
    MaybeStartLoading();
    MaybeRepublishPeers();
  });
}

Membership::Listener PlacementController::MakeListener() {
  auto post = actor_.Bind("placement.on_workers", [this](WorkerSnapshot workers) {
    workers_ = std::move(workers);
    MaybeStartLoading();
    MaybeRepublishPeers();
  });
  return [post](const WorkerSnapshot& workers) mutable { post(workers); };
}

void PlacementController::MaybeStartLoading() {
  YARD_DCHECK_ON_STRAND(actor_);
  if (phase_ != Phase::kWaiting) return;
  std::vector<const WorkerRecord*> experts;
  for (const WorkerRecord& worker : workers_) {
    if (worker.alive && worker.info.role() == cluster::ROLE_EXPERT) experts.push_back(&worker);
  }
  if (static_cast<int>(experts.size()) < options_.expected_expert_workers) return;
  // Versions go on above any a worker has seen (after a coordinator restart).
  uint64_t newest = published_.version();
  for (const WorkerRecord& worker : workers_) {
    if (worker.alive) newest = std::max(newest, worker.info.placement_version());
  }
  const bool first = published_.version() == 0;
  if (first) {
    // Expert workers that outlived a coordinator restart may hold a whole placement:
    // take it over as it is, with nothing to load.
    std::vector<ExpertWorkerSlots> reported;
    for (const WorkerRecord* worker : experts) {
      reported.push_back({worker->id, worker->info.slot_capacity(),
                          {worker->info.loaded_slots().begin(), worker->info.loaded_slots().end()}});
    }
    std::optional<cluster::Placement> adopted = PlacementFromLoadedSlots(
        options_.moe_layers, options_.num_experts, reported, newest + 1);
    if (adopted.has_value()) {
      if (options_.log) {
        options_.log(absl::StrCat("placement v", adopted->version(),
                                  " taken over from the expert workers' slots (nothing loaded)"));
      }
      FillPeers(workers_, *adopted);
      phase_ = Phase::kPublished;
      last_error_ = absl::OkStatus();
      DoPublish(*std::move(adopted));
      return;
    }
  }
  experts.resize(std::max(options_.expected_expert_workers, 0));
  std::vector<ExpertWorkerCapacity> capacities;
  for (const WorkerRecord* worker : experts) {
    capacities.push_back({worker->id, worker->info.slot_capacity()});
  }
  absl::StatusOr<cluster::Placement> plan = PlanInitialPlacement(
      options_.moe_layers, options_.num_experts, capacities, newest + 1, options_.replicas);
  if (!plan.ok()) {
    last_error_ = plan.status();
    return;
  }
  FillPeers(workers_, *plan);
  loading_ = *std::move(plan);
  phase_ = Phase::kLoading;
  loads_pending_ = static_cast<int>(experts.size());
  if (loads_pending_ == 0) {
    phase_ = Phase::kPublished;
    DoPublish(std::move(loading_));
    return;
  }
  const uint64_t version = loading_.version();
  if (options_.log) {
    options_.log(absl::StrCat("loading placement v", version, " on ", experts.size(),
                              " expert workers"));
  }
  for (const WorkerRecord* worker : experts) {
    const uint32_t id = worker->id;
    cluster::LoadSlotsRequest request = LoadRequestFor(loading_, id);
    // Whatever a slot held before (a coordinator restart) is in no placement now.
    request.set_release_others(first);
    loader_.LoadSlots(worker->info.grpc_address(), std::move(request),
                      actor_.Bind("placement.on_loaded",
                                  [this, version, id](
                                      absl::StatusOr<cluster::LoadSlotsResponse> result) {
                                    OnLoaded(version, id, std::move(result));
                                  }));
  }
}

void PlacementController::MaybeRepublishPeers() {
  YARD_DCHECK_ON_STRAND(actor_);
  if (phase_ != Phase::kPublished || published_.version() == 0) return;
  cluster::Placement updated = published_;
  FillPeers(workers_, updated);
  if (updated.SerializeAsString() == published_.SerializeAsString()) return;
  // Same expert placement, new peers (a worker joined or died): same version.
  published_ = std::move(updated);
  std::erase_if(sinks_, [this](const std::shared_ptr<PlacementSinkInterface>& sink) {
    return !sink->Push(published_);
  });
}

void PlacementController::OnLoaded(uint64_t version, uint32_t worker_id,
                                   absl::StatusOr<cluster::LoadSlotsResponse> result) {
  if (phase_ != Phase::kLoading || version != loading_.version()) return;  // stale
  if (!result.ok()) {
    last_error_ = absl::Status(result.status().code(),
                               absl::StrCat("expert worker ", worker_id, ": ",
                                            std::string(result.status().message())));
    phase_ = Phase::kWaiting;
    loads_pending_ = 0;
    return;
  }
  const cluster::LoadSlotsRequest asked = LoadRequestFor(loading_, worker_id);
  std::set<uint32_t> loaded(result->loaded_slots().begin(), result->loaded_slots().end());
  for (const cluster::SlotLoad& slot : asked.slots()) {
    if (!loaded.contains(slot.slot())) {
      last_error_ = absl::InternalError(absl::StrCat("expert worker ", worker_id,
                                                     " did not load slot ", slot.slot()));
      phase_ = Phase::kWaiting;
      loads_pending_ = 0;
      return;
    }
  }
  if (--loads_pending_ > 0) return;
  phase_ = Phase::kPublished;
  last_error_ = absl::OkStatus();
  DoPublish(std::move(loading_));
}

void PlacementController::Publish(cluster::Placement placement) {
  actor_.Post("placement.publish", [this, placement = std::move(placement)]() mutable {
    if (placement.version() <= published_.version()) return;
    FillPeers(workers_, placement);  // the live workers now, not when it was planned
    phase_ = Phase::kPublished;
    DoPublish(std::move(placement));
  });
}

void PlacementController::DoPublish(cluster::Placement placement) {
  YARD_DCHECK_ON_STRAND(actor_);
  published_ = std::move(placement);
  loading_.Clear();
  std::erase_if(sinks_, [this](const std::shared_ptr<PlacementSinkInterface>& sink) {
    return !sink->Push(published_);
  });
  if (on_published_) on_published_(published_.version());
}

void PlacementController::OnAck(uint32_t worker_id, uint64_t version) {
  actor_.Post("placement.on_ack", [this, worker_id, version] {
    uint64_t& acked = acked_[worker_id];
    acked = std::max(acked, version);
  });
}

void PlacementController::Watch(std::shared_ptr<PlacementSinkInterface> sink) {
  actor_.Post("placement.watch", [this, sink = std::move(sink)]() mutable {
    if (published_.version() > 0 && !sink->Push(published_)) return;
    sinks_.push_back(std::move(sink));
  });
}

void PlacementController::GetState(absl::AnyInvocable<void(ClusterState)> done) {
  actor_.Post("placement.get_state",
              [this, done = std::move(done)]() mutable { done(MakeState()); });
}

ClusterState PlacementController::MakeState() {
  YARD_DCHECK_ON_STRAND(actor_);
  ClusterState state;
  std::set<uint32_t> live_experts;
  state.attention_acked_version = UINT64_MAX;
  for (const WorkerRecord& worker : workers_) {
    if (!worker.alive) continue;
    if (worker.info.role() == cluster::ROLE_ATTENTION) {
      ++state.attention_workers;
      auto acked = acked_.find(worker.id);
      state.attention_acked_version = std::min(
          state.attention_acked_version, acked == acked_.end() ? uint64_t{0} : acked->second);
    }
    if (worker.info.role() == cluster::ROLE_EXPERT) {
      ++state.expert_workers;
      live_experts.insert(worker.id);
      state.live_expert_workers.push_back(worker);
    }
  }
  if (state.attention_workers == 0) state.attention_acked_version = 0;
  state.placement = published_;
  state.last_error = last_error_;
  if (published_.version() > 0) {
    state.experts_complete = CoversEveryExpert(
        published_, options_.num_experts,
        [&live_experts](uint32_t worker) { return live_experts.contains(worker); });
  }
  // Serving also needs every live attention worker to route by a placement: one that
  // has not installed any yet would fail the first request sent to it. The expected
  // worker counts gate only the bring-up: a cluster that lost a worker and recovered
  // (every expert placed on a live worker) still serves.
  const bool expected_alive = state.attention_workers >= options_.expected_attention_workers &&
                              state.expert_workers >= options_.expected_expert_workers;
  const bool attention_ok = state.attention_workers > 0 ? state.attention_acked_version > 0
                                                         : options_.expected_attention_workers == 0;
  state.ready = published_.version() > 0 && attention_ok &&
                (expected_alive || (brought_up_ && state.experts_complete));
  if (state.ready) brought_up_ = true;
  return state;
}

}  // namespace yard::coordinator
