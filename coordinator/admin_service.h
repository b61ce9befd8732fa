// The operator's Admin service (yardctl): cluster status and expert load; every call
// needs the admin token.
#ifndef SWITCHYARD_COORDINATOR_ADMIN_SERVICE_H_
#define SWITCHYARD_COORDINATOR_ADMIN_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/expert_load_window.h"
#include "coordinator/membership.h"
#include "coordinator/placement_change.h"
#include "coordinator/placement_controller.h"
#include "coordinator/rebalancer.h"
#include "coordinator/router.h"
#include "proto/admin.grpc.pb.h"

namespace yard::coordinator {

// Status asks Membership, then PlacementController, then Router (each answer posts
// the next question) and finishes from the last answer. Experts reads the load window
// and the published placement. Rebalance streams the Rebalancer's progress.
//
// Every call first checks the metadata `authorization: Bearer TOKEN` against
// `accepted` (the cluster token; transport::CheckBearer): a missing or wrong token is
// UNAUTHENTICATED. Empty `accepted`: no check (the coordinator's --insecure-no-auth).
//
// Thread rule: handlers run on gRPC threads and only post. Ownership: the actors and
// the load window are borrowed and must outlive the service and the server.
class AdminService final : public admin::Admin::CallbackService {
 public:
  AdminService(Membership& membership, PlacementController& placement, Router& router,
               const ExpertLoadWindow& load, Rebalancer& rebalancer,
               std::vector<std::string> accepted)
      : membership_(membership),
        placement_(placement),
        router_(router),
        load_(load),
        rebalancer_(rebalancer),
        accepted_(std::move(accepted)) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context,
                                   const admin::StatusRequest* request,
                                   admin::StatusResponse* response) override;
  grpc::ServerUnaryReactor* Experts(grpc::CallbackServerContext* context,
                                    const admin::ExpertsRequest* request,
                                    admin::ExpertsResponse* response) override;
  grpc::ServerWriteReactor<admin::RebalanceProgress>* Rebalance(
      grpc::CallbackServerContext* context, const admin::RebalanceRequest* request) override;
  grpc::ServerWriteReactor<admin::RebalanceProgress>* Drain(
      grpc::CallbackServerContext* context, const admin::DrainRequest* request) override;
  grpc::ServerWriteReactor<admin::RebalanceProgress>* Replicate(
      grpc::CallbackServerContext* context, const admin::ReplicateRequest* request) override;
  grpc::ServerWriteReactor<admin::RebalanceProgress>* Evict(
      grpc::CallbackServerContext* context, const admin::EvictRequest* request) override;

 private:
  // OK, or the UNAUTHENTICATED status to finish with.
  grpc::Status Authenticate(const grpc::CallbackServerContext& context) const;
  // A progress stream running `edit` on the rebalancer (after the token check).
  grpc::ServerWriteReactor<admin::RebalanceProgress>* StreamEdit(
      grpc::CallbackServerContext* context, PlacementEdit edit);

  Membership& membership_;
  PlacementController& placement_;
  Router& router_;
  const ExpertLoadWindow& load_;
  Rebalancer& rebalancer_;
  const std::vector<std::string> accepted_;
};

// The ExpertsResponse for these totals and this placement (`layer`: one layer only).
absl::StatusOr<admin::ExpertsResponse> MakeExpertsResponse(const ExpertLoadTotals& totals,
                                                           const cluster::Placement& placement,
                                                           std::optional<uint32_t> layer);

// The StatusResponse for one consistent-enough view of the three actors.
admin::StatusResponse MakeStatusResponse(const WorkerSnapshot& workers,
                                         const ClusterState& state, const RouterLoad& load);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_ADMIN_SERVICE_H_
