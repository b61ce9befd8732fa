#include "tools/yardctl/admin_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "proto/admin.grpc.pb.h"
#include "transport/grpc/auth.h"
#include "transport/grpc/grpc_status.h"

namespace yard::tools {
namespace {

std::unique_ptr<admin::Admin::Stub> Connect(const AdminArgs& args) {
  return admin::Admin::NewStub(
      transport::CreateChannel(args.addr, transport::ChannelSecurity{.tls_roots_pem = args.tls_roots_pem}));
}

void Prepare(const AdminArgs& args, grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(args.timeout_s));
  if (!args.token.empty()) context.AddMetadata("authorization", "Bearer " + args.token);
}

// One character per expert: its tokens relative to the layer's hottest, darker = more.
std::string HeatStrip(const google::protobuf::RepeatedField<uint64_t>& tokens) {
  static const char* kShades[] = {" ", "░", "▒", "▓", "█"};
  const uint64_t max = tokens.empty() ? 0 : *std::max_element(tokens.begin(), tokens.end());
  std::string strip;
  for (uint64_t n : tokens) {
    const int shade = max == 0 || n == 0 ? 0 : 1 + static_cast<int>((n * 3.999) / max);
    strip += kShades[std::min(shade, 4)];
  }
  return strip;
}

}  // namespace

std::string ResolveAdminToken(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  const char* env = std::getenv("YARD_TOKEN");
  return env != nullptr ? env : "";
}

void PrintStatus(const admin::StatusResponse& status, bool json, std::ostream& out) {
  if (json) {
    nlohmann::json j;
    j["workers"] = nlohmann::json::array();
    for (const admin::WorkerStatus& w : status.workers()) {
      j["workers"].push_back({{"id", w.id()},
                              {"role", w.role()},
                              {"host", w.host()},
                              {"pid", w.pid()},
                              {"healthy", w.healthy()},
                              {"slots_used", w.slots_used()},
                              {"slots_free", w.slots_free()},
                              {"running_requests", w.running_requests()},
                              {"decode_steps", w.decode_steps()},
                              {"decode_step_p50_ms", w.decode_step_p50_ms()},
                              {"decode_step_max_ms", w.decode_step_max_ms()}});
    }
    j["placement_version"] = status.placement_version();
    j["requests_in_flight"] = status.requests_in_flight();
    out << j.dump() << "\n";
    return;
  }
  out << absl::StrFormat("placement version %d, %d request(s) in flight\n",
                         status.placement_version(), status.requests_in_flight());
  out << absl::StrFormat("%6s  %-9s  %-16s  %8s  %-7s  %10s  %10s  %8s\n", "id", "role", "host",
                         "pid", "health", "slots used", "slots free", "running");
  for (const admin::WorkerStatus& w : status.workers()) {
    const bool expert = w.role() == "expert";
    out << absl::StrFormat("%6d  %-9s  %-16s  %8d  %-7s  %10s  %10s  %8s\n", w.id(), w.role(),
                           w.host(), w.pid(), w.healthy() ? "healthy" : "lost",
                           expert ? absl::StrCat(w.slots_used()) : "-",
                           expert ? absl::StrCat(w.slots_free()) : "-",
                           expert ? "-" : absl::StrCat(w.running_requests()));
  }
}

