// libFuzzer target: yardctl plan's two JSON parsers (load trace, placement) on arbitrary
// text must return a status, never crash; whatever they accept, the planner must then
// take or refuse with a status too, and a parsed placement must print and re-parse to
// the same table.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tools/yardctl/plan_command.h"

namespace placement = yard::coordinator::placement;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<placement::ExpertLoad> load = yard::tools::ParseLoadTrace(text);
  if (!load.ok() && load.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
  absl::StatusOr<placement::Phy2Log> plan = yard::tools::ParsePlacement(text);
  if (!plan.ok() && plan.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
  if (plan.ok()) {
    absl::StatusOr<placement::Phy2Log> again =
        yard::tools::ParsePlacement(yard::tools::PlacementJson(*plan));
    if (!again.ok() || *again != *plan) std::abort();
  }
  if (load.ok() && !load->empty() && load->size() < 64 && (*load)[0].size() < 512) {
    placement::EplbOptions options;
    options.num_slots = static_cast<int32_t>((*load)[0].size()) + 2;
    options.num_workers = 2;
    options.num_groups = 1;
    options.num_nodes = 1;
    absl::StatusOr<placement::EplbPlan> planned = placement::PlanPlacement(*load, options);
    if (!planned.ok() && planned.status().code() != absl::StatusCode::kInvalidArgument) {
      std::abort();
    }
  }
  return 0;
}
