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

  // What the heartbeat thread calls (each on that thread).
  struct HeartbeatHandlers {
    // The next heartbeat.
    std::function<cluster::HeartbeatRequest()> fill;
    // The worker's registration as of now (e.g. the slots it holds), sent again when
    // a heartbeat answers known=false (`answer`): the coordinator restarted, or had
    // declared this worker dead — then answer.placement_version() is that of a
    // placement made without it. The client asks for the same worker id
    // (previous_worker_id).
    std::function<cluster::RegisterRequest(const cluster::HeartbeatResponse& answer)>
        registration;
    // Registered again under the same id.
    std::function<void()> on_registered_again;
    // The coordinator gave another id (a new worker took this one while the
    // coordinator was away): the data plane's identity is fixed, so the worker must
    // stop and be started afresh.
    std::function<void(absl::Status)> on_identity_lost;

    // Sets the two callbacks above as a worker process wants them: a line on stdout
    // when `who` (e.g. "expert_worker 3") registered again; for a lost identity a
    // line on stderr, then `stop` (which should end the process with an error).
    void LogAndStopOnLostIdentity(const std::string& who, std::function<void()> stop);
  };
  // Every `interval`, sends a heartbeat for `worker_id` (the id Register returned),
  // registering again whenever the coordinator no longer knows the worker.
  void StartHeartbeats(uint32_t worker_id, std::chrono::milliseconds interval,
                       HeartbeatHandlers handlers);

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
