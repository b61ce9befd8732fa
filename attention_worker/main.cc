// attention_worker: one data-parallel replica of everything that is not a routed
// expert (DESIGN.md). Runs the fast engine with its MoE layers' routed experts on
// expert workers over the UCX data plane; serves the coordinator's AttentionWorker
// calls until SIGINT/SIGTERM.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "actor/event_loop.h"
#include "attention_worker/attention_service.h"
#include "attention_worker/engine_runner.h"
#include "attention_worker/expert_routing.h"
#include "attention_worker/remote_expert_backend.h"
#include "common/cli.h"
#include "common/process_memory.h"
#include "engine/dispatch_precision.h"
#include "engine/local_engine.h"
#include "kernels/cpu/thread_pool.h"
#include "model/tokenizer/tokenizer.h"
#include "transport/grpc/cluster_client.h"
#include "transport/placement_peers.h"
#include "transport/grpc/cluster_security_flags.h"
#include "transport/grpc/tls_flags.h"
#include "transport/ucx/ucx_data_plane.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "The coordinator's host:port.");
ABSL_FLAG(std::string, model, "", "Checkpoint directory (the same as the coordinator's).");
ABSL_FLAG(std::string, tokenizer, "",
          "Tokenizer directory (text and stop strings); default: the model directory.");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address this worker's gRPC service listens on and advertises.");
ABSL_FLAG(int32_t, port, 0, "Port of this worker's gRPC service; 0 picks a free one.");
ABSL_FLAG(bool, deterministic, false,
          "FP32 activations everywhere: a request's logits do not depend on its batch or "
          "the thread count (the default mode rounds prefill activations to BF16).");
ABSL_FLAG(int32_t, threads, 0,
          "Threads for the kernels; 0: $YARD_NUM_THREADS, else every hardware thread. "
          "Workers sharing a machine should split its cores (`yard up` does).");
ABSL_FLAG(std::string, dispatch_dtype, "bf16",
          "Activations sent to expert workers: bf16, fp8 (e4m3, one scale per 128 values) "
          "or fp32.");
ABSL_FLAG(std::string, ucx_tls, "",
          "UCX transports (UCX_TLS syntax, e.g. tcp,self or rc,self); empty lets UCX choose.");
ABSL_FLAG(std::string, ucx_rndv_scheme, "am",
          "UCX rendezvous scheme for large messages. 'am' because UCX 1.13's TCP rendezvous "
          "can crash when a peer dies mid-transfer; 'auto' lets UCX choose (InfiniBand).");
ABSL_FLAG(int32_t, max_num_seqs, 64, "Sequences decoded together at most.");
ABSL_FLAG(int64_t, max_waiting, 256,
          "Requests waiting for a place in the batch at most; more are refused with "
          "RESOURCE_EXHAUSTED (the coordinator tries another attention worker); 0: no limit.");
ABSL_FLAG(int32_t, micro_batches, 2,
          "2: a batch of two or more sequences runs as two micro-batches that take turns "
          "per MoE layer, so one's attention overlaps the other's expert round trip; 1: off.");
ABSL_FLAG(int64_t, kv_cache_mb, 1024, "Memory for the latent KV cache, MiB.");
ABSL_FLAG(int64_t, max_context, 4096, "Longest sequence (prompt + generated).");
ABSL_FLAG(int32_t, heartbeat_ms, 500, "Heartbeat interval to the coordinator.");
ABSL_FLAG(int32_t, load_report_ms, 2000,
          "Interval of the routed-token counts per expert and slot sent to the coordinator "
          "(rounded up to whole heartbeats).");
ABSL_FLAG(int32_t, expert_timeout_ms, 30000,
          "Expert rows of a step still unanswered this long after dispatch (lost workers' "
          "rows re-sent, experts without a live replica waited for) fail the step.");
ABSL_FLAG(int32_t, expert_resend_ms, 10000,
          "A dispatch not answered within this is sent again to another replica of its "
          "experts, when there is one.");
