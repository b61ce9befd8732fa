#include "coordinator/cluster_service.h"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "transport/grpc/auth.h"
#include "transport/grpc/grpc_status.h"

namespace yard::coordinator {
namespace {

// One WatchPlacement stream. gRPC callbacks post to `actor_`; the controller reaches
// it through a Sink that holds the actor only weakly. Only the newest placement
// waits while a write is in flight. Deleted on its strand after OnDone.
class PlacementStream final : public grpc::ServerWriteReactor<cluster::Placement> {
 public:
  explicit PlacementStream(actor::Actor::Executor executor)
      : actor_("watch_placement", std::move(executor)) {
    sink_ = std::make_shared<Sink>(actor_.Bind(
        "watch_placement.push", [this](cluster::Placement placement) { Enqueue(placement); }));
  }

  std::shared_ptr<PlacementSinkInterface> sink() const { return sink_; }

  void OnWriteDone(bool ok) override {
    actor_.Post("watch_placement.on_write_done", [this, ok] {
      writing_ = false;
      if (!ok) return FinishOnce(grpc::Status::OK);
      if (pending_) {
        current_ = *std::move(pending_);
        pending_.reset();
        writing_ = true;
        StartWrite(&current_);
      }
    });
  }
  void OnCancel() override {
    actor_.Post("watch_placement.on_cancel",
                [this] { FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); });
  }
  // Ends the stream before it watched anything (the request was refused). Any thread.
  void Refuse(grpc::Status status) {
    actor_.Post("watch_placement.refuse",
                [this, status = std::move(status)] { FinishOnce(status); });
  }
  void OnDone() override {
    sink_->Close();
    actor_.Post("watch_placement.on_done", [this] { delete this; });
  }

 private:
  using PushFn = std::function<void(cluster::Placement)>;

  class Sink final : public PlacementSinkInterface {
   public:
    explicit Sink(PushFn push) : push_(std::move(push)) {}
    bool Push(const cluster::Placement& placement) override {
      if (closed_.load()) return false;
      push_(placement);
      return true;
    }
    void Close() { closed_.store(true); }

   private:
    PushFn push_;
    std::atomic<bool> closed_{false};
  };

  void Enqueue(const cluster::Placement& placement) {
    if (finished_) return;
    if (writing_) {
      pending_ = placement;
      return;
    }
    current_ = placement;
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishOnce(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    pending_.reset();
    Finish(status);
  }

  std::shared_ptr<Sink> sink_;
  // Only on actor_'s strand.
  cluster::Placement current_;
  std::optional<cluster::Placement> pending_;
  bool writing_ = false;
  bool finished_ = false;
  actor::Actor actor_;  // last: destroyed first
};

// Strings a worker sends us are bounded: they are kept and copied into every placement.
constexpr size_t kMaxAddressBytes = 4096;

absl::Status CheckString(const std::string& value, const char* field, bool required) {
  if (required && value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (value.size() > kMaxAddressBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", value.size(),
                                                   " bytes, at most ", kMaxAddressBytes));
  }
  return absl::OkStatus();
}

// What Membership does not check itself: the addresses every peer is told.
absl::Status ValidateRegister(const cluster::RegisterRequest& request) {
  const cluster::WorkerInfo& info = request.info();
  if (absl::Status s = CheckString(info.grpc_address(), "RegisterRequest.info.grpc_address",
                                   /*required=*/false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckString(info.data_plane_address(),
                                   "RegisterRequest.info.data_plane_address", /*required=*/true);
      !s.ok()) {
    return s;
  }
  return CheckString(info.host(), "RegisterRequest.info.host", /*required=*/false);
}

absl::Status ValidateHeartbeat(const cluster::HeartbeatRequest& request) {
  if (request.worker_id() == 0) {
    return absl::InvalidArgumentError("HeartbeatRequest.worker_id: 0 is never assigned");
  }
  if (request.queued_tokens() < 0 || request.kv_blocks_used() < 0 ||
      request.kv_blocks_total() < 0 || request.running_requests() < 0 ||
      request.kv_blocks_used() > request.kv_blocks_total()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HeartbeatRequest: queued_tokens ", request.queued_tokens(), ", running_requests ",
        request.running_requests(), ", kv_blocks_used ", request.kv_blocks_used(),
        " of kv_blocks_total ", request.kv_blocks_total(),
        ": counts must be >= 0 and used <= total"));
  }
  if (request.decode_steps().count() < 0 || !(request.decode_steps().p50_ms() >= 0) ||
      !(request.decode_steps().max_ms() >= 0)) {
    return absl::InvalidArgumentError(
        "HeartbeatRequest.decode_steps: count and times must be >= 0");
  }
  return absl::OkStatus();
}

