// yardctl: the command-line client of a switchyard cluster.
//   yardctl generate --addr HOST:PORT (--prompt TEXT | --chat TEXT) --max-tokens N
//       [--temperature T] [--seed S] [--logprobs K] [--json]
//   yardctl health --addr HOST:PORT [--json]
//   yardctl plan --trace FILE.json --slots R --groups G --nodes N --workers W
//       [--current PLAN.json] [--out PLAN.json] [--tolerance T] [--json]
//   yardctl status --addr HOST:PORT [--token T] [--json]
//   yardctl experts --addr HOST:PORT [--layer L] [--token T] [--json]
//   yardctl rebalance --addr HOST:PORT (--dry-run | --apply) [--token T] [--json]
//   yardctl drain WORKER --addr HOST:PORT [--token T] [--json]
//   yardctl replicate --layer L --expert E [--worker W] --addr HOST:PORT [--token T] [--json]
//   yardctl evict --layer L --slot S --addr HOST:PORT [--token T] [--json]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>

#include <grpcpp/grpcpp.h>

#include "proto/generation.grpc.pb.h"
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "common/cli.h"
#include "tools/yardctl/admin_commands.h"
#include "tools/yardctl/generate_command.h"
#include "tools/yardctl/plan_command.h"
#include "transport/grpc/auth.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "The coordinator's host:port.");
ABSL_FLAG(std::string, prompt, "", "generate: the prompt text (raw, no chat template).");
ABSL_FLAG(std::string, chat, "", "generate: one user message, rendered with the chat template.");
ABSL_FLAG(int32_t, max_tokens, 16, "generate: tokens to generate at most.");
ABSL_FLAG(float, temperature, 0.0f, "generate: sampling temperature; 0 is greedy.");
ABSL_FLAG(int64_t, seed, -1, "generate: sampling seed (-1: the server picks).");
ABSL_FLAG(int32_t, logprobs, 0, "generate: top-k log-probabilities per token (0..20).");
ABSL_FLAG(bool, json, false,
          "Print one JSON line at the end instead of streaming text (generate: "
          "{\"prompt_token_ids\", \"token_ids\", \"text\", \"finish_reason\", \"logprobs\"}; "
          "plan: after the report, {\"imbalance_before\", \"imbalance_after\", "
          "\"slots_changed\", \"time_ms\"}).");
ABSL_FLAG(int64_t, timeout_s, 600, "Deadline of the call, seconds.");
ABSL_FLAG(std::string, token, "",
          "status, experts: the admin token (default: the environment's YARD_TOKEN; ./yard up "
          "writes it to .yard-run/token).");
ABSL_FLAG(std::string, api_key_file, "",
          "generate: file whose first line is the API key (default: the environment's "
          "YARD_API_KEY); needed when the coordinator has --api-key-file.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM root certificate(s) of a coordinator serving TLS (--tls-cert); empty: "
          "plaintext.");
ABSL_FLAG(int32_t, layer, -1,
          "experts: only this MoE layer (-1: all); replicate, evict: the layer (required).");
ABSL_FLAG(int32_t, expert, -1, "replicate: the logical expert.");
ABSL_FLAG(int32_t, worker, -1,
          "replicate: the expert worker to hold the replica (-1: the least loaded without it).");
ABSL_FLAG(int32_t, slot, -1,
          "evict: the slot's index in its layer, as `yardctl experts --json` lists them.");
ABSL_FLAG(bool, dry_run, false, "rebalance: show the plan and its predicted imbalance only.");
ABSL_FLAG(bool, apply, false, "rebalance: run it live, with progress; returns when done.");
ABSL_FLAG(std::string, trace, "",
          "plan: load trace, {\"load\": [[tokens per logical expert] per layer]}.");
ABSL_FLAG(int32_t, slots, 0, "plan: physical expert slots per layer (R >= experts).");
ABSL_FLAG(int32_t, groups, 1, "plan: expert groups (G divides the experts).");
ABSL_FLAG(int32_t, nodes, 1,
          "plan: nodes (N divides --workers); G % N != 0 plans globally, as one node.");
