#include "coordinator/placement_change.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace yard::coordinator {

std::optional<PhysicalPlan> ToPhysicalPlan(const cluster::Placement& placement,
                                           const std::vector<uint32_t>& layers,
                                           const std::vector<uint32_t>& workers) {
  if (workers.empty()) return std::nullopt;
  std::map<uint32_t, size_t> worker_index;
  for (size_t w = 0; w < workers.size(); ++w) worker_index[workers[w]] = w;
  std::map<uint32_t, const cluster::LayerPlacement*> by_layer;
  for (const cluster::LayerPlacement& l : placement.layers()) by_layer[l.layer()] = &l;
  PhysicalPlan plan{layers, workers, {}};
  for (uint32_t layer : layers) {
    auto it = by_layer.find(layer);
    if (it == by_layer.end()) return std::nullopt;
    std::vector<std::vector<int32_t>> per_worker(workers.size());
    for (const cluster::Slot& slot : it->second->slots()) {
      auto w = worker_index.find(slot.worker_id());
      if (w == worker_index.end()) return std::nullopt;
      per_worker[w->second].push_back(static_cast<int32_t>(slot.logical_expert()));
    }
    std::vector<int32_t> row;
    for (const std::vector<int32_t>& experts : per_worker) {
      if (experts.size() != per_worker[0].size()) return std::nullopt;
      row.insert(row.end(), experts.begin(), experts.end());
    }
    plan.phy2log.push_back(std::move(row));
  }
  return plan;
}

std::vector<uint32_t> PlacedWorkers(const cluster::Placement& placement) {
  std::set<uint32_t> workers;
  for (const cluster::LayerPlacement& l : placement.layers()) {
    for (const cluster::Slot& s : l.slots()) workers.insert(s.worker_id());
  }
  return {workers.begin(), workers.end()};
}

TargetPlacement TargetOf(const cluster::Placement& placement) {
  TargetPlacement target;
  for (const cluster::LayerPlacement& l : placement.layers()) {
    target.layers.push_back(l.layer());
    std::vector<std::pair<uint32_t, int32_t>>& slots = target.slots.emplace_back();
    for (const cluster::Slot& s : l.slots()) {
      slots.emplace_back(s.worker_id(), static_cast<int32_t>(s.logical_expert()));
    }
  }
  return target;
}

absl::StatusOr<PlacementChange> PlanPlacementChange(
    const cluster::Placement& current, const PhysicalPlan& plan, int64_t num_experts,
    const std::vector<ExpertWorkerCapacity>& capacities) {
  const size_t num_workers = plan.workers.size();
  if (num_workers == 0) return absl::InvalidArgumentError("the plan names no expert worker");
  if (plan.phy2log.size() != plan.layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the plan has ", plan.phy2log.size(),
                                                   " layers of slots for ", plan.layers.size(),
                                                   " layers"));
  }
  TargetPlacement target;
  target.layers = plan.layers;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const std::vector<int32_t>& row = plan.phy2log[i];
    if (row.empty() || row.size() % num_workers != 0) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", plan.layers[i], ": ", row.size(),
                                                     " slots do not split over ", num_workers,
                                                     " workers"));
    }
    const size_t per_worker = row.size() / num_workers;
    std::vector<std::pair<uint32_t, int32_t>>& slots = target.slots.emplace_back();
    for (size_t p = 0; p < row.size(); ++p) slots.emplace_back(plan.workers[p / per_worker], row[p]);
  }
  return PlanChangeTo(current, target, num_experts, capacities);
}

