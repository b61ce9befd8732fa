#include "coordinator/admin_service.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "transport/grpc/auth.h"
#include "transport/grpc/grpc_status.h"

namespace yard::coordinator {
namespace {

// Streams progress messages as they come (any thread), one write at a time, then the
// final status. Deletes itself when the call is done.
class ProgressStream final : public grpc::ServerWriteReactor<admin::RebalanceProgress> {
 public:
  void Push(admin::RebalanceProgress progress) {
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back(std::move(progress));
    }
    Pump();
  }
  void Close(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      final_ = std::move(status);
    }
    Pump();
  }
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (ok) {
        queue_.pop_front();
      } else {
        queue_.clear();  // the client went away; finish once the result is known
      }
    }
    Pump();
  }
  void OnDone() override { delete this; }

 private:
  // Starts the next write, or the finish, outside the lock (gRPC may react inline).
  void Pump() {
    const admin::RebalanceProgress* next = nullptr;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!queue_.empty()) {
        writing_ = true;
        next = &queue_.front();  // stable: a deque's push_back keeps references
      } else if (final_.has_value()) {
        finished_ = true;
        finish = final_;
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish.has_value()) Finish(*finish);
  }

  absl::Mutex mu_;
  std::deque<admin::RebalanceProgress> queue_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::Status AdminService::Authenticate(const grpc::CallbackServerContext& context) const {
  return transport::CheckBearer(context, accepted_, "cluster token");
}

absl::StatusOr<admin::ExpertsResponse> MakeExpertsResponse(const ExpertLoadTotals& totals,
                                                           const cluster::Placement& placement,
                                                           std::optional<uint32_t> layer) {
  if (layer.has_value() &&
      std::find(totals.layers.begin(), totals.layers.end(), *layer) == totals.layers.end()) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", *layer, " is not a MoE layer"));
  }
  std::map<uint32_t, const cluster::LayerPlacement*> by_layer;
  for (const cluster::LayerPlacement& l : placement.layers()) by_layer[l.layer()] = &l;
  const std::vector<uint32_t> workers = PlacedWorkers(placement);
  admin::ExpertsResponse response;
  response.set_placement_version(placement.version());
  response.set_window_seconds(absl::ToDoubleSeconds(totals.covered));
  response.set_reports(totals.reports);
  for (size_t i = 0; i < totals.layers.size(); ++i) {
    const uint32_t id = totals.layers[i];
    if (layer.has_value() && id != *layer) continue;
    admin::LayerLoadStatus* out = response.add_layers();
    out->set_layer(id);
    for (uint64_t n : totals.tokens_per_expert[i]) out->add_tokens_per_expert(n);
    auto placed = by_layer.find(id);
    if (placed == by_layer.end()) continue;
    const bool counted = totals.slot_version == placement.version();
    const std::vector<uint64_t>& slot_tokens = totals.tokens_per_slot[i];
    for (int s = 0; s < placed->second->slots_size(); ++s) {
      const cluster::Slot& slot = placed->second->slots(s);
      admin::SlotLoadStatus* status = out->add_slots();
      status->set_worker_id(slot.worker_id());
      status->set_slot(slot.slot());
      status->set_logical_expert(slot.logical_expert());
      status->set_tokens(counted && static_cast<size_t>(s) < slot_tokens.size() ? slot_tokens[s]
                                                                                 : 0);
    }
    out->set_imbalance(LayerImbalance(*placed->second, totals.tokens_per_expert[i], workers));
  }
  return response;
}

admin::StatusResponse MakeStatusResponse(const WorkerSnapshot& workers,
                                         const ClusterState& state, const RouterLoad& load) {
  std::map<uint32_t, int> slots_used;
  for (const cluster::LayerPlacement& layer : state.placement.layers()) {
    for (const cluster::Slot& slot : layer.slots()) ++slots_used[slot.worker_id()];
  }
  admin::StatusResponse response;
  for (const WorkerRecord& worker : workers) {
    admin::WorkerStatus* status = response.add_workers();
    status->set_id(worker.id);
    const bool expert = worker.info.role() == cluster::ROLE_EXPERT;
    status->set_role(expert ? "expert" : "attention");
    status->set_host(worker.info.host());
    status->set_pid(worker.info.pid());
    status->set_healthy(worker.alive);
    if (expert) {
      const int used = slots_used.contains(worker.id) ? slots_used.at(worker.id) : 0;
      status->set_slots_used(used);
      status->set_slots_free(std::max(0, worker.info.slot_capacity() - used));
    } else {
      auto running = load.running_by_worker.find(worker.id);
      status->set_running_requests(running == load.running_by_worker.end() ? 0
                                                                           : running->second);
      status->set_decode_steps(worker.decode_steps.count());
      status->set_decode_step_p50_ms(worker.decode_steps.p50_ms());
      status->set_decode_step_max_ms(worker.decode_steps.max_ms());
    }
  }
  response.set_placement_version(state.placement.version());
  response.set_requests_in_flight(load.requests_in_flight);
  return response;
}