// NOT_FOUND naming `field` unless `id` is a live registered worker.
absl::Status CheckWorker(const WorkerSnapshot& workers, uint32_t id, const char* field) {
  for (const WorkerRecord& w : workers) {
    if (w.id == id && w.alive) return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat(field, ": no live worker ", id));
}

}  // namespace

grpc::ServerUnaryReactor* ClusterService::Register(grpc::CallbackServerContext* context,
                                                   const cluster::RegisterRequest* request,
                                                   cluster::RegisterResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  if (absl::Status s = ValidateRegister(*request); !s.ok()) {
    reactor->Finish(transport::ToGrpc(s));
    return reactor;
  }
  membership_.Register(*request,
                       [reactor, response](absl::StatusOr<cluster::RegisterResponse> result) {
                         if (result.ok()) *response = *std::move(result);
                         reactor->Finish(transport::ToGrpc(result.status()));
                       });
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::Heartbeat(grpc::CallbackServerContext* context,
                                                    const cluster::HeartbeatRequest* request,
                                                    cluster::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  if (absl::Status s = ValidateHeartbeat(*request); !s.ok()) {
    reactor->Finish(transport::ToGrpc(s));
    return reactor;
  }
  membership_.Heartbeat(*request, [reactor, response](cluster::HeartbeatResponse result) {
    *response = std::move(result);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::Status ClusterService::Authenticate(const grpc::CallbackServerContext& context) const {
  return transport::CheckBearer(context, accepted_, "cluster token");
}

grpc::ServerWriteReactor<cluster::Placement>* ClusterService::WatchPlacement(
    grpc::CallbackServerContext* context, const cluster::WatchPlacementRequest* request) {
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    return new transport::RefusedStream<cluster::Placement>(auth);
  }
  auto* stream = new PlacementStream(executor_);
  // The stream lives until OnDone, which cannot come before it is finished or
  // watching; so `stream` is valid in the snapshot's answer.
  PlacementController* placement = &placement_;
  const uint32_t id = request->worker_id();
  membership_.Snapshot([stream, placement, id](WorkerSnapshot workers) {
    if (absl::Status s = CheckWorker(workers, id, "WatchPlacementRequest.worker_id"); !s.ok()) {
      stream->Refuse(transport::ToGrpc(s));
      return;
    }
    placement->Watch(stream->sink());
  });
  return stream;
}

grpc::ServerUnaryReactor* ClusterService::AckPlacement(grpc::CallbackServerContext* context,
                                                       const cluster::AckPlacementRequest* request,
                                                       cluster::AckPlacementResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  PlacementController* placement = &placement_;
  const uint32_t id = request->worker_id();
  const uint64_t version = request->version();
  membership_.Snapshot([reactor, placement, id, version](WorkerSnapshot workers) {
    if (absl::Status s = CheckWorker(workers, id, "AckPlacementRequest.worker_id"); !s.ok()) {
      reactor->Finish(transport::ToGrpc(s));
      return;
    }
    placement->GetState([reactor, placement, id, version](ClusterState state) {
      if (version == 0 || version > state.placement.version()) {
        reactor->Finish(transport::ToGrpc(absl::InvalidArgumentError(absl::StrCat(
            "AckPlacementRequest.version: ", version, " was never published (newest: ",
            state.placement.version(), ")"))));
        return;
      }
      placement->OnAck(id, version);
      reactor->Finish(grpc::Status::OK);
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::ReportLoad(grpc::CallbackServerContext* context,
                                                     const cluster::LoadReport* request,
                                                     cluster::LoadReportResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  ExpertLoadWindow* load = &load_;
  // The request outlives the call's handlers: gRPC frees it after Finish.
  membership_.Snapshot([reactor, load, request](WorkerSnapshot workers) {
    absl::Status s = CheckWorker(workers, request->worker_id(), "LoadReport.worker_id");
    reactor->Finish(transport::ToGrpc(s.ok() ? load->Add(*request) : s));
  });
  return reactor;
}

}  // namespace yard::coordinator
