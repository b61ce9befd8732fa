// Where an attention worker sends each logical expert's tokens: the replicas (expert
// worker, slot) of every (layer, logical expert), built from a cluster Placement.
#ifndef SWITCHYARD_ATTENTION_WORKER_EXPERT_ROUTING_H_
#define SWITCHYARD_ATTENTION_WORKER_EXPERT_ROUTING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/cluster.pb.h"

namespace yard::attention_worker {

struct Replica {
  uint32_t worker = 0;
  uint32_t slot = 0;
  uint32_t physical = 0;  // its index among its layer's slots in the placement
};

// Immutable once built; shared between the engine thread and whoever installs a new
// version (by shared_ptr swap at a step boundary).
class ExpertRouting {
 public:
  // Checks the placement against the model: every layer named is a MoE layer
  // (moe_layers[layer] true), every logical expert < num_experts, and every MoE layer
  // gives every logical expert at least one replica. InvalidArgument otherwise.
  static absl::StatusOr<ExpertRouting> FromPlacement(const cluster::Placement& placement,
                                                     const std::vector<bool>& moe_layers,
                                                     int64_t num_experts);

  uint64_t version() const { return version_; }
  // Replicas of (layer, expert): non-empty for a MoE layer's experts, empty for a dense
  // layer or any (layer, expert) out of range, so a bad request is an error, not a crash.
  const std::vector<Replica>& replicas(int64_t layer, int64_t expert) const {
    static const std::vector<Replica> kNone;
    if (layer < 0 || layer >= static_cast<int64_t>(table_.size())) return kNone;
    const std::vector<std::vector<Replica>>& experts = table_[layer];
    if (expert < 0 || expert >= static_cast<int64_t>(experts.size())) return kNone;
    return experts[expert];
  }
  // Expert workers named anywhere, ascending.
  const std::vector<uint32_t>& workers() const { return workers_; }
  // Physical slots of each layer, in the placement's order (0 for a dense layer).
  const std::vector<uint32_t>& slots_per_layer() const { return slots_per_layer_; }

 private:
  uint64_t version_ = 0;
  std::vector<std::vector<std::vector<Replica>>> table_;  // [layer][expert] → replicas
  std::vector<uint32_t> workers_;
  std::vector<uint32_t> slots_per_layer_;
};

}  // namespace yard::attention_worker

#endif  // SWITCHYARD_ATTENTION_WORKER_EXPERT_ROUTING_H_
