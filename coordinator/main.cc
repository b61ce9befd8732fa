// The coordinator process: the cluster's control plane (DESIGN.md). Prints
// "coordinator listening on HOST:PORT" once serving; on SIGINT/SIGTERM it stops
// accepting Generate calls, waits for those in flight (up to --drain-timeout-s) and
// exits 0.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "actor/event_loop.h"
#include "common/cli.h"
#include "coordinator/clock.h"
#include "coordinator/coordinator.h"
#include "transport/grpc/auth.h"
#include "transport/grpc/tls_flags.h"

ABSL_FLAG(std::string, model, "", "model directory with config.json (required)");
ABSL_FLAG(std::string, tokenizer, "",
          "tokenizer directory (tokenizer.json, tokenizer_config.json); default: --model if it "
          "has tokenizer.json, else data/tokenizers/deepseek-v3");
ABSL_FLAG(std::string, host, "127.0.0.1", "address to listen on");
ABSL_FLAG(int, port, 0, "port to listen on; 0 picks a free one (printed on stdout)");
ABSL_FLAG(int, attention_workers, 1, "attention workers the cluster needs to be ready");
ABSL_FLAG(int, expert_workers, 1,
          "expert workers the cluster needs to be ready; the initial placement starts once "
          "this many have registered");
ABSL_FLAG(int, expert_replicas, 1,
          "replicas of every expert in the initial placement, on distinct expert workers; "
          "2 or more lets a lost expert worker's tokens go to survivors at once");
ABSL_FLAG(int64_t, heartbeat_timeout_ms, 10000,
          "a worker silent for this long is marked dead");
ABSL_FLAG(int64_t, max_context, 4096,
          "maximum prompt + generated tokens per request (capped by the model's "
          "max_position_embeddings)");
ABSL_FLAG(int, drain_timeout_s, 30,
          "on SIGINT/SIGTERM, how long to wait for in-flight requests before exiting");
ABSL_FLAG(int, threads, 4, "event-loop threads running the coordinator's actors");
ABSL_FLAG(std::string, cluster_token_file, "",
          "file whose first line is the cluster token: workers' Cluster calls and Admin "
          "calls (yardctl) must present it, and calls to workers carry it; default: the "
          "environment's YARD_TOKEN. Without either the coordinator refuses to start "
          "(unless --insecure-no-auth)");
ABSL_FLAG(std::string, admin_token_file, "", "old name of --cluster-token-file");
ABSL_FLAG(bool, insecure_no_auth, false,
          "allow starting without a cluster token: Cluster and Admin calls are then not "
          "authenticated (tests on a private machine only); a token, when given, still rules");
ABSL_FLAG(std::string, api_key_file, "",
          "file of API keys, one per line: Generate, Tokenize and ModelInfo then need "
          "`authorization: Bearer KEY` for one of them (Health stays open); default: open");
ABSL_FLAG(int64_t, max_requests, 4096,
          "Generate requests in flight at most (streaming or queued on the workers); more "
          "are refused with RESOURCE_EXHAUSTED; 0: no limit");
ABSL_FLAG(int32_t, max_request_bytes, 4 << 20,
          "largest request message accepted; a larger one is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, rebalance_nodes, 1,
          "expert-worker nodes for the placement planner's hierarchical policy (groups "
          "packed onto nodes); 1: one node (global policy)");
ABSL_FLAG(double, rebalance_tolerance, 0.05,
          "a rebalance keeps a layer's experts in place while its imbalance is within this "
          "fraction of a fresh plan's");
ABSL_FLAG(int, redundant_slots, -1,
          "physical expert slots per MoE layer beyond one per expert, for replicas of hot "
          "experts (-1: one per expert worker)");
ABSL_FLAG(double, auto_rebalance_threshold, 0,
          "rebalance automatically when the mean expert imbalance (max/mean worker load) over "
          "the load window exceeds this, e.g. 1.3; 0: only when asked (yardctl rebalance)");
ABSL_FLAG(int64_t, auto_rebalance_interval_s, 30, "how often that imbalance is checked, seconds");
ABSL_FLAG(int64_t, load_window_s, 60,
          "how far back the expert load statistics (routed tokens per expert) reach, seconds");

