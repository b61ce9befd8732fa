// The coordinator's sliding window of routed-token counts (issue #5): what attention
// workers report (cluster.LoadReport), summed over the last `window` per (MoE layer,
// logical expert), and per physical slot of the newest placement version reported.
// The planner's input and what `yardctl experts` shows.
//
// Thread rule: every method may be called from any thread (one mutex; a report is a
// few hundred KiB at most and comes every few seconds per attention worker).
#ifndef SWITCHYARD_COORDINATOR_EXPERT_LOAD_WINDOW_H_
#define SWITCHYARD_COORDINATOR_EXPERT_LOAD_WINDOW_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/clock.h"
#include "proto/cluster.pb.h"

namespace yard::coordinator {

struct ExpertLoadTotals {
  absl::Duration covered;  // from the oldest report in the window to now
  int64_t reports = 0;
  std::vector<uint32_t> layers;  // MoE layers, ascending
  // [layer index in `layers`][logical expert]
  std::vector<std::vector<uint64_t>> tokens_per_expert;
  // Per physical slot (placement order) under slot_version; empty when no report of it.
  uint64_t slot_version = 0;
  std::vector<std::vector<uint64_t>> tokens_per_slot;
};

class ExpertLoadWindow {
 public:
  ExpertLoadWindow(std::vector<uint32_t> moe_layers, int64_t num_experts, absl::Duration window,
                   const ClockInterface& clock);

  // InvalidArgument (and nothing kept) when a layer is not a MoE layer or appears
  // twice, a tokens_per_expert has not num_experts entries, or window_ms < 0. Layers
  // may be missing (no tokens).
  absl::Status Add(const cluster::LoadReport& report) ABSL_LOCKS_EXCLUDED(mu_);

  ExpertLoadTotals Totals() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    absl::Time at;
    uint64_t version = 0;
    std::vector<uint64_t> per_expert;            // [layer index × num_experts]
    std::vector<std::vector<uint64_t>> per_slot;  // [layer index][slot]
  };
  void DropExpired(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<uint32_t> moe_layers_;
  std::vector<int> layer_index_;  // [layer] → index in moe_layers_, -1 dense
  const int64_t num_experts_;
  const absl::Duration window_;
  const ClockInterface& clock_;
  mutable absl::Mutex mu_;
  mutable std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_EXPERT_LOAD_WINDOW_H_
