// expert_worker: hosts expert slots for a switchyard cluster. Registers with the
// coordinator, loads the slots it is asked to, and answers dispatches from attention
// workers over the UCX data plane until SIGINT/SIGTERM.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "actor/event_loop.h"
#include "common/cli.h"
#include "common/process_memory.h"
#include "engine/fast_model.h"
#include "engine/model_weights.h"
#include "expert_worker/expert_server.h"
#include "expert_worker/expert_worker_service.h"
#include "kernels/cpu/thread_pool.h"
#include "model/checkpoint/checkpoint.h"
#include "transport/grpc/cluster_client.h"
#include "transport/placement_peers.h"
#include "transport/grpc/cluster_security_flags.h"
#include "transport/grpc/tls_flags.h"
#include "transport/ucx/ucx_data_plane.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "The coordinator's host:port.");
ABSL_FLAG(std::string, model, "", "Checkpoint directory (the same as the coordinator's).");
ABSL_FLAG(int32_t, slots, 0,
          "Expert slots this worker can hold; 0: every routed expert of every MoE layer.");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address this worker's gRPC service listens on and advertises.");
ABSL_FLAG(int32_t, port, 0, "Port of this worker's gRPC service; 0 picks a free one.");
ABSL_FLAG(bool, deterministic, false,
          "FP32 activations in the expert matmuls, so outputs do not depend on how "
          "dispatches were batched (use the same setting on every worker).");
ABSL_FLAG(int32_t, threads, 0,
          "Threads for the kernels; 0: $YARD_NUM_THREADS, else every hardware thread. "
          "Workers sharing a machine should split its cores (`yard up` does).");
ABSL_FLAG(std::string, dispatch_dtype, "bf16",
          "The attention workers' dispatch dtype (bf16, fp8 or fp32); a dispatch in "
          "another one is rejected as a misconfiguration.");
ABSL_FLAG(std::string, ucx_tls, "",
          "UCX transports (UCX_TLS syntax, e.g. tcp,self or rc,self); empty lets UCX choose.");
ABSL_FLAG(std::string, ucx_rndv_scheme, "am",
          "UCX rendezvous scheme for large messages. 'am' because UCX 1.13's TCP rendezvous "
          "can crash when a peer dies mid-transfer; 'auto' lets UCX choose (InfiniBand).");
ABSL_FLAG(int32_t, heartbeat_ms, 500, "Heartbeat interval to the coordinator.");
ABSL_FLAG(int32_t, register_timeout_s, 60, "How long to wait for the coordinator at start.");

namespace yard::expert_worker {
namespace {

int Run() {
  if (!kernels::cpu::ConfigureDefaultThreadPool(absl::GetFlag(FLAGS_threads))) {
    return Fail("--threads: the kernels' thread pool is already running");
  }
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return Fail("--model is required");
  absl::StatusOr<model::ValidatedCheckpoint> opened =
      model::OpenValidatedCheckpoint(model_dir, model::ProgressMode::kNever);
  if (!opened.ok()) return Fail(opened.status().message());
  const model::ModelConfig& config = opened->config;
  absl::StatusOr<engine::ModelViews> views = engine::BindModelViews(config, *opened->checkpoint);
  if (!views.ok()) return Fail(views.status().message());

  int64_t moe_layers = 0;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) moe_layers += config.IsMoeLayer(l);
  const int32_t slots = absl::GetFlag(FLAGS_slots) > 0
                            ? absl::GetFlag(FLAGS_slots)
                            : static_cast<int32_t>(moe_layers * config.n_routed_experts);
  engine::FastModelOptions model_options;
  model_options.deterministic = absl::GetFlag(FLAGS_deterministic);
  ExpertServerOptions server_options;
  server_options.hidden = static_cast<uint32_t>(config.hidden_size);
  server_options.capacity = static_cast<uint32_t>(slots);
  server_options.gemm = engine::GemmOptionsFor(model_options);
  absl::StatusOr<transport::WireDType> dispatch =
      transport::ParseWireDType(absl::GetFlag(FLAGS_dispatch_dtype));
  if (!dispatch.ok()) return Fail(dispatch.status().message());
  server_options.dispatch_dtype = *dispatch;
  ExpertServer server(*views, server_options);

  // Attention workers are data-plane peers: connect to each once (combines go back); a
  // lost connection is made again (Reconnect, from the heartbeat thread).
  transport::PlacementPeers peers("expert_worker");
  transport::UcxOptions ucx;
  ucx.transports = absl::GetFlag(FLAGS_ucx_tls);
  ucx.config.push_back({"RNDV_SCHEME", absl::GetFlag(FLAGS_ucx_rndv_scheme)});
  absl::StatusOr<std::unique_ptr<transport::UcxDataPlane>> data_plane =
      transport::UcxDataPlane::Create(
          ucx, /*self=*/0,
          transport::DataPlaneHandlers{
              [&server](transport::PeerId from, std::vector<uint8_t> message) {
                server.OnDispatch(from, std::move(message));
              },
              [&peers](transport::PeerId peer, absl::Status why) {
                std::fprintf(stderr, "expert_worker: peer %u: %s\n", peer,
                             std::string(why.message()).c_str());
                peers.Forget(peer);
              }});
  if (!data_plane.ok()) return Fail(data_plane.status().message());