absl::StatusOr<PlacementChange> PlanChangeTo(const cluster::Placement& current,
                                             const TargetPlacement& target, int64_t num_experts,
                                             const std::vector<ExpertWorkerCapacity>& capacities) {
  if (target.slots.size() != target.layers.size()) {
    return absl::InvalidArgumentError("the target's layers and slot lists differ in number");
  }
  std::map<uint32_t, int32_t> capacity;
  for (const ExpertWorkerCapacity& c : capacities) capacity[c.worker_id] = c.slot_capacity;
  // Slot ids `current` uses per worker (every layer), and which it keeps.
  std::map<uint32_t, std::set<uint32_t>> used;
  // (worker, layer, expert) → current slot ids, to keep.
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, std::vector<uint32_t>> reusable;
  for (const cluster::LayerPlacement& l : current.layers()) {
    for (const cluster::Slot& s : l.slots()) {
      used[s.worker_id()].insert(s.slot());
      reusable[{s.worker_id(), l.layer(), s.logical_expert()}].push_back(s.slot());
    }
  }
  std::map<uint32_t, std::set<uint32_t>> kept;
  std::map<uint32_t, uint32_t> next_free;  // per worker: where the free-id search goes on

  PlacementChange change;
  change.next.set_version(current.version() + 1);
  *change.next.mutable_peers() = current.peers();
  std::set<uint32_t> seen_layers;
  for (size_t i = 0; i < target.layers.size(); ++i) {
    const uint32_t layer = target.layers[i];
    if (!seen_layers.insert(layer).second) {
      return absl::InvalidArgumentError(absl::StrCat("the plan names layer ", layer, " twice"));
    }
    std::vector<bool> covered(num_experts, false);
    cluster::LayerPlacement* out = change.next.add_layers();
    out->set_layer(layer);
    for (size_t p = 0; p < target.slots[i].size(); ++p) {
      const auto [worker, expert] = target.slots[i][p];
      if (expert < 0 || expert >= num_experts) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", layer, " slot ", p, ": expert ", expert, " out of range"));
      }
      if (!capacity.contains(worker)) {
        return absl::InvalidArgumentError(absl::StrCat("expert worker ", worker, " is not live"));
      }
      covered[expert] = true;
      std::vector<uint32_t>& same = reusable[{worker, layer, static_cast<uint32_t>(expert)}];
      uint32_t slot;
      if (!same.empty()) {
        slot = same.back();
        same.pop_back();
      } else {
        uint32_t& candidate = next_free[worker];
        while (used[worker].contains(candidate)) ++candidate;
        if (static_cast<int64_t>(candidate) >= capacity[worker]) {
          return absl::FailedPreconditionError(absl::StrCat(
              "expert worker ", worker, " has no free slot to stage expert ", expert,
              " of layer ", layer, " beside its ", used[worker].size(), " slots in use (capacity ",
              capacity[worker], ")"));
        }
        slot = candidate;
        used[worker].insert(slot);
        cluster::LoadSlotsRequest& load = change.loads[worker];
        load.set_placement_version(change.next.version());
        cluster::SlotLoad* l = load.add_slots();
        l->set_slot(slot);
        l->set_layer(layer);
        l->set_logical_expert(static_cast<uint32_t>(expert));
        ++change.slots_loaded;
      }
      kept[worker].insert(slot);
      cluster::Slot* s = out->add_slots();
      s->set_worker_id(worker);
      s->set_slot(slot);
      s->set_logical_expert(static_cast<uint32_t>(expert));
    }
    for (int64_t e = 0; e < num_experts; ++e) {
      if (!covered[e]) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", layer, ": expert ", e, " has no slot in the plan"));
      }
    }
  }
  // What `current` holds and `next` does not name.
  for (const cluster::LayerPlacement& l : current.layers()) {
    for (const cluster::Slot& s : l.slots()) {
      if (!kept[s.worker_id()].contains(s.slot())) change.releases[s.worker_id()].push_back(s.slot());
    }
  }
  for (auto& [worker, slots] : change.releases) std::sort(slots.begin(), slots.end());
  return change;
}

double LayerImbalance(const cluster::LayerPlacement& layer,
                      const std::vector<uint64_t>& tokens_per_expert,
                      const std::vector<uint32_t>& workers) {
  std::map<uint32_t, int> replicas;
  for (const cluster::Slot& slot : layer.slots()) ++replicas[slot.logical_expert()];
  std::map<uint32_t, double> load;
  for (uint32_t w : workers) load[w] = 0.0;
  double total = 0.0;
  for (const cluster::Slot& slot : layer.slots()) {
    const uint32_t e = slot.logical_expert();
    if (e >= tokens_per_expert.size()) continue;
    const double share = static_cast<double>(tokens_per_expert[e]) / replicas[e];
    load[slot.worker_id()] += share;
    total += share;
  }
  if (total <= 0.0 || load.empty()) return 0.0;
  double max = 0.0;
  for (const auto& [w, l] : load) max = std::max(max, l);
  return max / (total / static_cast<double>(load.size()));
}

}  // namespace yard::coordinator