grpc::ServerUnaryReactor* AdminService::Status(grpc::CallbackServerContext* context,
                                               const admin::StatusRequest*,
                                               admin::StatusResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  PlacementController* placement = &placement_;
  Router* router = &router_;
  membership_.Snapshot([reactor, response, placement, router](WorkerSnapshot workers) {
    placement->GetState([reactor, response, router,
                         workers = std::move(workers)](ClusterState state) mutable {
      router->GetLoad([reactor, response, workers = std::move(workers),
                       state = std::move(state)](RouterLoad load) {
        *response = MakeStatusResponse(workers, state, load);
        reactor->Finish(grpc::Status::OK);
      });
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Experts(grpc::CallbackServerContext* context,
                                                const admin::ExpertsRequest* request,
                                                admin::ExpertsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  std::optional<uint32_t> layer;
  if (request->has_layer()) layer = request->layer();
  ExpertLoadTotals totals = load_.Totals();
  placement_.GetState([reactor, response, layer, totals = std::move(totals)](ClusterState state) {
    absl::StatusOr<admin::ExpertsResponse> made =
        MakeExpertsResponse(totals, state.placement, layer);
    if (made.ok()) *response = *std::move(made);
    reactor->Finish(transport::ToGrpc(made.status()));
  });
  return reactor;
}

grpc::ServerWriteReactor<admin::RebalanceProgress>* AdminService::Rebalance(
    grpc::CallbackServerContext* context, const admin::RebalanceRequest* request) {
  auto* stream = new ProgressStream;
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    stream->Close(auth);
    return stream;
  }
  // The stream outlives the rebalance's callbacks: it finishes only after Close, which
  // `done` calls last.
  rebalancer_.Run(
      request->apply(),
      [stream](admin::RebalanceProgress p) { stream->Push(std::move(p)); },
      [stream](absl::Status s) { stream->Close(transport::ToGrpc(s)); });
  return stream;
}

grpc::ServerWriteReactor<admin::RebalanceProgress>* AdminService::Drain(
    grpc::CallbackServerContext* context, const admin::DrainRequest* request) {
  auto* stream = new ProgressStream;
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    stream->Close(auth);
    return stream;
  }
  const uint32_t id = request->worker_id();
  Rebalancer* rebalancer = &rebalancer_;
  Router* router = &router_;
  membership_.Snapshot([stream, id, rebalancer, router](WorkerSnapshot workers) {
    const WorkerRecord* worker = nullptr;
    for (const WorkerRecord& w : workers) {
      if (w.id == id) worker = &w;
    }
    if (worker == nullptr || !worker->alive) {
      stream->Close(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("no live worker ", id)));
      return;
    }
    if (worker->info.role() == cluster::ROLE_EXPERT) {
      rebalancer->Drain(
          id, [stream](admin::RebalanceProgress p) { stream->Push(std::move(p)); },
          [stream](absl::Status s) { stream->Close(transport::ToGrpc(s)); });
      return;
    }
    admin::RebalanceProgress routing_stopped;
    routing_stopped.set_phase("drain");
    routing_stopped.set_total(1);
    routing_stopped.set_message("no new requests go to it; waiting for those running on it");
    stream->Push(routing_stopped);
    router->DrainWorker(id, [stream, routing_stopped]() mutable {
      routing_stopped.set_done(1);
      routing_stopped.set_message("no request runs on it");
      stream->Push(routing_stopped);
      stream->Close(grpc::Status::OK);
    });
  });
  return stream;
}

grpc::ServerWriteReactor<admin::RebalanceProgress>* AdminService::StreamEdit(
    grpc::CallbackServerContext* context, PlacementEdit edit) {
  auto* stream = new ProgressStream;
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    stream->Close(auth);
    return stream;
  }
  rebalancer_.Edit(
      edit, [stream](admin::RebalanceProgress p) { stream->Push(std::move(p)); },
      [stream](absl::Status s) { stream->Close(transport::ToGrpc(s)); });
  return stream;
}

grpc::ServerWriteReactor<admin::RebalanceProgress>* AdminService::Replicate(
    grpc::CallbackServerContext* context, const admin::ReplicateRequest* request) {
  PlacementEdit edit;
  edit.kind = PlacementEdit::Kind::kReplicate;
  edit.layer = request->layer();
  edit.expert = static_cast<int32_t>(std::min<uint32_t>(request->expert(), INT32_MAX));
  if (request->has_worker_id()) edit.worker = request->worker_id();
  return StreamEdit(context, edit);
}

grpc::ServerWriteReactor<admin::RebalanceProgress>* AdminService::Evict(
    grpc::CallbackServerContext* context, const admin::EvictRequest* request) {
  PlacementEdit edit;
  edit.kind = PlacementEdit::Kind::kEvict;
  edit.layer = request->layer();
  edit.slot = request->slot();
  return StreamEdit(context, edit);
}

}  // namespace yard::coordinator