  absl::StatusOr<transport::ChannelSecurity> security = transport::ClusterSecurityFromFlags();
  if (!security.ok()) return Fail(security.status().message());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      transport::ServerCredentialsFromFlags();
  if (!credentials.ok()) return Fail(credentials.status().message());
  ExpertWorkerService service(server, security->token);
  int port = 0;
  grpc::ServerBuilder builder;
  const std::string host = absl::GetFlag(FLAGS_host);
  builder.AddListeningPort(host + ":" + std::to_string(absl::GetFlag(FLAGS_port)),
                           *credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || port == 0) return Fail("cannot start the gRPC service");

  // Declared before the client, whose threads use it (a lost identity stops it).
  actor::EventLoop loop(1);
  std::atomic<bool> identity_lost{false};
  std::atomic<bool> data_plane_lost{false};
  transport::ClusterClient coordinator(absl::GetFlag(FLAGS_coordinator), *security);
  cluster::RegisterRequest registration;
  cluster::WorkerInfo* info = registration.mutable_info();
  info->set_role(cluster::ROLE_EXPERT);
  info->set_host(host);
  info->set_pid(static_cast<int32_t>(getpid()));
  info->set_grpc_address(host + ":" + std::to_string(port));
  info->set_data_plane_address((*data_plane)->LocalAddress());
  info->set_slot_capacity(slots);
  absl::StatusOr<cluster::RegisterResponse> registered = coordinator.Register(
      registration, std::chrono::seconds(absl::GetFlag(FLAGS_register_timeout_s)));
  if (!registered.ok()) {
    return Fail("registering with the coordinator: " + std::string(registered.status().message()));
  }
  const uint32_t id = registered->worker_id();
  if (absl::Status s = (*data_plane)->SetSelf(id); !s.ok()) return Fail(s.message());
  server.AttachDataPlane(data_plane->get());
  std::printf("expert_worker %u ready: %d slots, gRPC %s:%d\n", id, slots, host.c_str(), port);
  std::fflush(stdout);

  transport::ClusterClient::HeartbeatHandlers handlers{
      .fill =
          [id, &peers, &data_plane] {
            peers.Reconnect(**data_plane, id);
            cluster::HeartbeatRequest beat;
            beat.set_worker_id(id);
            return beat;
          },
      .registration =
          [&server, &service, &peers, &data_plane, &loop, &data_plane_lost,
           registration](const cluster::HeartbeatResponse& answer) {
            cluster::RegisterRequest again = registration;
            if (answer.placement_version() > 0) {
              // The coordinator serves a placement made without this worker (it was
              // declared dead: stopped or cut off): what the slots hold is stale, and
              // so are its connections, at both ends. Join afresh: empty, and at a new
              // data-plane address that every peer connects to anew.
              server.LoadSlots({}, /*release_others=*/true).IgnoreError();
              if (!peers.Rejoin(**data_plane, again)) {
                data_plane_lost = true;
                loop.Stop();
              }
              return again;
            }
            // The coordinator restarted: it takes these slots over.
            for (const ExpertServer::SlotLoad& l : server.LoadedSlots()) {
              cluster::SlotLoad* slot = again.mutable_info()->add_loaded_slots();
              slot->set_slot(l.slot);
              slot->set_layer(l.layer);
              slot->set_logical_expert(l.logical_expert);
            }
            again.mutable_info()->set_placement_version(service.newest_placement());
            return again;
          }};
  handlers.LogAndStopOnLostIdentity(absl::StrCat("expert_worker ", id), [&] {
    identity_lost = true;
    loop.Stop();
  });
  coordinator.StartHeartbeats(id, std::chrono::milliseconds(absl::GetFlag(FLAGS_heartbeat_ms)),
                              std::move(handlers));
  transport::UcxDataPlane& plane = **data_plane;
  coordinator.StartPlacementWatch(id, [&](const cluster::Placement& placement) {
    peers.Update(plane, id, placement);
  });

  loop.HandleShutdownSignals();
  loop.Start();
  loop.Join();
  std::printf("expert_worker %u: shutting down\n", id);
  grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server.AttachDataPlane(nullptr);  // the plane is destroyed before the server
  return identity_lost || data_plane_lost ? 1 : 0;
}

}  // namespace
}  // namespace yard::expert_worker

int main(int argc, char** argv) {
  yard::RetainFreedHeap();  // message buffers are reused, not faulted in afresh
  yard::ParseCommandLineWithConfig(
      argc, argv,
      "expert_worker --coordinator HOST:PORT --model DIR [--slots N] [--port P] "
      "[--deterministic] [--dispatch-dtype bf16|fp8|fp32] [--ucx-tls TLS] [--config FILE]");
  return yard::expert_worker::Run();
}
