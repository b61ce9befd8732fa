// The internal Cluster service workers call: Register, Heartbeat, WatchPlacement,
// AckPlacement, ReportLoad.
#ifndef SWITCHYARD_COORDINATOR_CLUSTER_SERVICE_H_
#define SWITCHYARD_COORDINATOR_CLUSTER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "actor/actor.h"
#include "coordinator/expert_load_window.h"
#include "coordinator/membership.h"
#include "coordinator/placement_controller.h"
#include "proto/cluster.grpc.pb.h"

namespace yard::coordinator {

// gRPC callback service; handlers only post to Membership / PlacementController and
// finish from their answers. Each WatchPlacement stream is a small actor on
// `executor` that writes the newest placement, one write at a time.
//
// ReportLoad adds to the load window (malformed: INVALID_ARGUMENT); AckPlacement
// tells the placement controller which version an attention worker routes by.
//
// Every call must present one of `accepted` (the cluster token; empty: no check) or
// is UNAUTHENTICATED.
//
// Thread rule: handlers run on gRPC threads. Ownership: `membership`, `placement` and
// `load` are borrowed and must outlive the service and the server.
class ClusterService final : public cluster::Cluster::CallbackService {
 public:
  ClusterService(Membership& membership, PlacementController& placement,
                 ExpertLoadWindow& load, actor::Actor::Executor executor,
                 std::vector<std::string> accepted)
      : membership_(membership),
        placement_(placement),
        load_(load),
        executor_(std::move(executor)),
        accepted_(std::move(accepted)) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const cluster::RegisterRequest* request,
                                     cluster::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const cluster::HeartbeatRequest* request,
                                      cluster::HeartbeatResponse* response) override;
  grpc::ServerWriteReactor<cluster::Placement>* WatchPlacement(
      grpc::CallbackServerContext* context,
      const cluster::WatchPlacementRequest* request) override;
  grpc::ServerUnaryReactor* AckPlacement(grpc::CallbackServerContext* context,
                                         const cluster::AckPlacementRequest* request,
                                         cluster::AckPlacementResponse* response) override;
  grpc::ServerUnaryReactor* ReportLoad(grpc::CallbackServerContext* context,
                                       const cluster::LoadReport* request,
                                       cluster::LoadReportResponse* response) override;

 private:
  // OK, or the UNAUTHENTICATED status to finish with.
  grpc::Status Authenticate(const grpc::CallbackServerContext& context) const;

  Membership& membership_;
  PlacementController& placement_;
  ExpertLoadWindow& load_;
  const actor::Actor::Executor executor_;
  const std::vector<std::string> accepted_;
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_CLUSTER_SERVICE_H_