ABSL_FLAG(int32_t, register_timeout_s, 60, "How long to wait for the coordinator at start.");

namespace yard::attention_worker {
namespace {

int Run() {
  if (!kernels::cpu::ConfigureDefaultThreadPool(absl::GetFlag(FLAGS_threads))) {
    return Fail("--threads: the kernels' thread pool is already running");
  }
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return Fail("--model is required");
  const std::string tokenizer_dir =
      absl::GetFlag(FLAGS_tokenizer).empty() ? model_dir : absl::GetFlag(FLAGS_tokenizer);
  absl::StatusOr<std::unique_ptr<model::Tokenizer>> tokenizer =
      model::Tokenizer::Load(tokenizer_dir);
  if (!tokenizer.ok()) return Fail(tokenizer.status().message());
  absl::StatusOr<transport::WireDType> wire =
      transport::ParseWireDType(absl::GetFlag(FLAGS_dispatch_dtype));
  if (!wire.ok()) return Fail(wire.status().message());

  // The data plane's handlers reach the backend, created just after it: the pointer is
  // set before any peer is connected, so no message can arrive earlier.
  std::atomic<RemoteExpertBackend*> backend{nullptr};
  // A lost peer is forgotten, so that a placement naming it again connects afresh.
  transport::PlacementPeers peers("attention_worker");
  transport::UcxOptions ucx;
  ucx.transports = absl::GetFlag(FLAGS_ucx_tls);
  ucx.config.push_back({"RNDV_SCHEME", absl::GetFlag(FLAGS_ucx_rndv_scheme)});
  absl::StatusOr<std::unique_ptr<transport::UcxDataPlane>> data_plane =
      transport::UcxDataPlane::Create(
          ucx, /*self=*/0,
          transport::DataPlaneHandlers{
              [&backend](transport::PeerId from, std::vector<uint8_t> message) {
                if (RemoteExpertBackend* b = backend.load()) b->OnCombine(from, std::move(message));
              },
              [&](transport::PeerId peer, absl::Status why) {
                std::fprintf(stderr, "attention_worker: peer %u: %s\n", peer,
                             std::string(why.message()).c_str());
                peers.Forget(peer);
                if (RemoteExpertBackend* b = backend.load()) b->OnPeerError(peer, why);
              }});
  if (!data_plane.ok()) return Fail(data_plane.status().message());
  transport::UcxDataPlane& plane = **data_plane;

  engine::LocalEngineOptions engine_options;
  engine_options.deterministic = absl::GetFlag(FLAGS_deterministic);
  engine_options.dispatch_precision = engine::DispatchPrecision::kFp32;  // rounded on the wire
  engine_options.max_context = absl::GetFlag(FLAGS_max_context);
  engine_options.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_mb) << 20;
  engine_options.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  engine_options.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  engine_options.micro_batches = absl::GetFlag(FLAGS_micro_batches);
  if (engine_options.micro_batches < 1 || engine_options.micro_batches > 2) {
    return Fail("--micro-batches must be 1 or 2");
  }
  // The engine is opened first (it validates the checkpoint); its experts slot is
  // filled by the remote backend, which needs the model's hidden size.
  absl::StatusOr<model::ModelConfig> config = model::LoadModelConfig(model_dir);
  if (!config.ok()) return Fail(config.status().message());
  RemoteExpertOptions remote_options;
  remote_options.hidden = config->hidden_size;
  remote_options.num_experts = config->n_routed_experts;
  remote_options.dispatch_dtype = *wire;
  remote_options.timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_expert_timeout_ms));
  remote_options.resend_after = std::chrono::milliseconds(absl::GetFlag(FLAGS_expert_resend_ms));
  RemoteExpertBackend remote(plane, remote_options);
  backend.store(&remote);
  engine_options.experts = &remote;
  absl::StatusOr<std::unique_ptr<engine::LocalEngine>> local =
      engine::LocalEngine::Open(model_dir, tokenizer->get(), engine_options);
  if (!local.ok()) return Fail(local.status().message());
  std::vector<bool> moe_layers(config->num_hidden_layers);
  for (int64_t l = 0; l < config->num_hidden_layers; ++l) moe_layers[l] = config->IsMoeLayer(l);

  // Placements arrive on the client's watch thread and are installed by the engine
  // thread at a step boundary; the heartbeat thread then acknowledges them.
  std::mutex placement_mu;
  std::shared_ptr<const ExpertRouting> pending_routing;
  // Installs are counted, not compared by version: a restarted coordinator numbers
  // its placements afresh, and each install is acknowledged once.
  std::atomic<uint64_t> installed_version{0};
  std::atomic<uint64_t> installs{0};
  auto runner = std::make_unique<EngineRunner>((*local)->engine(), [&] {
    std::shared_ptr<const ExpertRouting> next;
    {
      std::lock_guard<std::mutex> lock(placement_mu);
      next.swap(pending_routing);
    }
    if (next != nullptr) {
      remote.SetRouting(next);
      installed_version.store(next->version());
      installs.fetch_add(1);
    }
  });

  absl::StatusOr<transport::ChannelSecurity> security = transport::ClusterSecurityFromFlags();
  if (!security.ok()) return Fail(security.status().message());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      transport::ServerCredentialsFromFlags();
  if (!credentials.ok()) return Fail(credentials.status().message());
  AttentionWorkerService service(*runner, security->token);
  int port = 0;
  grpc::ServerBuilder builder;
  const std::string host = absl::GetFlag(FLAGS_host);
  builder.AddListeningPort(host + ":" + std::to_string(absl::GetFlag(FLAGS_port)),
                           *credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || port == 0) return Fail("cannot start the gRPC service");

  std::atomic<uint64_t> acked_installs{0};
  actor::EventLoop loop(1);  // before the client: a lost identity stops it
  std::atomic<bool> identity_lost{false};
  std::atomic<bool> data_plane_lost{false};
  auto coordinator = std::make_unique<transport::ClusterClient>(absl::GetFlag(FLAGS_coordinator),
                                                                 *security);
  // Its threads' callbacks use it through this pointer (valid until they are joined).
  transport::ClusterClient* const client = coordinator.get();
  cluster::RegisterRequest registration;
  cluster::WorkerInfo* info = registration.mutable_info();
  info->set_role(cluster::ROLE_ATTENTION);
  info->set_host(host);
  info->set_pid(static_cast<int32_t>(getpid()));
  info->set_grpc_address(host + ":" + std::to_string(port));
  info->set_data_plane_address(plane.LocalAddress());
  absl::StatusOr<cluster::RegisterResponse> registered = coordinator->Register(
      registration, std::chrono::seconds(absl::GetFlag(FLAGS_register_timeout_s)));
  if (!registered.ok()) {
    return Fail("registering with the coordinator: " + std::string(registered.status().message()));
  }
  const uint32_t id = registered->worker_id();
  if (absl::Status s = plane.SetSelf(id); !s.ok()) return Fail(s.message());
  std::printf("attention_worker %u ready: gRPC %s:%d, dispatch %s\n", id, host.c_str(), port,
              absl::GetFlag(FLAGS_dispatch_dtype).c_str());
  std::fflush(stdout);

  coordinator->StartPlacementWatch(id, [&](const cluster::Placement& placement) {
    peers.Update(plane, id, placement, [&remote](transport::PeerId peer) {
      remote.OnPeerConnected(peer);
    });
    absl::StatusOr<ExpertRouting> routing =
        ExpertRouting::FromPlacement(placement, moe_layers, config->n_routed_experts);
    if (!routing.ok()) {
      std::fprintf(stderr, "attention_worker: rejected placement v%lu: %s\n",
                   static_cast<unsigned long>(placement.version()),
                   std::string(routing.status().message()).c_str());
      return;
    }
    auto next = std::make_shared<const ExpertRouting>(*std::move(routing));
    remote.OfferRouting(next);  // a step waiting for a lost expert may use it at once
    std::lock_guard<std::mutex> lock(placement_mu);
    pending_routing = std::move(next);
    runner->Post([](engine::Engine&) {});  // wake the engine thread to install it
  });
  const auto heartbeat = std::chrono::milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  const auto load_interval = std::chrono::milliseconds(absl::GetFlag(FLAGS_load_report_ms));
  auto last_load_report = std::chrono::steady_clock::now();
  auto fill_heartbeat = [&] {
    peers.Reconnect(plane, id, [&remote](transport::PeerId peer) { remote.OnPeerConnected(peer); });
    const uint64_t installed = installs.load();
    if (installed > acked_installs.load() &&
        client->AckPlacement(id, installed_version.load()).ok()) {
      acked_installs.store(installed);
    }
    // The heartbeat thread also carries the load counts (a report lost to an error
    // is dropped: the coordinator's window is statistics, not accounting).
    if (std::chrono::steady_clock::now() - last_load_report >= load_interval) {
      last_load_report = std::chrono::steady_clock::now();
      for (const cluster::LoadReport& report : remote.TakeLoad(id)) {
        if (absl::Status s = client->ReportLoad(report); !s.ok()) {
          std::fprintf(stderr, "attention_worker: load report: %s\n",
                       std::string(s.message()).c_str());
        }
      }
    }
    const EngineLoad load = runner->load();
    cluster::HeartbeatRequest beat;
    beat.set_worker_id(id);
    beat.set_running_requests(static_cast<int32_t>(load.active_requests));
    beat.set_kv_blocks_used(load.kv_blocks_used);
    beat.set_kv_blocks_total(load.kv_blocks_total);
    const DecodeStepTimes steps = runner->TakeDecodeSteps();
    beat.mutable_decode_steps()->set_count(steps.count);
    beat.mutable_decode_steps()->set_p50_ms(steps.p50_ms);
    beat.mutable_decode_steps()->set_max_ms(steps.max_ms);
    return beat;
  };
  transport::ClusterClient::HeartbeatHandlers handlers{
      .fill = fill_heartbeat,
      .registration =
          [&installed_version, &peers, &plane, &loop, &data_plane_lost,
           registration](const cluster::HeartbeatResponse& answer) {
            cluster::RegisterRequest again = registration;
            again.mutable_info()->set_placement_version(installed_version.load());
            if (answer.placement_version() > 0) {
              // Declared dead by a coordinator that kept running (this worker was
              // stopped or cut off; its requests resumed elsewhere): its data-plane
              // connections are stale at both ends, so it joins at a new address.
              if (!peers.Rejoin(plane, again)) {
                data_plane_lost = true;
                loop.Stop();
              }
            }
            return again;
          }};
  handlers.LogAndStopOnLostIdentity(absl::StrCat("attention_worker ", id), [&] {
    identity_lost = true;
    loop.Stop();
  });
  coordinator->StartHeartbeats(id, heartbeat, std::move(handlers));

  loop.HandleShutdownSignals();
  loop.Start();
  loop.Join();
  std::printf("attention_worker %u: shutting down\n", id);
  grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  // Stop whatever could still reach the data plane or the backend, then the data
  // plane (its threads call into the backend), before the backend goes.
  coordinator.reset();
  runner.reset();
  backend.store(nullptr);
  data_plane->reset();
  return identity_lost || data_plane_lost ? 1 : 0;
}

}  // namespace
}  // namespace yard::attention_worker

int main(int argc, char** argv) {
  yard::RetainFreedHeap();  // message buffers are reused, not faulted in afresh
  yard::ParseCommandLineWithConfig(
      argc, argv,
      "attention_worker --coordinator HOST:PORT --model DIR [--port P] [--deterministic] "
      "[--dispatch-dtype bf16|fp8|fp32] [--ucx-tls TLS] [--config FILE]");
  return yard::attention_worker::Run();
}
