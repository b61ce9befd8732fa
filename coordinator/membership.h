// Which workers belong to the cluster and whether they are alive.
#ifndef SWITCHYARD_COORDINATOR_MEMBERSHIP_H_
#define SWITCHYARD_COORDINATOR_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "actor/actor.h"
#include "boost/asio/steady_timer.hpp"
#include "coordinator/clock.h"
#include "proto/cluster.pb.h"

namespace yard::coordinator {

// What the coordinator knows of one registered worker.
struct WorkerRecord {
  uint32_t id = 0;
  cluster::WorkerInfo info;
  bool alive = true;
  absl::Time last_heartbeat;
  // From the latest heartbeat (attention workers).
  int64_t queued_tokens = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int32_t running_requests = 0;
  cluster::DecodeSteps decode_steps;
};

// Live and dead workers, ordered by id.
using WorkerSnapshot = std::vector<WorkerRecord>;

struct MembershipOptions {
  // A worker whose last Register or Heartbeat is older than this is dead.
  absl::Duration heartbeat_timeout = absl::Seconds(10);
};

// The membership actor: assigns worker ids, records WorkerInfo, tracks liveness from
// heartbeats, and tells subscribers the whole table after every change.
//
// Per worker:
//
//   (none) ──Register──▶ alive ──no heartbeat for heartbeat_timeout (Tick)──▶ dead
//                         ▲  │                                                  │
//                         │  └── Heartbeat: refresh                             │
//                         └────────────── Register(previous_worker_id) ◀────────┘
//
// A dead worker's heartbeats answer known=false (it must register again, which keeps
// its id). Ids start at 1 (0 means "none" in the protocol) and are never reused for a
// different worker while the coordinator runs.
//
// Thread rule: every public method may be called from any thread; it posts to the
// actor's strand, and callbacks run on that strand (so they should only post onward).
// Ownership: `clock` is borrowed and must outlive the Membership; the executor's
// io_context must too.
class Membership {
 public:
  using Listener = absl::AnyInvocable<void(const WorkerSnapshot&)>;

  Membership(MembershipOptions options, const ClockInterface& clock,
             actor::Actor::Executor executor);
  ~Membership();

  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // InvalidArgument for a request without a role or a gRPC address.
  void Register(cluster::RegisterRequest request,
                absl::AnyInvocable<void(absl::StatusOr<cluster::RegisterResponse>)> done);
  void Heartbeat(cluster::HeartbeatRequest request,
                 absl::AnyInvocable<void(cluster::HeartbeatResponse)> done);

  // Marks dead every alive worker silent for longer than heartbeat_timeout.
  void Tick();
  // Calls Tick every `interval` on a timer of the strand until the Membership dies.
  void StartLivenessTimer(absl::Duration interval);

  // The version heartbeats report as the newest placement.
  void SetPlacementVersion(uint64_t version);

  // `listener` gets the current table at once, then after every change (registration,
  // death, heartbeat), on the strand.
  void Subscribe(Listener listener);
  void Snapshot(absl::AnyInvocable<void(WorkerSnapshot)> done);

 private:
  WorkerSnapshot MakeSnapshot() const;
  void Notify();
  uint32_t AssignId(const cluster::RegisterRequest& request);
  void ArmTimer(absl::Duration interval);

  const MembershipOptions options_;
  const ClockInterface& clock_;
  // All below: touched only on actor_'s strand.
  std::map<uint32_t, WorkerRecord> workers_;
  uint32_t next_id_ = 1;
  uint64_t placement_version_ = 0;
  std::vector<Listener> listeners_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  actor::Actor actor_;  // last: destroyed first
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_MEMBERSHIP_H_
