// Which attention worker serves a request: the least loaded healthy one.
#ifndef SWITCHYARD_COORDINATOR_ROUTER_H_
#define SWITCHYARD_COORDINATOR_ROUTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "actor/actor.h"
#include "coordinator/membership.h"

namespace yard::coordinator {

// Where a request goes.
struct Route {
  uint64_t request_id = 0;  // unique in this coordinator, sent to the worker
  uint32_t worker_id = 0;
  std::string grpc_address;  // the attention worker's AttentionWorker service
};

// Per attention worker, for Admin.Status.
struct RouterLoad {
  int requests_in_flight = 0;
  std::map<uint32_t, int> running_by_worker;
};

// The request-router actor. A request costs its prompt tokens plus max_tokens; a
// worker's load is its last heartbeat's queued_tokens plus the cost of requests this
// router sent it that have not finished. Pick takes the healthy attention worker with
// the least load, ties to the lowest id.
//
//   serving ──BeginDrain──▶ draining (Pick answers UNAVAILABLE) ──last Finish──▶ idle
//
// Thread rule: public methods may be called from any thread (they post); callbacks run
// on the strand. Ownership: the executor's io_context must outlive the router.
class Router {
 public:
  // `max_in_flight`: requests routed and not finished at most; beyond it Pick is
  // RESOURCE_EXHAUSTED (0: no limit), so a flood is refused, not queued without bound.
  explicit Router(actor::Actor::Executor executor, int64_t max_in_flight = 0);
  ~Router();

  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  void OnWorkers(WorkerSnapshot workers);
  // A Membership::Listener that posts OnWorkers here.
  Membership::Listener MakeListener();

  // UNAVAILABLE when no attention worker is alive or the router is draining;
  // RESOURCE_EXHAUSTED at max_in_flight. Workers in
  // `avoid` (those a resumed request just failed on) are taken only when no other is
  // alive.
  void Pick(int64_t cost_tokens, absl::AnyInvocable<void(absl::StatusOr<Route>)> done,
            absl::flat_hash_set<uint32_t> avoid = {});
  // The request ended (in any way); idempotent.
  void Finish(uint64_t request_id);

  // New Picks fail from now on; `idle` runs (on the strand) once no request is in
  // flight, at once if none is.
  void BeginDrain(absl::AnyInvocable<void()> idle);
  // New Picks skip this attention worker from now on; `idle` runs (on the strand) once
  // no request routed to it is in flight any more, at once if none is.
  void DrainWorker(uint32_t worker_id, absl::AnyInvocable<void()> idle);

  void GetLoad(absl::AnyInvocable<void(RouterLoad)> done);

 private:
  struct InFlight {
    uint32_t worker_id = 0;
    int64_t cost = 0;
  };

  void MaybeIdle();

  const int64_t max_in_flight_;

  // All below: only on actor_'s strand.
  WorkerSnapshot workers_;
  absl::flat_hash_map<uint64_t, InFlight> in_flight_;
  absl::flat_hash_map<uint32_t, int64_t> routed_cost_;  // by worker id
  uint64_t next_request_id_ = 1;
  bool draining_ = false;
  absl::flat_hash_set<uint32_t> drained_workers_;
  std::vector<std::pair<uint32_t, absl::AnyInvocable<void()>>> worker_idle_waiters_;
  std::vector<absl::AnyInvocable<void()>> idle_waiters_;
  actor::Actor actor_;  // last: destroyed first
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_ROUTER_H_
