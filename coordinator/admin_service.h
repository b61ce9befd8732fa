// The operator's Admin service (yardctl): cluster status.
#ifndef SWITCHYARD_COORDINATOR_ADMIN_SERVICE_H_
#define SWITCHYARD_COORDINATOR_ADMIN_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "coordinator/membership.h"
#include "coordinator/placement_controller.h"
#include "coordinator/router.h"
#include "proto/admin.grpc.pb.h"

namespace yard::coordinator {

// Status asks Membership, then PlacementController, then Router (each answer posts
// the next question) and finishes from the last answer.
//
// Thread rule: handlers run on gRPC threads and only post. Ownership: the three
// actors are borrowed and must outlive the service and the server.
class AdminService final : public admin::Admin::CallbackService {
 public:
  AdminService(Membership& membership, PlacementController& placement, Router& router)
      : membership_(membership), placement_(placement), router_(router) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context,
                                   const admin::StatusRequest* request,
                                   admin::StatusResponse* response) override;

 private:
  Membership& membership_;
  PlacementController& placement_;
  Router& router_;
};

// The StatusResponse for one consistent-enough view of the three actors.
admin::StatusResponse MakeStatusResponse(const WorkerSnapshot& workers,
                                         const ClusterState& state, const RouterLoad& load);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_ADMIN_SERVICE_H_
