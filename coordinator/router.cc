#include "coordinator/router.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace yard::coordinator {

Router::Router(actor::Actor::Executor executor, int64_t max_in_flight)
    : max_in_flight_(max_in_flight), actor_("router", std::move(executor)) {}

Router::~Router() = default;

void Router::OnWorkers(WorkerSnapshot workers) {
  actor_.Post("router.on_workers",
              [this, workers = std::move(workers)]() mutable { workers_ = std::move(workers); });
}

Membership::Listener Router::MakeListener() {
  auto post = actor_.Bind("router.on_workers",
                          [this](WorkerSnapshot workers) { workers_ = std::move(workers); });
  return [post](const WorkerSnapshot& workers) mutable { post(workers); };
}

void Router::DrainWorker(uint32_t worker_id, absl::AnyInvocable<void()> idle) {
  actor_.Post("router.drain_worker", [this, worker_id, idle = std::move(idle)]() mutable {
    drained_workers_.insert(worker_id);
    worker_idle_waiters_.emplace_back(worker_id, std::move(idle));
    MaybeIdle();
  });
}

void Router::Pick(int64_t cost_tokens, absl::AnyInvocable<void(absl::StatusOr<Route>)> done,
                  absl::flat_hash_set<uint32_t> avoid) {
  actor_.Post("router.pick", [this, cost_tokens, done = std::move(done),
                              avoid = std::move(avoid)]() mutable {
    if (draining_) {
      done(absl::UnavailableError("the coordinator is shutting down"));
      return;
    }
    if (max_in_flight_ > 0 && static_cast<int64_t>(in_flight_.size()) >= max_in_flight_) {
      done(absl::ResourceExhaustedError(absl::StrCat(
          "the coordinator has ", in_flight_.size(),
          " requests in flight, the most it takes (--max-requests); retry later")));
      return;
    }
    const WorkerRecord* best = nullptr;
    // Rank: (avoided, load); ascending id keeps the lowest on ties.
    std::pair<bool, int64_t> best_rank{true, std::numeric_limits<int64_t>::max()};
    for (const WorkerRecord& worker : workers_) {
      if (!worker.alive || worker.info.role() != cluster::ROLE_ATTENTION) continue;
      if (drained_workers_.contains(worker.id)) continue;
      auto routed = routed_cost_.find(worker.id);
      const std::pair<bool, int64_t> rank{
          avoid.contains(worker.id),
          worker.queued_tokens + (routed == routed_cost_.end() ? 0 : routed->second)};
      if (best == nullptr || rank < best_rank) {
        best = &worker;
        best_rank = rank;
      }
    }
    if (best == nullptr) {
      done(absl::UnavailableError("no attention worker is available"));
      return;
    }
    Route route;
    route.request_id = next_request_id_++;
    route.worker_id = best->id;
    route.grpc_address = best->info.grpc_address();
    in_flight_[route.request_id] = InFlight{best->id, cost_tokens};
    routed_cost_[best->id] += cost_tokens;
    done(std::move(route));
  });
}

void Router::Finish(uint64_t request_id) {
  actor_.Post("router.finish", [this, request_id] {
    auto it = in_flight_.find(request_id);
    if (it == in_flight_.end()) return;
    int64_t& routed = routed_cost_[it->second.worker_id];
    routed -= it->second.cost;
    if (routed <= 0) routed_cost_.erase(it->second.worker_id);
    in_flight_.erase(it);
    MaybeIdle();
  });
}

void Router::BeginDrain(absl::AnyInvocable<void()> idle) {
  actor_.Post("router.begin_drain", [this, idle = std::move(idle)]() mutable {
    draining_ = true;
    idle_waiters_.push_back(std::move(idle));
    MaybeIdle();
  });
}

void Router::MaybeIdle() {
  // Waiters for one worker: called once nothing in flight is on it.
  std::erase_if(worker_idle_waiters_, [this](auto& waiter) {
    for (const auto& [id, request] : in_flight_) {
      if (request.worker_id == waiter.first) return false;
    }
    waiter.second();
    return true;
  });
  if (!draining_ || !in_flight_.empty()) return;
  std::vector<absl::AnyInvocable<void()>> waiters = std::move(idle_waiters_);
  idle_waiters_.clear();
  for (auto& waiter : waiters) waiter();
}

void Router::GetLoad(absl::AnyInvocable<void(RouterLoad)> done) {
  actor_.Post("router.get_load", [this, done = std::move(done)]() mutable {
    RouterLoad load;
    load.requests_in_flight = static_cast<int>(in_flight_.size());
    for (const auto& [id, request] : in_flight_) ++load.running_by_worker[request.worker_id];
    done(std::move(load));
  });
}

}  // namespace yard::coordinator
