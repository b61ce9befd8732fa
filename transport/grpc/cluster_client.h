// A worker's client of the coordinator's Cluster service (proto/cluster.proto):
// registration (retried while the coordinator is not up yet), a heartbeat thread, and
// a thread that follows the placement stream. Shared by attention and expert workers,
// which meet the coordinator only through proto/ and this client.
//
// Threading: Register and the Start* calls come from the owner's thread. Heartbeats and
// placements are delivered on this client's own threads, one thread per kind; a
// callback should post to the owner's actor and return. The destructor cancels the
// calls and joins the threads (callbacks have returned when it does).
#ifndef SWITCHYARD_TRANSPORT_GRPC_CLUSTER_CLIENT_H_
#define SWITCHYARD_TRANSPORT_GRPC_CLUSTER_CLIENT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "proto/cluster.grpc.pb.h"
#include "transport/grpc/auth.h"

namespace yard::transport {

class ClusterClient {
 public:
  // `coordinator`: host:port. Creating the channel does not contact it yet. Every
  // call presents `security`'s cluster token (and uses TLS when it has roots).
  ClusterClient(const std::string& coordinator, const ChannelSecurity& security);
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // Registers, retrying UNAVAILABLE (coordinator not up yet) until `wait` has passed.
  absl::StatusOr<cluster::RegisterResponse> Register(const cluster::RegisterRequest& request,
                                                     std::chrono::milliseconds wait);

  // Every `interval`, sends fill() and hands the answer (or the error) to on_answer.
  void StartHeartbeats(std::chrono::milliseconds interval,
                       std::function<cluster::HeartbeatRequest()> fill,
                       std::function<void(absl::StatusOr<cluster::HeartbeatResponse>)> on_answer);

  // Follows WatchPlacement for `worker_id`: on_placement gets each version in order;
  // a broken stream is reopened after a short pause (the coordinator re-sends the
  // current placement first, so nothing is missed).
  void StartPlacementWatch(uint32_t worker_id,
                           std::function<void(const cluster::Placement&)> on_placement);

  absl::Status AckPlacement(uint32_t worker_id, uint64_t version);
  absl::Status ReportLoad(const cluster::LoadReport& report);

 private:
  // Waits up to `d` or until stopping; false when stopping.
  bool SleepFor(std::chrono::milliseconds d);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cluster::Cluster::Stub> stub_;

  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  grpc::ClientContext* watch_context_ = nullptr;  // the open stream's, under mu_

  std::thread heartbeat_thread_;
  std::thread watch_thread_;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_GRPC_CLUSTER_CLIENT_H_
