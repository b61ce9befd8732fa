#include "coordinator/membership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace yard::coordinator {

Membership::Membership(MembershipOptions options, const ClockInterface& clock,
                       actor::Actor::Executor executor)
    : options_(options), clock_(clock), actor_("membership", std::move(executor)) {}

Membership::~Membership() {
  // The timer belongs to the strand's io_context; cancelling drops its pending wait.
  if (timer_ != nullptr) timer_->cancel();
}

void Membership::Register(
    cluster::RegisterRequest request,
    absl::AnyInvocable<void(absl::StatusOr<cluster::RegisterResponse>)> done) {
  actor_.Post("membership.register", [this, request = std::move(request),
                                      done = std::move(done)]() mutable {
    const cluster::WorkerInfo& info = request.info();
    if (info.role() != cluster::ROLE_ATTENTION && info.role() != cluster::ROLE_EXPERT) {
      done(absl::InvalidArgumentError("RegisterRequest.info.role: must be ROLE_ATTENTION or "
                                      "ROLE_EXPERT"));
      return;
    }
    if (info.grpc_address().empty()) {
      done(absl::InvalidArgumentError("RegisterRequest.info.grpc_address: must not be empty"));
      return;
    }
    if (info.slot_capacity() < 0) {
      done(absl::InvalidArgumentError(
          absl::StrCat("RegisterRequest.info.slot_capacity: ", info.slot_capacity(),
                       " is negative")));
      return;
    }
    const uint32_t id = AssignId(request);
    WorkerRecord& record = workers_[id];
    record = WorkerRecord();
    record.id = id;
    record.info = info;
    record.alive = true;
    record.last_heartbeat = clock_.Now();
    cluster::RegisterResponse response;
    response.set_worker_id(id);
    response.set_heartbeat_interval_ms(
        std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.heartbeat_timeout) / 3));
    // Subscribers hear of the worker before it hears back, so a request it causes
    // finds the router up to date.
    Notify();
    done(std::move(response));
  });
}

uint32_t Membership::AssignId(const cluster::RegisterRequest& request) {
  const uint32_t previous = request.previous_worker_id();
  if (previous != 0) {
    auto it = workers_.find(previous);
    // Free: unknown (the coordinator restarted), dead, or held by this same worker.
    const bool free = it == workers_.end() || !it->second.alive ||
                      it->second.info.grpc_address() == request.info().grpc_address();
    if (free) {
      next_id_ = std::max(next_id_, previous + 1);
      return previous;
    }
  }
  while (workers_.contains(next_id_)) ++next_id_;
  return next_id_++;
}

void Membership::Heartbeat(cluster::HeartbeatRequest request,
                           absl::AnyInvocable<void(cluster::HeartbeatResponse)> done) {
  actor_.Post("membership.heartbeat", [this, request = std::move(request),
                                       done = std::move(done)]() mutable {
    cluster::HeartbeatResponse response;
    response.set_placement_version(placement_version_);
    auto it = workers_.find(request.worker_id());
    if (it == workers_.end() || !it->second.alive) {
      response.set_known(false);
      done(std::move(response));
      return;
    }
    WorkerRecord& record = it->second;
    record.last_heartbeat = clock_.Now();
    record.queued_tokens = request.queued_tokens();
    record.decode_steps = request.decode_steps();
    record.kv_blocks_used = request.kv_blocks_used();
    record.kv_blocks_total = request.kv_blocks_total();
    record.running_requests = request.running_requests();
    response.set_known(true);
    Notify();
    done(std::move(response));
  });
}

void Membership::Tick() {
  actor_.Post("membership.tick", [this] {
    const absl::Time now = clock_.Now();
    bool changed = false;
    for (auto& [id, record] : workers_) {
      if (record.alive && now - record.last_heartbeat > options_.heartbeat_timeout) {
        record.alive = false;
        changed = true;
      }
    }
    if (changed) Notify();
  });
}

void Membership::StartLivenessTimer(absl::Duration interval) {
  actor_.Post("membership.start_timer", [this, interval] {
    if (timer_ == nullptr) timer_ = std::make_unique<boost::asio::steady_timer>(actor_.strand());
    ArmTimer(interval);
  });
}

void Membership::ArmTimer(absl::Duration interval) {
  timer_->expires_after(absl::ToChronoNanoseconds(interval));
  timer_->async_wait(actor_.Bind("membership.timer",
                                 [this, interval](const boost::system::error_code& error) {
                                   if (error) return;
                                   Tick();
                                   ArmTimer(interval);
                                 }));
}

void Membership::SetPlacementVersion(uint64_t version) {
  actor_.Post("membership.set_placement_version",
              [this, version] { placement_version_ = std::max(placement_version_, version); });
}

void Membership::Subscribe(Listener listener) {
  actor_.Post("membership.subscribe", [this, listener = std::move(listener)]() mutable {
    listener(MakeSnapshot());
    listeners_.push_back(std::move(listener));
  });
}

void Membership::Snapshot(absl::AnyInvocable<void(WorkerSnapshot)> done) {
  actor_.Post("membership.snapshot",
              [this, done = std::move(done)]() mutable { done(MakeSnapshot()); });
}

WorkerSnapshot Membership::MakeSnapshot() const {
  YARD_DCHECK_ON_STRAND(actor_);
  WorkerSnapshot snapshot;
  snapshot.reserve(workers_.size());
  for (const auto& [id, record] : workers_) snapshot.push_back(record);
  return snapshot;
}

void Membership::Notify() {
  const WorkerSnapshot snapshot = MakeSnapshot();
  for (Listener& listener : listeners_) listener(snapshot);
}

}  // namespace yard::coordinator
