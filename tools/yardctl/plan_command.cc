#include "tools/yardctl/plan_command.h"

#include <chrono>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace yard::tools {
namespace {

using coordinator::placement::EplbOptions;
using coordinator::placement::EplbPlan;
using coordinator::placement::ExpertLoad;
using coordinator::placement::Phy2Log;

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, " ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": read failed"));
  return text.str();
}

// root[key] as an array of arrays, each element accepted by `element_ok`.
absl::StatusOr<const nlohmann::json*> Rows(const nlohmann::json& root, const char* key,
                                           const char* element_kind,
                                           bool (*element_ok)(const nlohmann::json&)) {
  if (root.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!root.is_object() || !root.contains(key)) {
    return absl::InvalidArgumentError(absl::StrCat("expected an object with \"", key, "\""));
  }
  const nlohmann::json& rows = root[key];
  if (!rows.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" is not an array of layers"));
  }
  for (size_t layer = 0; layer < rows.size(); ++layer) {
    if (!rows[layer].is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", key, "\"[", layer, "] is not an array of ", element_kind));
    }
    for (size_t i = 0; i < rows[layer].size(); ++i) {
      if (!element_ok(rows[layer][i])) {
        return absl::InvalidArgumentError(absl::StrCat("\"", key, "\"[", layer, "][", i, "] is ",
                                                       rows[layer][i].dump(), ", not ",
                                                       element_kind));
      }
    }
  }
  return &rows;
}

bool IsNumber(const nlohmann::json& v) { return v.is_number(); }

bool IsInt32(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
  }
  if (!v.is_number_integer()) return false;
  const int64_t i = v.get<int64_t>();
  return i >= std::numeric_limits<int32_t>::min() && i <= std::numeric_limits<int32_t>::max();
}

absl::Status InFile(const absl::Status& status, absl::string_view flag, const std::string& path) {
  return absl::Status(status.code(), absl::StrCat(flag, " ", path, ": ", status.message()));
}

}  // namespace

absl::StatusOr<ExpertLoad> ParseLoadTrace(absl::string_view json_text) {
  const nlohmann::json root = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                                    /*allow_exceptions=*/false);
  absl::StatusOr<const nlohmann::json*> rows = Rows(root, "load", "numbers", IsNumber);
  if (!rows.ok()) return rows.status();
  ExpertLoad load;
  load.reserve((*rows)->size());
  for (const nlohmann::json& row : **rows) {
    std::vector<double>& layer = load.emplace_back();
    layer.reserve(row.size());
    for (const nlohmann::json& v : row) layer.push_back(v.get<double>());
  }
  if (load.empty()) return absl::InvalidArgumentError("\"load\" has no layers");
  for (size_t layer = 0; layer < load.size(); ++layer) {
    if (load[layer].size() != load[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat("\"load\"[", layer, "] has ",
                                                     load[layer].size(),
                                                     " experts, \"load\"[0] has ", load[0].size()));
    }
  }
  return load;
}

absl::StatusOr<Phy2Log> ParsePlacement(absl::string_view json_text) {
  const nlohmann::json root = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr,
                                                    /*allow_exceptions=*/false);
  absl::StatusOr<const nlohmann::json*> rows = Rows(root, "phy2log", "int32 expert ids", IsInt32);
  if (!rows.ok()) return rows.status();
  Phy2Log phy2log;
  phy2log.reserve((*rows)->size());
  for (const nlohmann::json& row : **rows) {
    std::vector<int32_t>& layer = phy2log.emplace_back();
    layer.reserve(row.size());
    for (const nlohmann::json& v : row) layer.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return phy2log;
}

std::string PlacementJson(const Phy2Log& phy2log) {
  std::string text = "{\"phy2log\": [";
  for (size_t layer = 0; layer < phy2log.size(); ++layer) {
    if (layer > 0) text += ", ";
    text += "[";
    for (size_t s = 0; s < phy2log[layer].size(); ++s) {
      if (s > 0) text += ", ";
      absl::StrAppend(&text, phy2log[layer][s]);
    }
    text += "]";
  }
  text += "]}";
  return text;
}

