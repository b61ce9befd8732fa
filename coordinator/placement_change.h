// From one expert placement to the next (DESIGN.md "Expert placement and
// rebalancing"): which slots each expert worker must load beside those in use, and
// which it may release once no attention worker routes by the old version. Pure
// functions; the Rebalancer runs the change.
#ifndef SWITCHYARD_COORDINATOR_PLACEMENT_CHANGE_H_
#define SWITCHYARD_COORDINATOR_PLACEMENT_CHANGE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/placement_plan.h"
#include "proto/cluster.pb.h"

namespace yard::coordinator {

// A plan in the planner's terms: per MoE layer (in `layers` order), the logical expert
// of each physical slot; `workers[w]` holds physical slots [w·R/W, (w+1)·R/W) of every
// layer (R: that layer's slot count, a multiple of W).
struct PhysicalPlan {
  std::vector<uint32_t> layers;
  std::vector<uint32_t> workers;
  std::vector<std::vector<int32_t>> phy2log;
};

// `placement` in those terms, or nullopt when some worker of `workers` does not hold
// the same number of slots of each layer as every other (the planner then plans
// without a current placement). Slots on workers outside `workers` make it nullopt too.
std::optional<PhysicalPlan> ToPhysicalPlan(const cluster::Placement& placement,
                                           const std::vector<uint32_t>& layers,
                                           const std::vector<uint32_t>& workers);

struct PlacementChange {
  cluster::Placement next;  // version current + 1; peers copied from current
  // Per expert worker: the slots to load before `next` is published.
  std::map<uint32_t, cluster::LoadSlotsRequest> loads;
  // Per expert worker: its slots that `next` no longer names, to release once every
  // attention worker has acknowledged `next`.
  std::map<uint32_t, std::vector<uint32_t>> releases;
  int64_t slots_loaded = 0;
};

// A placement to move to, per layer (in `layers` order): the (expert worker, logical
// expert) of each of its slots, in order.
struct TargetPlacement {
  std::vector<uint32_t> layers;
  std::vector<std::vector<std::pair<uint32_t, int32_t>>> slots;
};

// The expert workers `placement` names, ascending.
std::vector<uint32_t> PlacedWorkers(const cluster::Placement& placement);

// `placement` as a target (to edit: add or remove a slot).
TargetPlacement TargetOf(const cluster::Placement& placement);

// The change from `current` to `target` (the rules of PlanPlacementChange below).
absl::StatusOr<PlacementChange> PlanChangeTo(const cluster::Placement& current,
                                             const TargetPlacement& target, int64_t num_experts,
                                             const std::vector<ExpertWorkerCapacity>& capacities);

// The change from `current` to `plan`. A (worker, layer, logical expert) that both
// name keeps its slot id, so that worker reads nothing; each other one gets a slot id
// that `current` does not use on that worker (old and new live side by side until the
// release), below the worker's capacity. InvalidArgument when the plan is malformed
// (shapes, expert ids, a worker not in `capacities`); FailedPrecondition when a
// worker has too few free slots to stage its new experts.
absl::StatusOr<PlacementChange> PlanPlacementChange(
    const cluster::Placement& current, const PhysicalPlan& plan, int64_t num_experts,
    const std::vector<ExpertWorkerCapacity>& capacities);

// Max worker load / mean worker load of one layer: `tokens_per_expert[e]` split evenly
// over e's replicas in `layer`, summed per worker, over the workers in `workers`
// (those without a slot of this layer count as 0). 0 when nothing was routed.
double LayerImbalance(const cluster::LayerPlacement& layer,
                      const std::vector<uint64_t>& tokens_per_expert,
                      const std::vector<uint32_t>& workers);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_PLACEMENT_CHANGE_H_
