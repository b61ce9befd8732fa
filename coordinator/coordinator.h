// The coordinator process minus main(): loads the model's config and tokenizer, builds
// the actors (Membership, PlacementController, Router) and the three gRPC services on
// one server, and drains on shutdown.
#ifndef SWITCHYARD_COORDINATOR_COORDINATOR_H_
#define SWITCHYARD_COORDINATOR_COORDINATOR_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "actor/actor.h"
#include "actor/compute_pool.h"
#include "coordinator/admin_service.h"
#include "coordinator/clock.h"
#include "coordinator/cluster_service.h"
#include "coordinator/expert_load_window.h"
#include "coordinator/rebalancer.h"
#include "coordinator/expert_loader.h"
#include "coordinator/generation_service.h"
#include "coordinator/membership.h"
#include "coordinator/placement_controller.h"
#include "coordinator/router.h"
#include "model/config.h"
#include "model/tokenizer/tokenizer.h"

namespace yard::coordinator {

inline constexpr char kDefaultTokenizerDir[] = "data/tokenizers/deepseek-v3";

struct CoordinatorOptions {
  // Holds config.json (and tokenizer.json, unless tokenizer_dir says otherwise).
  std::string model_dir;
  // Empty: model_dir when it has tokenizer.json, else kDefaultTokenizerDir (relative to
  // the working directory).
  std::string tokenizer_dir;
  std::string host = "127.0.0.1";
  // 0: the system picks one; Start returns it.
  int port = 0;
  // The cluster is ready with this many of each (and placement v1 published).
  int attention_workers = 1;
  int expert_workers = 1;
  // Slots per (layer, expert) in the initial placement, on distinct expert workers.
  int expert_replicas = 1;
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // Prompt plus generated tokens; capped by the model's max_position_embeddings.
  int64_t max_context = 4096;
  // Threads tokenizing prompts.
  int compute_threads = 2;
  // How far back the expert load statistics reach.
  absl::Duration load_window = absl::Seconds(60);
  // The shared cluster token: Cluster and Admin calls must present it
  // (`authorization: Bearer TOKEN`), and calls to workers carry it. Empty is refused
  // by Create unless insecure_no_auth (tests): then nothing is checked or sent.
  std::string cluster_token;
  bool insecure_no_auth = false;
  // Generate, Tokenize and ModelInfo need one of these (empty: open to anyone).
  std::vector<std::string> api_keys;
  // PEM files for TLS on the server; both empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM roots the workers' certificates chain to: calls to workers use TLS (which
  // keeps the cluster token they carry off the wire); empty: plaintext.
  std::string workers_tls_roots_pem;
  // Generate requests in flight at most; more are RESOURCE_EXHAUSTED (0: no limit).
  int64_t max_requests = 4096;
  // Largest request message accepted (larger: RESOURCE_EXHAUSTED before any handler).
  int max_receive_bytes = 4 << 20;
  // Rebalancing (RebalanceOptions): expert-worker nodes, stickiness tolerance, spare
  // slots per layer for replicas (-1: one per expert worker).
  int32_t rebalance_nodes = 1;
  double rebalance_tolerance = 0.05;
  int32_t redundant_slots = -1;
  // Automatic rebalancing above this mean imbalance (0: off), checked every interval.
  double auto_rebalance_threshold = 0;
  absl::Duration auto_rebalance_interval = absl::Seconds(30);
};

// Thread rule: Create, Start, BeginDrain and Shutdown are called from one thread (main
// or the test); the actors run on `executor`, whose loop must be running for Start's
// server to answer and for Shutdown to complete.
//
// Ownership: `clock` and `loader` (when given) are borrowed and must outlive the
// Coordinator; so must the executor's io_context. Destroy the Coordinator after
// Shutdown and before the event loop.
//
//   created ──Start──▶ serving ──BeginDrain──▶ draining ──Shutdown──▶ stopped
class Coordinator {
 public:
  // Loads config and tokenizer; InvalidArgument / NotFound naming the file.
  // `loader` null: ExpertWorker.LoadSlots over gRPC.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(
      CoordinatorOptions options, const ClockInterface& clock,
      actor::Actor::Executor executor, ExpertLoaderInterface* loader = nullptr);
  ~Coordinator();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Binds host:port and starts serving; returns "host:port" with the bound port.
  absl::StatusOr<std::string> Start();

  // Stops accepting Generate calls (UNAVAILABLE); `idle` runs on the router's strand
  // once no request is in flight.
  void BeginDrain(absl::AnyInvocable<void()> idle);

  // Shuts the server down, cancelling calls still open after `grace`, and waits for
  // every call to end. Blocks.
  void Shutdown(absl::Duration grace);

  const model::ModelConfig& config() const { return config_; }
  const model::Tokenizer& tokenizer() const { return *tokenizer_; }
  const ExpertLoadWindow& load() const { return *load_; }
  int64_t max_context() const { return limits_.max_context; }

 private:
  Coordinator(CoordinatorOptions options, model::ModelConfig config,
              std::unique_ptr<model::Tokenizer> tokenizer, const ClockInterface& clock,
              actor::Actor::Executor executor, ExpertLoaderInterface* loader);

  const CoordinatorOptions options_;
  const model::ModelConfig config_;
  const std::unique_ptr<const model::Tokenizer> tokenizer_;
  RequestLimits limits_;
  actor::ComputePool compute_;
  std::unique_ptr<GrpcExpertLoader> owned_loader_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<PlacementController> placement_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<ExpertLoadWindow> load_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::unique_ptr<GenerationService> generation_;
  std::unique_ptr<ClusterService> cluster_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
};

// The tokenizer directory CoordinatorOptions' rule picks.
std::string ResolveTokenizerDir(const std::string& model_dir, const std::string& tokenizer_dir);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_COORDINATOR_H_