ABSL_FLAG(int32_t, workers, 0, "plan: expert workers (W divides --slots).");
ABSL_FLAG(std::string, current, "",
          "plan: the placement in use, {\"phy2log\": [[logical expert per slot] per layer]}; "
          "the plan keeps experts in place where that costs little balance.");
ABSL_FLAG(std::string, out, "", "plan: write the plan here, in --current's format.");
ABSL_FLAG(double, tolerance, 0.05,
          "plan: keep the current placement of a layer while its imbalance is within this "
          "fraction of a fresh plan's.");

namespace {

// Exit code 0 when the cluster serves (every worker up, placement published), 2 when
// it answers but does not serve yet, 1 when it cannot be reached.
int Health(const std::string& addr, const std::string& tls_roots, bool json, int64_t timeout_s) {
  auto stub = yard::generation::Generation::NewStub(yard::transport::CreateChannel(
      addr, yard::transport::ChannelSecurity{.tls_roots_pem = tls_roots}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  yard::generation::HealthResponse health;
  const grpc::Status status = stub->Health(&context, {}, &health);
  if (!status.ok()) return yard::Fail(addr + ": " + status.error_message());
  if (json) {
    std::cout << "{\"serving\": " << (health.serving() ? "true" : "false")
              << ", \"attention_workers\": " << health.attention_workers()
              << ", \"expert_workers\": " << health.expert_workers()
              << ", \"experts_complete\": " << (health.experts_complete() ? "true" : "false")
              << "}\n";
  } else {
    std::cout << (health.serving() ? "serving" : "not serving") << ": "
              << health.attention_workers() << " attention workers, "
              << health.expert_workers() << " expert workers\n";
  }
  return health.serving() ? 0 : 2;
}

// 0, or the error printed (its code's name first) and 1.
int ExitCode(const absl::Status& status) {
  if (status.ok()) return 0;
  return yard::Fail(absl::StatusCodeToString(status.code()) + ": " + std::string(status.message()));
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> positional = yard::ParseCommandLineWithConfig(
      argc, argv,
      "yardctl COMMAND [FLAGS]\n"
      "  generate --addr HOST:PORT (--prompt TEXT | --chat TEXT) --max-tokens N "
      "[--temperature T] [--seed S] [--logprobs K] [--json]\n"
      "  health --addr HOST:PORT [--json]   (exit 0: serving, 2: not yet, 1: unreachable)\n"
      "  plan --trace FILE.json --slots R --groups G --nodes N --workers W "
      "[--current PLAN.json] [--out PLAN.json] [--tolerance T] [--json]\n"
      "  status --addr HOST:PORT [--token T] [--json]   (workers, placement, requests)\n"
      "  experts --addr HOST:PORT [--layer L] [--token T] [--json]   (load per expert and slot)\n"
      "  rebalance --addr HOST:PORT (--dry-run | --apply) [--token T] [--json]\n"
      "  drain WORKER --addr HOST:PORT [--token T] [--json]   (then it can be stopped)\n"
      "  replicate --layer L --expert E [--worker W] --addr HOST:PORT [--token T] [--json]\n"
      "  evict --layer L --slot S --addr HOST:PORT [--token T] [--json]");
  const bool drain = positional.size() == 3 && positional[1] == "drain";
  if (positional.size() != 2 && !drain) {
    return yard::Fail(
        "expected one command (generate, health, plan, status, experts, rebalance, drain "
        "WORKER, replicate, evict); see --help");
  }
  const std::string& command = positional[1];
  std::string tls_roots;
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca); !ca.empty()) {
    absl::StatusOr<std::string> pem = yard::transport::ReadPem(ca);
    if (!pem.ok()) return yard::Fail("--tls-ca " + std::string(pem.status().message()));
    tls_roots = *std::move(pem);
  }
  if (command == "health") {
    return Health(absl::GetFlag(FLAGS_addr), tls_roots, absl::GetFlag(FLAGS_json), 5);
  }
  if (command == "generate") {
    yard::tools::GenerateArgs args;
    args.addr = absl::GetFlag(FLAGS_addr);
    absl::StatusOr<std::string> key = yard::transport::ResolveSecret(
        absl::GetFlag(FLAGS_api_key_file), "YARD_API_KEY", "--api-key-file");
    if (!key.ok()) return yard::Fail(std::string(key.status().message()));
    args.security = {.token = *std::move(key), .tls_roots_pem = tls_roots};
    if (!absl::GetFlag(FLAGS_prompt).empty()) args.prompt = absl::GetFlag(FLAGS_prompt);
    if (!absl::GetFlag(FLAGS_chat).empty()) args.chat = absl::GetFlag(FLAGS_chat);
    args.max_tokens = absl::GetFlag(FLAGS_max_tokens);
    args.temperature = absl::GetFlag(FLAGS_temperature);
    if (absl::GetFlag(FLAGS_seed) >= 0) args.seed = absl::GetFlag(FLAGS_seed);
    args.logprobs = absl::GetFlag(FLAGS_logprobs);
    args.json = absl::GetFlag(FLAGS_json);
    args.timeout_s = absl::GetFlag(FLAGS_timeout_s);
    const absl::Status status = yard::tools::RunGenerate(args, std::cout);
    return ExitCode(status);
  }
  if (command == "plan") {
    yard::tools::PlanArgs args;
    args.trace_path = absl::GetFlag(FLAGS_trace);
    args.slots = absl::GetFlag(FLAGS_slots);
    args.groups = absl::GetFlag(FLAGS_groups);
    args.nodes = absl::GetFlag(FLAGS_nodes);
    args.workers = absl::GetFlag(FLAGS_workers);
    args.current_path = absl::GetFlag(FLAGS_current);
    args.out_path = absl::GetFlag(FLAGS_out);
    args.tolerance = absl::GetFlag(FLAGS_tolerance);
    args.json = absl::GetFlag(FLAGS_json);
    const absl::Status status = yard::tools::RunPlan(args, std::cout);
    return ExitCode(status);
  }
  if (command == "status" || command == "experts" || command == "rebalance" ||
      command == "replicate" || command == "evict" || drain) {
    yard::tools::AdminArgs args;
    args.addr = absl::GetFlag(FLAGS_addr);
    args.token = yard::tools::ResolveAdminToken(absl::GetFlag(FLAGS_token));
    args.tls_roots_pem = tls_roots;
    args.json = absl::GetFlag(FLAGS_json);
    args.timeout_s = std::min<int64_t>(absl::GetFlag(FLAGS_timeout_s), 60);
    args.terminal = isatty(STDOUT_FILENO) != 0;
    std::optional<uint32_t> layer;
    if (absl::GetFlag(FLAGS_layer) >= 0) layer = static_cast<uint32_t>(absl::GetFlag(FLAGS_layer));
    if (command == "rebalance" && absl::GetFlag(FLAGS_dry_run) == absl::GetFlag(FLAGS_apply)) {
      return yard::Fail("rebalance: give exactly one of --dry-run and --apply");
    }
    if (command == "replicate" || command == "evict") {
      const int32_t l = absl::GetFlag(FLAGS_layer);
      const int32_t e = absl::GetFlag(FLAGS_expert);
      const int32_t w = absl::GetFlag(FLAGS_worker);
      const int32_t s = absl::GetFlag(FLAGS_slot);
      if (l < 0) return yard::Fail(command + ": --layer is required");
      if (command == "replicate") {
        if (e < 0) return yard::Fail("replicate: --expert is required");
        std::optional<uint32_t> on;
        if (w >= 0) on = static_cast<uint32_t>(w);
        return ExitCode(yard::tools::RunReplicate(args, l, e, on, std::cout));
      }
      if (s < 0) return yard::Fail("evict: --slot is required");
      return ExitCode(yard::tools::RunEvict(args, l, s, std::cout));
    }
    if (drain) {
      uint32_t worker = 0;
      if (!absl::SimpleAtoi(positional[2], &worker)) {
        return yard::Fail("drain: WORKER must be a worker id (see yardctl status)");
      }
      return ExitCode(yard::tools::RunDrain(args, worker, std::cout));
    }
    const absl::Status status =
        command == "status"    ? yard::tools::RunStatus(args, std::cout)
        : command == "experts" ? yard::tools::RunExperts(args, layer, std::cout)
                               : yard::tools::RunRebalance(args, absl::GetFlag(FLAGS_apply), std::cout);
    return ExitCode(status);
  }
  return yard::Fail("unknown command '" + command + "'; see --help");
}
