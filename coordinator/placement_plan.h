// The initial expert placement: which slot of which expert worker holds each logical
// expert of each MoE layer. Pure functions; the PlacementController applies them.
#ifndef SWITCHYARD_COORDINATOR_PLACEMENT_PLAN_H_
#define SWITCHYARD_COORDINATOR_PLACEMENT_PLAN_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "proto/cluster.pb.h"

namespace yard::coordinator {

// The decoder layers with routed experts, ascending (ModelConfig::IsMoeLayer: from
// first_k_dense_replace on, every moe_layer_freq-th, below num_hidden_layers).
std::vector<uint32_t> MoeLayers(const model::ModelConfig& config);

struct ExpertWorkerCapacity {
  uint32_t worker_id = 0;
  int32_t slot_capacity = 0;
};

// `replicas` slots on distinct workers for every (layer, expert) (more than one, so
// that losing a worker loses no expert), dealt round-robin over `workers` in the given
// order, skipping workers that are full or hold the expert already; each worker's
// slots are numbered from 0 in the order they are dealt. `peers` is left empty (the
// caller knows the data-plane addresses). FailedPrecondition when the workers'
// capacity is below layers × experts × replicas or fewer than `replicas` workers can
// take an expert; InvalidArgument when `workers` is empty but slots are needed.
absl::StatusOr<cluster::Placement> PlanInitialPlacement(
    const std::vector<uint32_t>& moe_layers, int64_t num_experts,
    const std::vector<ExpertWorkerCapacity>& workers, uint64_t version, int replicas = 1);

// An expert worker's slots as it reported them on re-registering (WorkerInfo).
struct ExpertWorkerSlots {
  uint32_t worker_id = 0;
  int32_t slot_capacity = 0;
  std::vector<cluster::SlotLoad> loaded;
};

// The placement that the expert workers' loaded slots already form (a restarted
// coordinator takes it over, so no expert is reloaded), numbered `version`; slots of a
// layer in `moe_layers` order, each layer's by (worker, slot). nullopt unless every
// (layer, expert) has a slot and every reported slot is valid: a MoE layer, an expert
// below num_experts, a slot below the worker's capacity and named once.
std::optional<cluster::Placement> PlacementFromLoadedSlots(
    const std::vector<uint32_t>& moe_layers, int64_t num_experts,
    const std::vector<ExpertWorkerSlots>& workers, uint64_t version);

// Whether each (layer, expert) of `placement` has a slot on a worker that `usable`
// accepts.
bool CoversEveryExpert(const cluster::Placement& placement, int64_t num_experts,
                       const std::function<bool(uint32_t worker_id)>& usable);

// What `placement` asks of `worker_id`: its slots, for LoadSlots.
cluster::LoadSlotsRequest LoadRequestFor(const cluster::Placement& placement,
                                         uint32_t worker_id);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_PLACEMENT_PLAN_H_
