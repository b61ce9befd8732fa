#include "coordinator/admin_service.h"

#include <map>
#include <utility>

namespace yard::coordinator {

admin::StatusResponse MakeStatusResponse(const WorkerSnapshot& workers,
                                         const ClusterState& state, const RouterLoad& load) {
  std::map<uint32_t, int> slots_used;
  for (const cluster::LayerPlacement& layer : state.placement.layers()) {
    for (const cluster::Slot& slot : layer.slots()) ++slots_used[slot.worker_id()];
  }
  admin::StatusResponse response;
  for (const WorkerRecord& worker : workers) {
    admin::WorkerStatus* status = response.add_workers();
    status->set_id(worker.id);
    const bool expert = worker.info.role() == cluster::ROLE_EXPERT;
    status->set_role(expert ? "expert" : "attention");
    status->set_host(worker.info.host());
    status->set_pid(worker.info.pid());
    status->set_healthy(worker.alive);
    if (expert) {
      const int used = slots_used.contains(worker.id) ? slots_used.at(worker.id) : 0;
      status->set_slots_used(used);
      status->set_slots_free(std::max(0, worker.info.slot_capacity() - used));
    } else {
      auto running = load.running_by_worker.find(worker.id);
      status->set_running_requests(running == load.running_by_worker.end() ? 0
                                                                           : running->second);
    }
  }
  response.set_placement_version(state.placement.version());
  response.set_requests_in_flight(load.requests_in_flight);
  return response;
}

grpc::ServerUnaryReactor* AdminService::Status(grpc::CallbackServerContext* context,
                                               const admin::StatusRequest*,
                                               admin::StatusResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  PlacementController* placement = &placement_;
  Router* router = &router_;
  membership_.Snapshot([reactor, response, placement, router](WorkerSnapshot workers) {
    placement->GetState([reactor, response, router,
                         workers = std::move(workers)](ClusterState state) mutable {
      router->GetLoad([reactor, response, workers = std::move(workers),
                       state = std::move(state)](RouterLoad load) {
        *response = MakeStatusResponse(workers, state, load);
        reactor->Finish(grpc::Status::OK);
      });
    });
  });
  return reactor;
}

}  // namespace yard::coordinator
