#include "coordinator/cluster_service.h"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

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

}  // namespace

grpc::ServerUnaryReactor* ClusterService::Register(grpc::CallbackServerContext* context,
                                                   const cluster::RegisterRequest* request,
                                                   cluster::RegisterResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    reactor->Finish(auth);
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
    grpc::CallbackServerContext* context, const cluster::WatchPlacementRequest*) {
  if (grpc::Status auth = Authenticate(*context); !auth.ok()) {
    return new transport::RefusedStream<cluster::Placement>(auth);
  }
  auto* stream = new PlacementStream(executor_);
  placement_.Watch(stream->sink());
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
  placement_.OnAck(request->worker_id(), request->version());
  reactor->Finish(grpc::Status::OK);
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
  reactor->Finish(transport::ToGrpc(load_.Add(*request)));
  return reactor;
}

}  // namespace yard::coordinator