void PrintExperts(const admin::ExpertsResponse& experts, bool json, std::ostream& out) {
  if (json) {
    nlohmann::json j;
    j["placement_version"] = experts.placement_version();
    j["window_seconds"] = experts.window_seconds();
    j["reports"] = experts.reports();
    j["layers"] = nlohmann::json::array();
    for (const admin::LayerLoadStatus& l : experts.layers()) {
      nlohmann::json layer;
      layer["layer"] = l.layer();
      layer["imbalance"] = l.imbalance();
      layer["tokens_per_expert"] =
          std::vector<uint64_t>(l.tokens_per_expert().begin(), l.tokens_per_expert().end());
      layer["slots"] = nlohmann::json::array();
      for (const admin::SlotLoadStatus& s : l.slots()) {
        layer["slots"].push_back({{"worker_id", s.worker_id()},
                                  {"slot", s.slot()},
                                  {"logical_expert", s.logical_expert()},
                                  {"tokens", s.tokens()}});
      }
      j["layers"].push_back(std::move(layer));
    }
    out << j.dump() << "\n";
    return;
  }
  out << absl::StrFormat("placement version %d; load over the last %.1f s (%d reports)\n",
                         experts.placement_version(), experts.window_seconds(), experts.reports());
  for (const admin::LayerLoadStatus& l : experts.layers()) {
    uint64_t total = 0, max = 0;
    for (uint64_t n : l.tokens_per_expert()) {
      total += n;
      max = std::max(max, n);
    }
    out << absl::StrFormat("layer %3d  imbalance %.3f  tokens %d  hottest expert %d\n", l.layer(),
                           l.imbalance(), total, max);
    out << "  experts |" << HeatStrip(l.tokens_per_expert()) << "|\n";
    google::protobuf::RepeatedField<uint64_t> slot_tokens;
    for (const admin::SlotLoadStatus& s : l.slots()) slot_tokens.Add(s.tokens());
    out << "  slots   |" << HeatStrip(slot_tokens) << "|\n";
  }
}

absl::Status RunStatus(const AdminArgs& args, std::ostream& out) {
  grpc::ClientContext context;
  Prepare(args, context);
  admin::StatusResponse response;
  const grpc::Status status = Connect(args)->Status(&context, admin::StatusRequest(), &response);
  if (!status.ok()) return transport::FromGrpc(status);
  PrintStatus(response, args.json, out);
  return absl::OkStatus();
}

absl::Status RunExperts(const AdminArgs& args, std::optional<uint32_t> layer, std::ostream& out) {
  grpc::ClientContext context;
  Prepare(args, context);
  admin::ExpertsRequest request;
  if (layer.has_value()) request.set_layer(*layer);
  admin::ExpertsResponse response;
  const grpc::Status status = Connect(args)->Experts(&context, request, &response);
  if (!status.ok()) return transport::FromGrpc(status);
  PrintExperts(response, args.json, out);
  return absl::OkStatus();
}

void PrintRebalancePlan(const admin::RebalanceProgress& plan, std::ostream& out) {
  out << absl::StrFormat("plan for placement v%d: %s\n", plan.placement_version(), plan.message());
  out << absl::StrFormat("  %6s  %16s  %16s\n", "layer", "imbalance before", "imbalance after");
  for (int i = 0; i < plan.layers_size(); ++i) {
    out << absl::StrFormat("  %6d  %16.3f  %16.3f\n", plan.layers(i),
                           plan.layer_imbalance_before(i), plan.layer_imbalance_after(i));
  }
  out << absl::StrFormat(
      "  overall imbalance %.3f -> %.3f; %d slots to load, %d to release; planned in %.2f ms\n",
      plan.imbalance_before(), plan.imbalance_after(), plan.slots_loaded(), plan.slots_released(),
      plan.plan_ms());
}

// Reads a progress stream to its end: the "plan" message printed as a table, every
// other one as a bar (redrawn in place on a terminal). `plan` gets the plan's figures.
absl::Status FollowProgress(grpc::ClientReader<admin::RebalanceProgress>& reader,
                            const AdminArgs& args, std::ostream& out,
                            admin::RebalanceProgress& plan) {
  admin::RebalanceProgress progress;
  std::string last_phase;
  while (reader.Read(&progress)) {
    if (progress.phase() == "plan") {
      plan = progress;
      if (!args.json) PrintRebalancePlan(plan, out);
      continue;
    }
    if (args.json) continue;
    constexpr int kWidth = 30;
    const int total = std::max(progress.total(), 1);
    const int filled = kWidth * std::min(progress.done(), total) / total;
    if (args.terminal && !last_phase.empty() && progress.phase() != last_phase) out << "\n";
    last_phase = progress.phase();
    out << (args.terminal ? "\r" : "")
        << absl::StrFormat("  %-8s [%s%s] %d/%d %s", progress.phase(), std::string(filled, '#'),
                           std::string(kWidth - filled, '.'), progress.done(), progress.total(),
                           progress.message())
        << (args.terminal ? "" : "\n") << std::flush;
  }
  const grpc::Status status = reader.Finish();
  if (args.terminal && !last_phase.empty() && !args.json) out << "\n";
  return transport::FromGrpc(status);
}

