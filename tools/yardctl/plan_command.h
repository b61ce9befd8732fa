// `yardctl plan`: the offline expert-placement planner on a recorded load trace. Reads
// per-layer tokens per logical expert, plans a placement of physical expert slots on
// expert workers (coordinator/placement/eplb_planner.h), prints the imbalance factor
// (max ÷ mean worker load) before and after per layer and overall, the slots that
// change and the planning time, and writes the plan.
//
//   trace (--trace):           {"load": [[tokens per logical expert] per layer]}
//   placement (--current/--out): {"phy2log": [[logical expert per physical slot] per layer]}
//
// "Before" is the --current placement when given, else the identity placement (slot
// i holds expert i mod E); slots_changed counts slots whose expert differs from it.
// With --json the last line is
//   {"imbalance_before": F, "imbalance_after": F, "slots_changed": N, "time_ms": F}
// where the imbalances are means over layers and time_ms is the planner's alone.
#ifndef SWITCHYARD_TOOLS_YARDCTL_PLAN_COMMAND_H_
#define SWITCHYARD_TOOLS_YARDCTL_PLAN_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/placement/eplb_planner.h"

namespace yard::tools {

struct PlanArgs {
  std::string trace_path;    // required
  int32_t slots = 0;         // R, required
  int32_t groups = 1;        // G
  int32_t nodes = 1;         // N
  int32_t workers = 0;       // W, required
  std::string current_path;  // "" for none
  std::string out_path;      // "" to write no plan
  double tolerance = 0.05;   // EplbOptions::stickiness_tolerance
  bool json = false;
};

// The load of a trace's JSON text. InvalidArgument naming what is wrong (not JSON, no
// "load" array, a row that is not an array of numbers, rows of different lengths).
absl::StatusOr<coordinator::placement::ExpertLoad> ParseLoadTrace(absl::string_view json_text);

// The placement of a plan's JSON text; InvalidArgument as above (entries must be
// integers in int32 range; the planner checks them against the trace).
absl::StatusOr<coordinator::placement::Phy2Log> ParsePlacement(absl::string_view json_text);

// {"phy2log": [[...], ...]} on one line.
std::string PlacementJson(const coordinator::placement::Phy2Log& phy2log);

// Runs the command, printing the report to `out`. Errors name the file or flag.
absl::Status RunPlan(const PlanArgs& args, std::ostream& out);

}  // namespace yard::tools

#endif  // SWITCHYARD_TOOLS_YARDCTL_PLAN_COMMAND_H_
