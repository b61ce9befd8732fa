#include "coordinator/placement_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace yard::coordinator {

std::vector<uint32_t> MoeLayers(const model::ModelConfig& config) {
  std::vector<uint32_t> layers;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    if (config.IsMoeLayer(layer)) layers.push_back(static_cast<uint32_t>(layer));
  }
  return layers;
}

absl::StatusOr<cluster::Placement> PlanInitialPlacement(
    const std::vector<uint32_t>& moe_layers, int64_t num_experts,
    const std::vector<ExpertWorkerCapacity>& workers, uint64_t version, int replicas) {
  if (replicas < 1) return absl::InvalidArgumentError(absl::StrCat("replicas ", replicas));
  const int64_t needed = static_cast<int64_t>(moe_layers.size()) * num_experts * replicas;
  int64_t capacity = 0;
  for (const ExpertWorkerCapacity& worker : workers) capacity += worker.slot_capacity;
  if (needed > 0 && workers.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no expert workers to place ", needed, " expert slots on"));
  }
  if (capacity < needed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert slot capacity is short: ", moe_layers.size(), " MoE layers x ", num_experts,
        " experts x ", replicas, " replicas need ", needed, " slots, ", workers.size(),
        " expert workers have ", capacity));
  }
  cluster::Placement placement;
  placement.set_version(version);
  std::vector<int32_t> used(workers.size(), 0);
  size_t next = 0;  // round-robin cursor over `workers`
  for (uint32_t layer : moe_layers) {
    cluster::LayerPlacement* layer_placement = placement.add_layers();
    layer_placement->set_layer(layer);
    for (int64_t expert = 0; expert < num_experts; ++expert) {
      std::vector<bool> holds(workers.size(), false);
      for (int r = 0; r < replicas; ++r) {
        size_t tries = 0;
        while (tries < workers.size() &&
               (used[next] >= workers[next].slot_capacity || holds[next])) {
          next = (next + 1) % workers.size();
          ++tries;
        }
        if (tries == workers.size()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "layer ", layer, " expert ", expert, ": fewer than ", replicas,
              " expert workers have a free slot for a replica"));
        }
        holds[next] = true;
        cluster::Slot* slot = layer_placement->add_slots();
        slot->set_worker_id(workers[next].worker_id);
        slot->set_slot(static_cast<uint32_t>(used[next]++));
        slot->set_logical_expert(static_cast<uint32_t>(expert));
        next = (next + 1) % workers.size();
      }
    }
  }
  return placement;
}

std::optional<cluster::Placement> PlacementFromLoadedSlots(
    const std::vector<uint32_t>& moe_layers, int64_t num_experts,
    const std::vector<ExpertWorkerSlots>& workers, uint64_t version) {
  std::map<uint32_t, size_t> layer_index;
  for (size_t i = 0; i < moe_layers.size(); ++i) layer_index[moe_layers[i]] = i;
  // Per layer: (worker, slot) → expert, ordered as the placement lists them.
  std::vector<std::map<std::pair<uint32_t, uint32_t>, uint32_t>> layers(moe_layers.size());
  for (const ExpertWorkerSlots& worker : workers) {
    std::set<uint32_t> named;
    for (const cluster::SlotLoad& slot : worker.loaded) {
      auto layer = layer_index.find(slot.layer());
      if (layer == layer_index.end() || slot.logical_expert() >= num_experts ||
          slot.slot() >= static_cast<uint32_t>(std::max(worker.slot_capacity, 0)) ||
          !named.insert(slot.slot()).second) {
        return std::nullopt;
      }
      layers[layer->second][{worker.worker_id, slot.slot()}] = slot.logical_expert();
    }
  }
  cluster::Placement placement;
  placement.set_version(version);
  for (size_t i = 0; i < moe_layers.size(); ++i) {
    cluster::LayerPlacement* layer = placement.add_layers();
    layer->set_layer(moe_layers[i]);
    for (const auto& [at, expert] : layers[i]) {
      cluster::Slot* slot = layer->add_slots();
      slot->set_worker_id(at.first);
      slot->set_slot(at.second);
      slot->set_logical_expert(expert);
    }
  }
  if (!CoversEveryExpert(placement, num_experts, [](uint32_t) { return true; })) {
    return std::nullopt;
  }
  return placement;
}

bool CoversEveryExpert(const cluster::Placement& placement, int64_t num_experts,
                       const std::function<bool(uint32_t worker_id)>& usable) {
  for (const cluster::LayerPlacement& layer : placement.layers()) {
    std::set<uint32_t> covered;
    for (const cluster::Slot& slot : layer.slots()) {
      if (usable(slot.worker_id())) covered.insert(slot.logical_expert());
    }
    if (static_cast<int64_t>(covered.size()) < num_experts) return false;
  }
  return true;
}

cluster::LoadSlotsRequest LoadRequestFor(const cluster::Placement& placement,
                                         uint32_t worker_id) {
  cluster::LoadSlotsRequest request;
  request.set_placement_version(placement.version());
  for (const cluster::LayerPlacement& layer : placement.layers()) {
    for (const cluster::Slot& slot : layer.slots()) {
      if (slot.worker_id() != worker_id) continue;
      cluster::SlotLoad* load = request.add_slots();
      load->set_slot(slot.slot());
      load->set_layer(layer.layer());
      load->set_logical_expert(slot.logical_expert());
    }
  }
  return request;
}

}  // namespace yard::coordinator
