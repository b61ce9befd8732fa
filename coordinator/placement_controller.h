// The versioned expert placement: computes the initial one once the expert workers
// have registered, has them load their slots, then publishes it to every watcher.
#ifndef SWITCHYARD_COORDINATOR_PLACEMENT_CONTROLLER_H_
#define SWITCHYARD_COORDINATOR_PLACEMENT_CONTROLLER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "actor/actor.h"
#include "coordinator/expert_loader.h"
#include "coordinator/membership.h"
#include "proto/cluster.pb.h"

namespace yard::coordinator {

// One WatchPlacement stream.
//
// Thread rule: Push is called on the controller's strand and must not block.
class PlacementSinkInterface {
 public:
  virtual ~PlacementSinkInterface() = default;
  // Queues `placement` for the watcher; false when the stream has ended (the
  // controller then forgets the sink).
  virtual bool Push(const cluster::Placement& placement) = 0;
};

struct PlacementOptions {
  // Layers with routed experts (MoeLayers(config)) and experts per layer.
  std::vector<uint32_t> moe_layers;
  int64_t num_experts = 0;
  // The cluster is ready once this many live workers of each role have registered and
  // placement version 1 is published. The initial placement starts once
  // `expected_expert_workers` expert workers are alive and uses those with the
  // lowest ids.
  int expected_attention_workers = 1;
  int expected_expert_workers = 1;
  // Slots per (layer, expert) in the initial placement, on distinct workers.
  int replicas = 1;
  // Where the first placement comes from (loaded, or taken over after a restart); may
  // be empty.
  std::function<void(const std::string&)> log;
};

// What Health and Admin.Status show.
struct ClusterState {
  // Placement published, every live attention worker routing by a placement
  // (acknowledged one), and the expected workers alive — or, once that was reached,
  // at least one attention worker and every expert on a live expert worker.
  bool ready = false;
  int attention_workers = 0;  // alive
  int expert_workers = 0;     // alive
  // Every (layer, expert) has a slot on a live worker in the published placement.
  bool experts_complete = false;
  // The published placement; version 0 (empty) before the first.
  cluster::Placement placement;
  // Why the last attempt to place failed; OK otherwise.
  absl::Status last_error;
  // The lowest placement version that every live attention worker has acknowledged
  // routing by (AckPlacement); 0 while one has acknowledged none.
  uint64_t attention_acked_version = 0;
  // Live expert workers: id, gRPC address, slot capacity.
  std::vector<WorkerRecord> live_expert_workers;
};

// The placement actor.
//
//   waiting ──enough expert workers alive (OnWorkers)──▶ loading
//      │ ▲                                                  │ every LoadSlots ok
//      │ └──── a LoadSlots failed / capacity short ◀────────┤
//      │                                                    ▼
//      └──their loaded slots cover every expert──▶ published: pushed to every watcher
//
// From `waiting` it retries on every membership change (heartbeats included). After
// a coordinator restart the expert workers re-register with the slots they hold:
// when those cover every (layer, expert) the placement is taken over unchanged;
// otherwise a fresh one is loaded, each worker first freeing what it held. Versions
// continue above the newest any worker reports. Later versions (recovery,
// rebalancing) come through Publish().
//
// Thread rule: public methods may be called from any thread (they post); callbacks
// run on the strand. Ownership: `loader` is borrowed and must outlive the controller.
class PlacementController {
 public:
  // `on_published(version)` runs on the strand after each publication (the coordinator
  // tells Membership, whose heartbeats report it).
  PlacementController(PlacementOptions options, ExpertLoaderInterface& loader,
                      absl::AnyInvocable<void(uint64_t)> on_published,
                      actor::Actor::Executor executor);
  ~PlacementController();

  PlacementController(const PlacementController&) = delete;
  PlacementController& operator=(const PlacementController&) = delete;

  // The membership table changed.
  void OnWorkers(WorkerSnapshot workers);
  // A Membership::Listener that posts OnWorkers here; safe to outlive this object.
  Membership::Listener MakeListener();

  // Adds a watcher: it gets the current placement at once (if any), then each new one.
  void Watch(std::shared_ptr<PlacementSinkInterface> sink);
  // Publishes `placement` (its version must be above the current one) to all watchers.
  void Publish(cluster::Placement placement);
  // An attention worker routes by `version` from now on.
  void OnAck(uint32_t worker_id, uint64_t version);

  void GetState(absl::AnyInvocable<void(ClusterState)> done);

 private:
  enum class Phase { kWaiting, kLoading, kPublished };

  // After a membership change: pushes the published placement again with the live
  // workers as peers, when they changed.
  void MaybeRepublishPeers();
  void MaybeStartLoading();
  void OnLoaded(uint64_t version, uint32_t worker_id,
                absl::StatusOr<cluster::LoadSlotsResponse> result);
  void DoPublish(cluster::Placement placement);
  ClusterState MakeState();

  const PlacementOptions options_;
  ExpertLoaderInterface& loader_;
  absl::AnyInvocable<void(uint64_t)> on_published_;
  // All below: only on actor_'s strand.
  Phase phase_ = Phase::kWaiting;
  WorkerSnapshot workers_;
  cluster::Placement published_;
  cluster::Placement loading_;
  int loads_pending_ = 0;
  absl::Status last_error_;
  bool brought_up_ = false;  // ready once with every expected worker alive
  std::vector<std::shared_ptr<PlacementSinkInterface>> sinks_;
  std::map<uint32_t, uint64_t> acked_;  // attention worker → newest version acknowledged
  actor::Actor actor_;  // last: destroyed first
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_PLACEMENT_CONTROLLER_H_
