#include "coordinator/coordinator.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/placement_plan.h"
#include "transport/grpc/auth.h"

namespace yard::coordinator {

std::string ResolveTokenizerDir(const std::string& model_dir, const std::string& tokenizer_dir) {
  if (!tokenizer_dir.empty()) return tokenizer_dir;
  if (!model_dir.empty() && std::ifstream(model_dir + "/tokenizer.json").good()) return model_dir;
  return kDefaultTokenizerDir;
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(
    CoordinatorOptions options, const ClockInterface& clock, actor::Actor::Executor executor,
    ExpertLoaderInterface* loader) {
  if (options.model_dir.empty()) return absl::InvalidArgumentError("--model: required");
  if (options.attention_workers < 0 || options.expert_workers < 0) {
    return absl::InvalidArgumentError(
        "--attention-workers and --expert-workers must be >= 0");
  }
  if (options.heartbeat_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--heartbeat-timeout-ms must be > 0");
  }
  if (options.max_context < 2) return absl::InvalidArgumentError("--max-context must be >= 2");
  if (options.cluster_token.empty() && !options.insecure_no_auth) {
    return absl::InvalidArgumentError(
        "no cluster token: give --cluster-token-file or YARD_TOKEN (or --insecure-no-auth, "
        "for tests only)");
  }
  if (options.max_receive_bytes < 1024) {
    return absl::InvalidArgumentError("--max-request-bytes must be >= 1024");
  }
  absl::StatusOr<model::ModelConfig> config = model::LoadModelConfig(options.model_dir);
  if (!config.ok()) return config.status();
  const std::string tokenizer_dir = ResolveTokenizerDir(options.model_dir, options.tokenizer_dir);
  absl::StatusOr<std::unique_ptr<model::Tokenizer>> tokenizer =
      model::Tokenizer::Load(tokenizer_dir);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat("tokenizer ", tokenizer_dir, ": ",
                                     std::string(tokenizer.status().message())));
  }
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(options), *std::move(config),
                                                      *std::move(tokenizer), clock,
                                                      std::move(executor), loader));
}

Coordinator::Coordinator(CoordinatorOptions options, model::ModelConfig config,
                         std::unique_ptr<model::Tokenizer> tokenizer, const ClockInterface& clock,
                         actor::Actor::Executor executor, ExpertLoaderInterface* loader)
    : options_(std::move(options)),
      config_(std::move(config)),
      tokenizer_(std::move(tokenizer)),
      compute_(std::max(1, options_.compute_threads)) {
  limits_.vocab_size = config_.vocab_size;
  limits_.max_context = config_.max_position_embeddings > 0
                            ? std::min(options_.max_context, config_.max_position_embeddings)
                            : options_.max_context;
  if (loader == nullptr) {
    owned_loader_ = std::make_unique<GrpcExpertLoader>(
        transport::ChannelSecurity{.token = options_.cluster_token,
                                   .tls_roots_pem = options_.workers_tls_roots_pem});
    loader = owned_loader_.get();
  }
  membership_ = std::make_unique<Membership>(
      MembershipOptions{.heartbeat_timeout = options_.heartbeat_timeout}, clock, executor);
  const std::vector<uint32_t> moe_layers = MoeLayers(config_);
  PlacementOptions placement_options;
  placement_options.moe_layers = moe_layers;
  placement_options.num_experts = config_.n_routed_experts;
  placement_options.expected_attention_workers = options_.attention_workers;
  placement_options.expected_expert_workers = options_.expert_workers;
  placement_options.replicas = options_.expert_replicas;
  auto log_line = [](const std::string& line) {
    std::fprintf(stderr, "coordinator: %s\n", line.c_str());
  };
  placement_options.log = log_line;
  Membership* membership = membership_.get();
  placement_ = std::make_unique<PlacementController>(
      std::move(placement_options), *loader,
      [membership](uint64_t version) { membership->SetPlacementVersion(version); }, executor);
  router_ = std::make_unique<Router>(executor, options_.max_requests);
  load_ = std::make_unique<ExpertLoadWindow>(moe_layers, config_.n_routed_experts,
                                             options_.load_window, clock);
  RebalanceOptions rebalance;
  rebalance.moe_layers = moe_layers;
  rebalance.num_experts = config_.n_routed_experts;
  rebalance.groups = static_cast<int32_t>(std::max<int64_t>(1, config_.n_group));
  rebalance.nodes = std::max(1, options_.rebalance_nodes);
  rebalance.tolerance = options_.rebalance_tolerance;
  rebalance.redundant_slots = options_.redundant_slots;
  rebalance.auto_threshold = options_.auto_rebalance_threshold;
  rebalance.auto_interval = options_.auto_rebalance_interval;
  rebalancer_ =
      std::make_unique<Rebalancer>(std::move(rebalance), *placement_, *load_, *loader, executor);
  rebalancer_->StartAuto(log_line);
  membership_->Subscribe(placement_->MakeListener());
  membership_->Subscribe(router_->MakeListener());
  // After the placement's listener: the rebalancer asks it for the state this change made.
  membership_->Subscribe(rebalancer_->MakeListener(log_line));
  membership_->StartLivenessTimer(
      std::max(absl::Milliseconds(10), options_.heartbeat_timeout / 4));

  GenerationServiceDeps deps;
  deps.config = &config_;
  deps.tokenizer = tokenizer_.get();
  deps.router = router_.get();
  deps.placement = placement_.get();
  deps.compute = &compute_;
  deps.executor = executor;
  deps.workers.token = options_.cluster_token;
  deps.workers.tls_roots_pem = options_.workers_tls_roots_pem;
  deps.api_keys = options_.api_keys;
  generation_ = std::make_unique<GenerationService>(std::move(deps), limits_);
  membership_->Subscribe(generation_->MakeListener());
  std::vector<std::string> cluster_tokens;
  if (!options_.cluster_token.empty()) cluster_tokens.push_back(options_.cluster_token);
  cluster_ = std::make_unique<ClusterService>(*membership_, *placement_, *load_, executor,
                                              cluster_tokens);
  admin_ = std::make_unique<AdminService>(*membership_, *placement_, *router_, *load_,
                                          *rebalancer_, cluster_tokens);
}

Coordinator::~Coordinator() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

absl::StatusOr<std::string> Coordinator::Start() {
  int port = 0;
  grpc::ServerBuilder builder;
  const std::string requested = absl::StrCat(options_.host, ":", options_.port);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      transport::ServerCredentials(options_.tls_cert_file, options_.tls_key_file);
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(requested, *credentials, &port);
  builder.SetMaxReceiveMessageSize(options_.max_receive_bytes);
  builder.RegisterService(generation_.get());
  builder.RegisterService(cluster_.get());
  builder.RegisterService(admin_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", requested));
  }
  return absl::StrCat(options_.host, ":", port);
}

void Coordinator::BeginDrain(absl::AnyInvocable<void()> idle) {
  generation_->StopAccepting();
  router_->BeginDrain(std::move(idle));
}

void Coordinator::Shutdown(absl::Duration grace) {
  generation_->StopAccepting();
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
  generation_->WaitForCalls();
}

}  // namespace yard::coordinator