// After a plan ran (or, without `applied`, was only shown): the summary.
void PrintOutcome(const admin::RebalanceProgress& plan, bool applied, bool json, std::ostream& out) {
  if (json) {
    nlohmann::json j = {{"imbalance_before", plan.imbalance_before()},
                        {"imbalance_after", plan.imbalance_after()},
                        {"slots_loaded", plan.slots_loaded()},
                        {"slots_released", plan.slots_released()},
                        {"plan_ms", plan.plan_ms()},
                        {"placement_version", plan.placement_version()},
                        {"applied", applied}};
    out << j.dump() << "\n";
  } else {
    out << (applied ? absl::StrFormat("placement v%d in force\n", plan.placement_version())
                    : std::string("dry run: nothing changed (--apply runs it)\n"));
  }
}

// Opens a progress stream with `start` and follows it to its end; the plan's figures.
template <typename Start>
absl::StatusOr<admin::RebalanceProgress> FollowCall(const AdminArgs& args, std::ostream& out,
                                                    Start start) {
  grpc::ClientContext context;
  Prepare(args, context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  admin::RebalanceProgress plan;
  std::unique_ptr<admin::Admin::Stub> stub = Connect(args);
  if (absl::Status s = FollowProgress(*start(*stub, context), args, out, plan); !s.ok()) return s;
  return plan;
}

// FollowCall, then the summary.
template <typename Start>
absl::Status RunPlacementCall(const AdminArgs& args, bool applied, std::ostream& out, Start start) {
  absl::StatusOr<admin::RebalanceProgress> plan = FollowCall(args, out, start);
  if (!plan.ok()) return plan.status();
  PrintOutcome(*plan, applied, args.json, out);
  return absl::OkStatus();
}

absl::Status RunRebalance(const AdminArgs& args, bool apply, std::ostream& out) {
  admin::RebalanceRequest request;
  request.set_apply(apply);
  return RunPlacementCall(args, apply, out, [&](admin::Admin::Stub& stub, grpc::ClientContext& c) {
    return stub.Rebalance(&c, request);
  });
}

absl::Status RunReplicate(const AdminArgs& args, uint32_t layer, uint32_t expert,
                          std::optional<uint32_t> worker, std::ostream& out) {
  admin::ReplicateRequest request;
  request.set_layer(layer);
  request.set_expert(expert);
  if (worker.has_value()) request.set_worker_id(*worker);
  return RunPlacementCall(args, true, out, [&](admin::Admin::Stub& stub, grpc::ClientContext& c) {
    return stub.Replicate(&c, request);
  });
}

absl::Status RunEvict(const AdminArgs& args, uint32_t layer, uint32_t slot, std::ostream& out) {
  admin::EvictRequest request;
  request.set_layer(layer);
  request.set_slot(slot);
  return RunPlacementCall(args, true, out, [&](admin::Admin::Stub& stub, grpc::ClientContext& c) {
    return stub.Evict(&c, request);
  });
}

absl::Status RunDrain(const AdminArgs& args, uint32_t worker_id, std::ostream& out) {
  admin::DrainRequest request;
  request.set_worker_id(worker_id);
  absl::StatusOr<admin::RebalanceProgress> drained =
      FollowCall(args, out, [&](admin::Admin::Stub& stub, grpc::ClientContext& c) {
        return stub.Drain(&c, request);
      });
  if (!drained.ok()) return drained.status();
  if (args.json) {
    out << nlohmann::json({{"worker_id", worker_id}, {"drained", true}}).dump() << "\n";
  } else {
    out << absl::StrFormat("worker %d drained: it serves nothing and can be stopped\n", worker_id);
  }
  return absl::OkStatus();
}

}  // namespace yard::tools
