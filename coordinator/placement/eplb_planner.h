// The offline expert-placement planner (hierarchical EPLB): turns the tokens each
// logical expert of each MoE layer received into a placement of physical expert
// slots on expert workers that evens out the workers' load, while keeping experts
// where they already are when that costs (almost) no balance.
//
// Shapes. A layer has E logical experts and R physical slots (R >= E); W expert
// workers hold R/W slots each, worker w holding slots [w·R/W, (w+1)·R/W); N nodes
// hold W/N workers each (node n: workers [n·W/N, (n+1)·W/N)); the E experts form G
// groups of E/G consecutive ids (DeepSeek-V3's routing groups).
//
// Policy, per layer:
//   hierarchical (G % N == 0): pack the groups onto nodes, G/N per node, heaviest
//     group first onto the least-loaded node; within each node's R/N slots give
//     the extra replicas one by one to the expert with the highest load per
//     replica; pack the node's physical experts onto its workers, heaviest first
//     onto the least-loaded worker with a free slot (preferring one that does not
//     hold that expert yet), each worker getting exactly R/W.
//   global (G % N != 0): the same with the whole cluster as one node.
//
// Load model. A logical expert's tokens are split evenly over its replicas; a
// worker's load is the sum over its slots. The imbalance factor of a layer is
// max worker load ÷ mean worker load (1.0 when the layer has no load); the overall
// factor is the MEAN OVER LAYERS of the per-layer factors.
//
// Stability. Given the current placement, each layer takes the first of:
//   1. the current placement unchanged, when its imbalance under the new load is
//      within the fresh plan's × (1 + tolerance) (and, under the hierarchical
//      policy, it holds each group on one node, G/N groups per node);
//   2. a sticky plan, when its imbalance is within that bound: groups stay on the
//      node holding most of their slots (if that packs G/N per node and balances the
//      nodes within the tolerance; else the fresh packing, nodes renumbered to
//      overlap most); replica counts start from the current ones and move one at a
//      time, from the expert that loses least to the hottest, while the hottest load
//      per replica exceeds the fresh optimum × (1 + tolerance/2); every replica that
//      can keep its slot keeps it, new replicas fill the freed slots (least-loaded
//      worker first); then the most loaded worker swaps replicas with the lightest
//      few until it is within the fresh plan's max × (1 + tolerance);
//   3. the fresh plan, its nodes and workers renumbered to overlap the current
//      placement most (they are interchangeable).
// In every case an expert that already sits in a slot of the worker it is planned
// on keeps that slot index.
//
// Pure functions, no threads; safe to call from any thread.
#ifndef SWITCHYARD_COORDINATOR_PLACEMENT_EPLB_PLANNER_H_
#define SWITCHYARD_COORDINATOR_PLACEMENT_EPLB_PLANNER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace yard::coordinator::placement {

// load[layer][logical expert]: tokens routed to that expert (finite, >= 0).
using ExpertLoad = std::vector<std::vector<double>>;
// phy2log[layer][physical slot]: the logical expert that slot holds.
using Phy2Log = std::vector<std::vector<int32_t>>;

struct EplbOptions {
  // R: physical expert slots per layer; >= the number of experts, divisible by
  // num_workers.
  int32_t num_slots = 0;
  // G: expert groups; must divide the number of experts.
  int32_t num_groups = 1;
  // N: nodes; must divide num_workers. G % N != 0 selects the global policy.
  int32_t num_nodes = 1;
  // W: expert workers.
  int32_t num_workers = 1;
  // A layer keeps the current placement (or one close to it) when its imbalance
  // <= the fresh plan's × (1 + tolerance). 0 keeps experts only where that costs no
  // balance at all.
  double stickiness_tolerance = 0.05;
};

struct EplbPlan {
  Phy2Log phy2log;                // [layers][R]
  std::vector<double> imbalance;  // [layers] max ÷ mean worker load
  double mean_imbalance = 1.0;    // mean of `imbalance`
  bool hierarchical = false;      // false: the global policy was used
  // Only with a current placement (zeros otherwise):
  std::vector<int32_t> slots_changed;  // [layers] slots whose expert differs from current
  int64_t total_slots_changed = 0;
  std::vector<bool> sticky;  // [layers] kept the current placement (1. or 2.)
};

// Plans every layer of `load`. `current`, when not null, is the placement in use
// (same layers, R slots each, every expert at least once); the plan then prefers
// it as described above. InvalidArgument (naming the layer / slot) for bad options,
// loads or current placement.
absl::StatusOr<EplbPlan> PlanPlacement(const ExpertLoad& load, const EplbOptions& options,
                                       const Phy2Log* current = nullptr);

// Per layer max ÷ mean worker load of `phy2log` under `load` (see above), for
// `num_workers` workers. InvalidArgument when the shapes disagree, a slot names no
// expert, an expert has no slot, or R % num_workers != 0.
absl::StatusOr<std::vector<double>> LayerImbalance(const ExpertLoad& load, const Phy2Log& phy2log,
                                                   int32_t num_workers);

// The mean of per-layer factors (1.0 for none).
double MeanImbalance(const std::vector<double>& per_layer);

// Slots whose logical expert differs between `a` and `b` (same shape; slots in
// only one of them count as changed).
int64_t CountChangedSlots(const Phy2Log& a, const Phy2Log& b);

// slot i -> expert i mod E: the placement with no planning, every layer alike.
Phy2Log IdentityPlacement(int32_t num_layers, int32_t num_experts, int32_t num_slots);

}  // namespace yard::coordinator::placement

#endif  // SWITCHYARD_COORDINATOR_PLACEMENT_EPLB_PLANNER_H_