absl::Status RunPlan(const PlanArgs& args, std::ostream& out) {
  if (args.trace_path.empty()) return absl::InvalidArgumentError("--trace is required");
  if (args.slots <= 0) return absl::InvalidArgumentError("--slots is required (> 0)");
  if (args.workers <= 0) return absl::InvalidArgumentError("--workers is required (> 0)");
  absl::StatusOr<std::string> trace_text = ReadFile(args.trace_path, "--trace");
  if (!trace_text.ok()) return trace_text.status();
  absl::StatusOr<ExpertLoad> load = ParseLoadTrace(*trace_text);
  if (!load.ok()) return InFile(load.status(), "--trace", args.trace_path);
  std::optional<Phy2Log> current;
  if (!args.current_path.empty()) {
    absl::StatusOr<std::string> text = ReadFile(args.current_path, "--current");
    if (!text.ok()) return text.status();
    absl::StatusOr<Phy2Log> parsed = ParsePlacement(*text);
    if (!parsed.ok()) return InFile(parsed.status(), "--current", args.current_path);
    current = *std::move(parsed);
  }

  EplbOptions options;
  options.num_slots = args.slots;
  options.num_groups = args.groups;
  options.num_nodes = args.nodes;
  options.num_workers = args.workers;
  options.stickiness_tolerance = args.tolerance;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<EplbPlan> plan =
      coordinator::placement::PlanPlacement(*load, options, current ? &*current : nullptr);
  const double time_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!plan.ok()) {
    const absl::string_view what = current ? "--trace / --current" : "--trace";
    return absl::Status(plan.status().code(), absl::StrCat(what, ": ", plan.status().message()));
  }

  const int32_t layers = static_cast<int32_t>(load->size());
  const int32_t experts = static_cast<int32_t>((*load)[0].size());
  const Phy2Log before =
      current ? *current : coordinator::placement::IdentityPlacement(layers, experts, args.slots);
  absl::StatusOr<std::vector<double>> before_imbalance =
      coordinator::placement::LayerImbalance(*load, before, args.workers);
  if (!before_imbalance.ok()) return before_imbalance.status();
  const double mean_before = coordinator::placement::MeanImbalance(*before_imbalance);
  const int64_t changed = coordinator::placement::CountChangedSlots(plan->phy2log, before);

  out << absl::StrFormat(
      "%d layers x %d experts -> %d slots on %d workers, %s policy (%d groups, "
      "%d nodes); before: %s\n",
      layers, experts, args.slots, args.workers, plan->hierarchical ? "hierarchical" : "global",
      args.groups, args.nodes, current ? "--current" : "identity (slot i -> expert i mod E)");
  out << "layer  before     after  changed" << (current ? "  kept" : "") << "\n";
  for (int32_t layer = 0; layer < layers; ++layer) {
    int64_t layer_changed = 0;
    for (int32_t s = 0; s < args.slots; ++s) {
      layer_changed += plan->phy2log[layer][s] != before[layer][s];
    }
    out << absl::StrFormat("%5d  %6.4f  %6.4f  %7d", layer, (*before_imbalance)[layer],
                           plan->imbalance[layer], layer_changed);
    if (current) out << (plan->sticky[layer] ? "  current" : "  fresh");
    out << "\n";
  }
  out << absl::StrFormat(
      "imbalance (max/mean worker load, mean over layers): %.4f -> %.4f; %d of %d slots "
      "change; planned in %.3f ms\n",
      mean_before, plan->mean_imbalance, changed, static_cast<int64_t>(layers) * args.slots,
      time_ms);

  if (!args.out_path.empty()) {
    std::ofstream file(args.out_path, std::ios::binary | std::ios::trunc);
    file << PlacementJson(plan->phy2log) << "\n";
    file.close();
    if (!file)
      return absl::InvalidArgumentError(absl::StrCat("--out ", args.out_path, ": write failed"));
    out << "plan written to " << args.out_path << "\n";
  }
  if (args.json) {
    nlohmann::ordered_json summary;
    summary["imbalance_before"] = mean_before;
    summary["imbalance_after"] = plan->mean_imbalance;
    summary["slots_changed"] = changed;
    summary["time_ms"] = time_ms;
    out << summary.dump() << "\n";
  }
  return absl::OkStatus();
}

}  // namespace yard::tools
