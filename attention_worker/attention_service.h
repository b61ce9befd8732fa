// The attention worker's gRPC service (cluster.proto AttentionWorker): the coordinator
// hands it requests (Run, a server stream of tokens) and cancellations. A handler only
// posts to the EngineRunner and relays the engine's events from a per-call queue; it
// never touches the engine itself.
#ifndef SWITCHYARD_ATTENTION_WORKER_ATTENTION_SERVICE_H_
#define SWITCHYARD_ATTENTION_WORKER_ATTENTION_SERVICE_H_

#include "attention_worker/engine_runner.h"
#include <string>
#include <vector>

#include "engine/request.h"
#include "proto/cluster.grpc.pb.h"

namespace yard::attention_worker {

// The engine request for a RunRequest (a resumed request continues after the tokens
// already streamed: they join the prompt and count against max_tokens).
// InvalidArgument for fields the engine could not take (max_tokens <= tokens already
// generated, logprobs outside [0, 20]).
absl::StatusOr<engine::Request> ToEngineRequest(const cluster::RunRequest& run);

// One streamed engine event as a RunResponse.
cluster::RunResponse ToRunResponse(const engine::StreamEvent& event);

// Every call must present `cluster_token` (transport::CheckBearer; empty: no check).
//
// Thread-safe (gRPC calls it on its threads). Borrows the runner, which must outlive it.
class AttentionWorkerService final : public cluster::AttentionWorker::Service {
 public:
  AttentionWorkerService(EngineRunner& runner, const std::string& cluster_token)
      : runner_(runner) {
    if (!cluster_token.empty()) accepted_.push_back(cluster_token);
  }

  grpc::Status Run(grpc::ServerContext* context, const cluster::RunRequest* request,
                   grpc::ServerWriter<cluster::RunResponse>* writer) override;
  grpc::Status Cancel(grpc::ServerContext* context, const cluster::CancelRequest* request,
                      cluster::CancelResponse* response) override;

 private:
  EngineRunner& runner_;
  std::vector<std::string> accepted_;
};

}  // namespace yard::attention_worker

#endif  // SWITCHYARD_ATTENTION_WORKER_ATTENTION_SERVICE_H_
