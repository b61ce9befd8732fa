// The public Generation service: validates, tokenizes and routes each Generate to an
// attention worker and relays its stream; Tokenize, ModelInfo and Health.
#ifndef SWITCHYARD_COORDINATOR_GENERATION_SERVICE_H_
#define SWITCHYARD_COORDINATOR_GENERATION_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor.h"
#include "actor/compute_pool.h"
#include "coordinator/placement_controller.h"
#include "coordinator/request_validation.h"
#include "coordinator/router.h"
#include "coordinator/worker_streams.h"
#include "model/config.h"
#include "model/tokenizer/tokenizer.h"
#include "proto/cluster.grpc.pb.h"
#include "proto/generation.grpc.pb.h"
#include "transport/grpc/auth.h"

namespace yard::coordinator {

// The collaborators the service borrows; all must outlive it.
struct GenerationServiceDeps {
  const model::ModelConfig* config = nullptr;
  const model::Tokenizer* tokenizer = nullptr;
  Router* router = nullptr;
  PlacementController* placement = nullptr;
  // Tokenizing runs here, off gRPC's threads and the actors' strands.
  actor::ComputePool* compute = nullptr;
  // Each Generate call is a small actor on this executor.
  actor::Actor::Executor executor;
  // What calls to attention workers present (the cluster token).
  transport::ChannelSecurity workers;
  // Generate, Tokenize and ModelInfo need `authorization: Bearer KEY` for one of these;
  // empty: open. Health is always open (load balancers probe it).
  std::vector<std::string> api_keys;
};

// gRPC callback service. Every Generate is a GenerateCall: a reactor whose gRPC
// callbacks only post to its own actor, which validates, has the prompt tokenized on
// the compute pool, asks the Router for a worker, calls AttentionWorker.Run and relays
// each RunResponse (one write at a time, reading the next only after the write
// completed). Client cancellation cancels the worker call and sends
// AttentionWorker.Cancel. A worker declared dead has its calls cancelled
// (WorkerStreams), and they resume on another.
//
// Thread rule: handlers run on gRPC threads and only post; StopAccepting and
// WaitForCalls may be called from any thread. Ownership: borrows `deps`; keeps one
// channel per attention worker address.
class GenerationService final : public generation::Generation::CallbackService {
 public:
  GenerationService(GenerationServiceDeps deps, RequestLimits limits);
  ~GenerationService() override;

  grpc::ServerWriteReactor<generation::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const generation::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const generation::TokenizeRequest* request,
                                     generation::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfo(grpc::CallbackServerContext* context,
                                      const generation::ModelInfoRequest* request,
                                      generation::ModelInfoResponse* response) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const generation::HealthRequest* request,
                                   generation::HealthResponse* response) override;

  // New Generate calls answer UNAVAILABLE from now on.
  void StopAccepting() { accepting_.store(false); }
  // Blocks until every GenerateCall has been destroyed (after the server shut down).
  void WaitForCalls() ABSL_LOCKS_EXCLUDED(mu_);

  // A Membership::Listener: cancels the worker streams of attention workers declared
  // dead, so that their requests resume elsewhere. Safe to outlive the service.
  Membership::Listener MakeListener();

  const GenerationServiceDeps& deps() const { return deps_; }
  WorkerStreams& worker_streams() { return *worker_streams_; }
  const RequestLimits& limits() const { return limits_; }
  bool accepting() const { return accepting_.load(); }
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  void CallEnded() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const GenerationServiceDeps deps_;
  const RequestLimits limits_;
  std::atomic<bool> accepting_{true};
  const std::shared_ptr<WorkerStreams> worker_streams_ = std::make_shared<WorkerStreams>();
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_GENERATION_SERVICE_H_
