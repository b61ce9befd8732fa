#include "attention_worker/expert_routing.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace yard::attention_worker {

absl::StatusOr<ExpertRouting> ExpertRouting::FromPlacement(const cluster::Placement& placement,
                                                           const std::vector<bool>& moe_layers,
                                                           int64_t num_experts) {
  ExpertRouting routing;
  routing.version_ = placement.version();
  routing.table_.resize(moe_layers.size());
  routing.slots_per_layer_.assign(moe_layers.size(), 0);
  for (size_t l = 0; l < moe_layers.size(); ++l) {
    if (moe_layers[l]) routing.table_[l].resize(num_experts);
  }
  for (const cluster::LayerPlacement& layer : placement.layers()) {
    if (layer.layer() >= moe_layers.size() || !moe_layers[layer.layer()]) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement v", placement.version(), ": layer ", layer.layer(),
                       " is not a MoE layer of this model"));
    }
    if (routing.slots_per_layer_[layer.layer()] != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "placement v", placement.version(), ": layer ", layer.layer(), " appears twice"));
    }
    routing.slots_per_layer_[layer.layer()] = static_cast<uint32_t>(layer.slots_size());
    for (int physical = 0; physical < layer.slots_size(); ++physical) {
      const cluster::Slot& slot = layer.slots(physical);
      if (slot.logical_expert() >= num_experts) {
        return absl::InvalidArgumentError(absl::StrCat(
            "placement v", placement.version(), ": layer ", layer.layer(), " names expert ",
            slot.logical_expert(), "; the model has ", num_experts));
      }
      routing.table_[layer.layer()][slot.logical_expert()].push_back(
          Replica{slot.worker_id(), slot.slot(), static_cast<uint32_t>(physical)});
      routing.workers_.push_back(slot.worker_id());
    }
  }
  for (size_t l = 0; l < moe_layers.size(); ++l) {
    for (int64_t e = 0; moe_layers[l] && e < num_experts; ++e) {
      if (routing.table_[l][e].empty()) {
        return absl::InvalidArgumentError(absl::StrCat("placement v", placement.version(),
                                                       ": expert ", e, " of layer ", l,
                                                       " has no replica"));
      }
    }
  }
  std::sort(routing.workers_.begin(), routing.workers_.end());
  routing.workers_.erase(std::unique(routing.workers_.begin(), routing.workers_.end()),
                         routing.workers_.end());
  return routing;
}

}  // namespace yard::attention_worker
