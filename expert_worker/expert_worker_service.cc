#include "expert_worker/expert_worker_service.h"

#include <string>
#include <vector>

#include "transport/grpc/auth.h"
#include "transport/grpc/grpc_status.h"

namespace yard::expert_worker {

grpc::Status ExpertWorkerService::LoadSlots(grpc::ServerContext* context,
                                            const cluster::LoadSlotsRequest* request,
                                            cluster::LoadSlotsResponse* response) {
  if (grpc::Status auth = transport::CheckBearer(*context, accepted_, "cluster token");
      !auth.ok()) {
    return auth;
  }
  std::vector<ExpertServer::SlotLoad> loads;
  loads.reserve(request->slots_size());
  for (const cluster::SlotLoad& s : request->slots()) {
    loads.push_back({s.slot(), s.layer(), s.logical_expert()});
  }
  const absl::Status status = server_.LoadSlots(loads, request->release_others());
  if (!status.ok()) return transport::ToGrpc(status);
  for (const ExpertServer::SlotLoad& l : loads) response->add_loaded_slots(l.slot);
  uint64_t newest = newest_placement_.load();
  while (request->placement_version() > newest &&
         !newest_placement_.compare_exchange_weak(newest, request->placement_version())) {
  }
  return grpc::Status::OK;
}

grpc::Status ExpertWorkerService::ReleaseSlots(grpc::ServerContext* context,
                                               const cluster::ReleaseSlotsRequest* request,
                                               cluster::ReleaseSlotsResponse*) {
  if (grpc::Status auth = transport::CheckBearer(*context, accepted_, "cluster token");
      !auth.ok()) {
    return auth;
  }
  return transport::ToGrpc(server_.ReleaseSlots({request->slots().begin(), request->slots().end()}));
}

}  // namespace yard::expert_worker
