// `yardctl status` and `yardctl experts`: what the coordinator's Admin service says
// about the cluster, as readable tables or (--json) one JSON line for scripts. Every
// call carries the admin token (--token or YARD_TOKEN).
#ifndef SWITCHYARD_TOOLS_YARDCTL_ADMIN_COMMANDS_H_
#define SWITCHYARD_TOOLS_YARDCTL_ADMIN_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "proto/admin.pb.h"

namespace yard::tools {

struct AdminArgs {
  std::string addr;
  std::string token;  // empty: the call goes without one (and is refused)
  std::string tls_roots_pem;  // empty: plaintext
  bool json = false;
  int64_t timeout_s = 30;
  bool terminal = false;  // progress as bars redrawn in place; else one line per step
};

// The flag's token, else the environment's YARD_TOKEN, else empty.
std::string ResolveAdminToken(const std::string& flag_value);

absl::Status RunStatus(const AdminArgs& args, std::ostream& out);
absl::Status RunExperts(const AdminArgs& args, std::optional<uint32_t> layer, std::ostream& out);
// Plans a rebalance (apply false: dry run, the plan's figures) or runs it, drawing its
// progress (a bar per phase on a terminal, a line per step otherwise); with --json the
// last line is {"imbalance_before", "imbalance_after", "slots_loaded", "slots_released",
// "plan_ms", "placement_version", "applied"}.
absl::Status RunRebalance(const AdminArgs& args, bool apply, std::ostream& out);
// Drains worker `worker_id` (see admin.proto Drain), drawing the progress likewise; with
// --json the last line is {"worker_id": N, "drained": true}.
absl::Status RunDrain(const AdminArgs& args, uint32_t worker_id, std::ostream& out);
// One more replica of (layer, expert) [on worker], or one fewer (the layer's slot at
// index `slot`); progress as for rebalance; with --json the last line is the same
// summary as rebalance's.
absl::Status RunReplicate(const AdminArgs& args, uint32_t layer, uint32_t expert,
                          std::optional<uint32_t> worker, std::ostream& out);
absl::Status RunEvict(const AdminArgs& args, uint32_t layer, uint32_t slot, std::ostream& out);

// The printers, apart from the calls (tests).
void PrintStatus(const admin::StatusResponse& status, bool json, std::ostream& out);
void PrintExperts(const admin::ExpertsResponse& experts, bool json, std::ostream& out);
void PrintRebalancePlan(const admin::RebalanceProgress& plan, std::ostream& out);

}  // namespace yard::tools

#endif  // SWITCHYARD_TOOLS_YARDCTL_ADMIN_COMMANDS_H_
