#include "transport/grpc/cluster_client.h"

#include <utility>

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

void ClusterClient::StartHeartbeats(
    std::chrono::milliseconds interval, std::function<cluster::HeartbeatRequest()> fill,
    std::function<void(absl::StatusOr<cluster::HeartbeatResponse>)> on_answer) {
  heartbeat_thread_ = std::thread([this, interval, fill = std::move(fill),
                                   on_answer = std::move(on_answer)] {
    while (SleepFor(interval)) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + 2 * interval +
                           std::chrono::seconds(1));
      cluster::HeartbeatResponse response;
      const grpc::Status status = stub_->Heartbeat(&context, fill(), &response);
      if (status.ok()) {
        on_answer(response);
      } else {
        on_answer(FromGrpc(status));
      }
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