int main(int argc, char** argv) {
  yard::ParseCommandLineWithConfig(argc, argv,
                                   "coordinator --model DIR [--port P] [--attention-workers N] "
                                   "[--expert-workers M] [--config FILE]\n"
                                   "The switchyard control plane: membership, expert placement, "
                                   "request routing.");

  yard::coordinator::CoordinatorOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model);
  options.tokenizer_dir = absl::GetFlag(FLAGS_tokenizer);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.attention_workers = absl::GetFlag(FLAGS_attention_workers);
  options.expert_workers = absl::GetFlag(FLAGS_expert_workers);
  options.expert_replicas = absl::GetFlag(FLAGS_expert_replicas);
  if (options.expert_replicas < 1 || options.expert_replicas > options.expert_workers) {
    return yard::Fail("--expert-replicas: must be in [1, --expert-workers]");
  }
  options.heartbeat_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_timeout_ms));
  options.max_context = absl::GetFlag(FLAGS_max_context);
  if (absl::GetFlag(FLAGS_load_window_s) < 1) return yard::Fail("--load-window-s: must be >= 1");
  options.load_window = absl::Seconds(absl::GetFlag(FLAGS_load_window_s));
  options.rebalance_nodes = absl::GetFlag(FLAGS_rebalance_nodes);
  options.rebalance_tolerance = absl::GetFlag(FLAGS_rebalance_tolerance);
  options.redundant_slots = absl::GetFlag(FLAGS_redundant_slots);
  options.auto_rebalance_threshold = absl::GetFlag(FLAGS_auto_rebalance_threshold);
  options.auto_rebalance_interval = absl::Seconds(absl::GetFlag(FLAGS_auto_rebalance_interval_s));
  if (absl::GetFlag(FLAGS_auto_rebalance_interval_s) < 1) {
    return yard::Fail("--auto-rebalance-interval-s: must be >= 1");
  }
  if (options.rebalance_nodes < 1) return yard::Fail("--rebalance-nodes: must be >= 1");
  if (!(options.rebalance_tolerance >= 0)) return yard::Fail("--rebalance-tolerance: must be >= 0");
  if (options.port < 0 || options.port > 65535) return yard::Fail("--port: must be in [0, 65535]");
  const std::string token_file = absl::GetFlag(FLAGS_cluster_token_file).empty()
                                     ? absl::GetFlag(FLAGS_admin_token_file)
                                     : absl::GetFlag(FLAGS_cluster_token_file);
  absl::StatusOr<std::string> token =
      yard::transport::ResolveSecret(token_file, "YARD_TOKEN", "--cluster-token-file");
  if (!token.ok()) return yard::Fail(token.status().message());
  options.cluster_token = *std::move(token);
  options.insecure_no_auth = absl::GetFlag(FLAGS_insecure_no_auth);
  if (const std::string file = absl::GetFlag(FLAGS_api_key_file); !file.empty()) {
    absl::StatusOr<std::vector<std::string>> keys =
        yard::transport::ReadSecrets(file, "--api-key-file");
    if (!keys.ok()) return yard::Fail(keys.status().message());
    options.api_keys = *std::move(keys);
  }
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  absl::StatusOr<std::string> worker_roots = yard::transport::TlsRootsFromFlags();
  if (!worker_roots.ok()) return yard::Fail(worker_roots.status().message());
  options.workers_tls_roots_pem = *std::move(worker_roots);
  options.max_receive_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  options.max_requests = absl::GetFlag(FLAGS_max_requests);
  if (options.max_requests < 0) return yard::Fail("--max-requests: must be >= 0");
  if (options.cluster_token.empty() && options.insecure_no_auth) {
    std::cerr << "coordinator: --insecure-no-auth: Cluster and Admin calls are not "
                 "authenticated\n";
  }
  if (absl::GetFlag(FLAGS_threads) < 1) return yard::Fail("--threads: must be >= 1");

  yard::actor::EventLoop loop(absl::GetFlag(FLAGS_threads));
  std::promise<void> signalled;
  loop.HandleShutdownSignals([&signalled](int) { signalled.set_value(); });

  yard::coordinator::RealClock clock;
  absl::StatusOr<std::unique_ptr<yard::coordinator::Coordinator>> coordinator =
      yard::coordinator::Coordinator::Create(options, clock, loop.executor());
  if (!coordinator.ok()) return yard::Fail(coordinator.status().ToString());
  loop.Start();
  absl::StatusOr<std::string> address = (*coordinator)->Start();
  if (!address.ok()) {
    loop.Stop();
    loop.Join();
    return yard::Fail(address.status().ToString());
  }
  std::cout << "coordinator listening on " << *address << std::endl;

  signalled.get_future().wait();
  std::cerr << "coordinator: draining (up to " << absl::GetFlag(FLAGS_drain_timeout_s)
            << " s)" << std::endl;
  auto drained = std::make_shared<std::promise<void>>();
  std::future<void> idle = drained->get_future();
  (*coordinator)->BeginDrain([drained] { drained->set_value(); });
  idle.wait_for(std::chrono::seconds(absl::GetFlag(FLAGS_drain_timeout_s)));
  (*coordinator)->Shutdown(absl::ZeroDuration());
  // Actors are destroyed only once no loop thread can be running their tasks.
  loop.Stop();
  loop.Join();
  coordinator->reset();
  return 0;
}
