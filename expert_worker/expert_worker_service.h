// The expert worker's gRPC service (cluster.proto ExpertWorker): the coordinator asks
// it to load slots (beside those in use) and to release slots no placement in use
// still names. gRPC's threads only hand the request to the ExpertServer, which applies
// it on its compute thread between batches.
#ifndef SWITCHYARD_EXPERT_WORKER_EXPERT_WORKER_SERVICE_H_
#define SWITCHYARD_EXPERT_WORKER_EXPERT_WORKER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "expert_worker/expert_server.h"
#include "proto/cluster.grpc.pb.h"

namespace yard::expert_worker {

// Every call must present `cluster_token` (transport::CheckBearer; empty: no check).
//
// Thread-safe (gRPC calls it on its threads). Borrows the server, which must outlive it.
class ExpertWorkerService final : public cluster::ExpertWorker::Service {
 public:
  ExpertWorkerService(ExpertServer& server, const std::string& cluster_token)
      : server_(server) {
    if (!cluster_token.empty()) accepted_.push_back(cluster_token);
  }

  grpc::Status LoadSlots(grpc::ServerContext* context, const cluster::LoadSlotsRequest* request,
                         cluster::LoadSlotsResponse* response) override;
  grpc::Status ReleaseSlots(grpc::ServerContext* context,
                            const cluster::ReleaseSlotsRequest* request,
                            cluster::ReleaseSlotsResponse* response) override;

  // The newest placement version a LoadSlots named (reported when re-registering, so
  // that a restarted coordinator numbers its placements above it).
  uint64_t newest_placement() const { return newest_placement_.load(); }

 private:
  ExpertServer& server_;
  std::vector<std::string> accepted_;
  std::atomic<uint64_t> newest_placement_{0};
};

}  // namespace yard::expert_worker

#endif  // SWITCHYARD_EXPERT_WORKER_EXPERT_WORKER_SERVICE_H_
