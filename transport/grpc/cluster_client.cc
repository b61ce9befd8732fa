#include "transport/grpc/cluster_client.h"

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "transport/grpc/grpc_status.h"

namespace yard::transport {

ClusterClient::ClusterClient(const std::string& coordinator, const ChannelSecurity& security)
    : channel_(CreateChannel(coordinator, security)),
      stub_(cluster::Cluster::NewStub(channel_)) {}

ClusterClient::~ClusterClient() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (watch_context_ != nullptr) watch_context_->TryCancel();
  }
  stop_cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
}

bool ClusterClient::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !stop_cv_.wait_for(lock, d, [this] { return stopping_; });
}

absl::StatusOr<cluster::RegisterResponse> ClusterClient::Register(
    const cluster::RegisterRequest& request, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::system_clock::now() + wait;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(deadline);
    context.set_wait_for_ready(true);  // queue until the coordinator's port opens
    cluster::RegisterResponse response;
    const grpc::Status status = stub_->Register(&context, request, &response);
    if (status.ok()) return response;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE ||
        std::chrono::system_clock::now() >= deadline) {
      return FromGrpc(status);
    }
    if (!SleepFor(std::chrono::milliseconds(100))) return absl::CancelledError("stopping");
  }
}

void ClusterClient::HeartbeatHandlers::LogAndStopOnLostIdentity(const std::string& who,
                                                                 std::function<void()> stop) {
  on_registered_again = [who] {
    std::printf("%s: registered again with the coordinator\n", who.c_str());
    std::fflush(stdout);
  };
  on_identity_lost = [who, stop = std::move(stop)](absl::Status why) {
    std::fprintf(stderr, "%s: %s; stopping\n", who.c_str(), std::string(why.message()).c_str());
    stop();
  };
}

void ClusterClient::StartHeartbeats(uint32_t worker_id, std::chrono::milliseconds interval,
                                    HeartbeatHandlers handlers) {
  heartbeat_thread_ = std::thread([this, worker_id, interval, handlers = std::move(handlers)] {
    while (SleepFor(interval)) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + 2 * interval +
                           std::chrono::seconds(1));
      cluster::HeartbeatResponse response;
      const grpc::Status status = stub_->Heartbeat(&context, handlers.fill(), &response);
      // An error (the coordinator is down or restarting) is retried at the next beat.
      if (!status.ok() || response.known()) continue;
      cluster::RegisterRequest request = handlers.registration(response);
      request.set_previous_worker_id(worker_id);
      absl::StatusOr<cluster::RegisterResponse> registered = Register(request, 2 * interval);
      if (!registered.ok()) continue;  // tried again after the next unknown beat
      if (registered->worker_id() != worker_id) {
        handlers.on_identity_lost(absl::FailedPreconditionError(absl::StrCat(
            "the coordinator re-registered worker ", worker_id, " as ",
            registered->worker_id(), " (its id was taken while the coordinator was away)")));
        return;
      }
      handlers.on_registered_again();
    }
  });
}

void ClusterClient::StartPlacementWatch(
    uint32_t worker_id, std::function<void(const cluster::Placement&)> on_placement) {
  watch_thread_ = std::thread([this, worker_id, on_placement = std::move(on_placement)] {
    while (true) {
      grpc::ClientContext context;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        watch_context_ = &context;
      }
      cluster::WatchPlacementRequest request;
      request.set_worker_id(worker_id);
      std::unique_ptr<grpc::ClientReader<cluster::Placement>> reader =
          stub_->WatchPlacement(&context, request);
      cluster::Placement placement;
      while (reader->Read(&placement)) on_placement(placement);
      reader->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        watch_context_ = nullptr;
      }
      if (!SleepFor(std::chrono::milliseconds(200))) return;
    }
  });
}

absl::Status ClusterClient::AckPlacement(uint32_t worker_id, uint64_t version) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  cluster::AckPlacementRequest request;
  request.set_worker_id(worker_id);
  request.set_version(version);
  cluster::AckPlacementResponse response;
  return FromGrpc(stub_->AckPlacement(&context, request, &response));
}

absl::Status ClusterClient::ReportLoad(const cluster::LoadReport& report) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  cluster::LoadReportResponse response;
  return FromGrpc(stub_->ReportLoad(&context, report, &response));
}

}  // namespace yard::transport
