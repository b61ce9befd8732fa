#include "coordinator/placement/eplb_planner.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/strings/str_cat.h"

namespace yard::coordinator::placement {
namespace {

// Bounds the scratch a malformed request can make us allocate.
constexpr int64_t kMaxSlots = int64_t{1} << 20;

// Slack when comparing floating-point loads and imbalance factors.
constexpr double kEpsilon = 1e-12;

// The sizes one layer is planned with; `domains` are the nodes planned apart (N for
// the hierarchical policy, 1 for the global one, which then has a single group).
struct Shape {
  int32_t experts = 0;
  int32_t slots = 0;
  int32_t workers = 0;
  int32_t slots_per_worker = 0;
  bool hierarchical = false;
  int32_t groups = 1;
  int32_t experts_per_group = 0;
  int32_t domains = 1;
  int32_t groups_per_domain = 1;
  int32_t experts_per_domain = 0;
  int32_t slots_per_domain = 0;
  int32_t workers_per_domain = 0;
};

absl::StatusOr<Shape> MakeShape(int64_t experts, const EplbOptions& options) {
  const int64_t r = options.num_slots;
  const int64_t w = options.num_workers;
  const int64_t n = options.num_nodes;
  const int64_t g = options.num_groups;
  if (experts <= 0) return absl::InvalidArgumentError("load names no experts");
  if (w <= 0)
    return absl::InvalidArgumentError(absl::StrCat("num_workers is ", w, ", must be > 0"));
  if (n <= 0) return absl::InvalidArgumentError(absl::StrCat("num_nodes is ", n, ", must be > 0"));
  if (g <= 0) return absl::InvalidArgumentError(absl::StrCat("num_groups is ", g, ", must be > 0"));
  if (r < experts) {
    return absl::InvalidArgumentError(absl::StrCat("num_slots R=", r, " is below the ", experts,
                                                   " experts; every expert needs a slot"));
  }
  if (r > kMaxSlots) {
    return absl::InvalidArgumentError(absl::StrCat("num_slots R=", r, " exceeds ", kMaxSlots));
  }
  if (r % w != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_slots R=", r, " is not divisible by num_workers W=", w));
  }
  if (w % n != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_workers W=", w, " is not divisible by num_nodes N=", n));
  }
  if (experts % g != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_groups G=", g, " does not divide the ", experts, " experts"));
  }
  if (!std::isfinite(options.stickiness_tolerance) || options.stickiness_tolerance < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stickiness_tolerance is ", options.stickiness_tolerance, ", must be finite and >= 0"));
  }
  Shape shape;
  shape.experts = static_cast<int32_t>(experts);
  shape.slots = static_cast<int32_t>(r);
  shape.workers = static_cast<int32_t>(w);
  shape.slots_per_worker = static_cast<int32_t>(r / w);
  shape.hierarchical = g % n == 0;
  shape.groups = shape.hierarchical ? static_cast<int32_t>(g) : 1;
  shape.domains = shape.hierarchical ? static_cast<int32_t>(n) : 1;
  shape.experts_per_group = shape.experts / shape.groups;
  shape.groups_per_domain = shape.groups / shape.domains;
  shape.experts_per_domain = shape.experts / shape.domains;
  shape.slots_per_domain = shape.slots / shape.domains;
  shape.workers_per_domain = shape.workers / shape.domains;
  return shape;
}

absl::Status ValidateLoad(const ExpertLoad& load) {
  if (load.empty()) return absl::InvalidArgumentError("load has no layers");
  const size_t experts = load[0].size();
  if (experts == 0) return absl::InvalidArgumentError("load layer 0 has no experts");
  for (size_t layer = 0; layer < load.size(); ++layer) {
    if (load[layer].size() != experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "load layer ", layer, " has ", load[layer].size(), " experts, layer 0 has ", experts));
    }
    double total = 0;
    for (size_t e = 0; e < experts; ++e) {
      const double v = load[layer][e];
      if (!std::isfinite(v) || v < 0) {
        return absl::InvalidArgumentError(absl::StrCat("load of layer ", layer, " expert ", e,
                                                       " is ", v, ", must be finite and >= 0"));
      }
      total += v;
    }
    if (!std::isfinite(total)) {
      return absl::InvalidArgumentError(absl::StrCat("load of layer ", layer, " overflows"));
    }
  }
  return absl::OkStatus();
}

// `placement` has `layers` rows of `slots` experts in [0, experts), each expert at
// least once per row.
absl::Status ValidatePlacement(const Phy2Log& placement, size_t layers, int64_t experts,
                               int64_t slots, absl::string_view what) {
  if (placement.size() != layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", placement.size(), " layers, the load has ", layers));
  }
  std::vector<uint8_t> seen(experts);
  for (size_t layer = 0; layer < layers; ++layer) {
    const std::vector<int32_t>& row = placement[layer];
    if (static_cast<int64_t>(row.size()) != slots) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " layer ", layer, " has ", row.size(), " slots, expected ", slots));
    }
    std::fill(seen.begin(), seen.end(), 0);
    for (size_t s = 0; s < row.size(); ++s) {
      if (row[s] < 0 || row[s] >= experts) {
        return absl::InvalidArgumentError(absl::StrCat(what, " layer ", layer, " slot ", s,
                                                       " holds expert ", row[s], ", not in [0, ",
                                                       experts, ")"));
      }
      seen[row[s]] = 1;
    }
    for (int64_t e = 0; e < experts; ++e) {
      if (!seen[e]) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " layer ", layer, " has no slot for expert ", e));
      }
    }
  }
  return absl::OkStatus();
}

// `copies` physical experts of `expert`, each carrying `value` tokens.
struct Item {
  double value;
  int32_t expert;
  int32_t copies;
};

// Heaps and sorts run on packed integer keys, several times faster than on structs:
// a load rounded to float in the high half (the bits of a non-negative float grow
// with its value), an id in the low half breaking ties (loads within float rounding
// of each other count as tied).
uint64_t AscendingKey(double value, int32_t id) {
  const uint32_t bits = absl::bit_cast<uint32_t>(static_cast<float>(value));
  return (static_cast<uint64_t>(bits) << 32) | static_cast<uint32_t>(id);
}
// Ascending order of these keys is descending value, ascending id.
uint64_t DescendingKey(double value, int32_t id) {
  const uint32_t bits = absl::bit_cast<uint32_t>(static_cast<float>(value));
  return (static_cast<uint64_t>(~bits) << 32) | static_cast<uint32_t>(id);
}
int32_t IdOf(uint64_t key) { return static_cast<int32_t>(key & 0xffffffffu); }

// A binary min-heap of keys in heap[0..size): Replicate's candidates.
void SiftDown(uint64_t* heap, int32_t size, int32_t i) {
  const uint64_t key = heap[i];
  for (;;) {
    int32_t child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap[child + 1] < heap[child]) ++child;
    if (heap[child] >= key) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = key;
}
// A tournament tree over up to `capacity` keys: the least in O(1), a changed key in
// log2(capacity) steps of conditional moves. Packing keeps its workers here rather
// than in a binary heap, whose sifts mispredict a branch at about every other level
// on real loads (twice the packing time).
constexpr uint64_t kEmpty = ~uint64_t{0};
class MinTree {
 public:
  void Init(int32_t capacity) {
    leaves_ = 1;
    while (leaves_ < capacity) leaves_ *= 2;
    node_.assign(2 * static_cast<size_t>(leaves_), kEmpty);
  }
  // Leaves [0, n) := key_of(i), the rest empty.
  template <typename KeyOf>
  void Build(int32_t n, KeyOf key_of) {
    for (int32_t i = 0; i < leaves_; ++i) node_[leaves_ + i] = i < n ? key_of(i) : kEmpty;
    for (int32_t i = leaves_ - 1; i >= 1; --i) node_[i] = std::min(node_[2 * i], node_[2 * i + 1]);
  }
  uint64_t Min() const { return node_[1]; }
  void Set(int32_t leaf, uint64_t key) {
    // Each ancestor's new least key is that of the path so far and the sibling's, so
    // no load waits on a store of this walk.
    uint64_t* node = node_.data();
    uint32_t i = static_cast<uint32_t>(leaves_ + leaf);
    uint64_t path = key;
    node[i] = path;
    while (i > 1) {
      const uint64_t sibling = node[i ^ 1];
      path = sibling < path ? sibling : path;
      i >>= 1;
      node[i] = path;
    }
  }

 private:
  int32_t leaves_ = 1;
  std::vector<uint64_t> node_;  // [1, leaves_) inner, [leaves_, 2·leaves_) leaves
};

// Sorts keys[0..n) ascending by their high halves, keeping the order of equal ones:
// LSD radix over the four bytes of the float, skipping bytes all keys share. Sorting
// a layer's experts is a large share of planning time, and comparison sorts spend it
// on mispredicted branches. `scratch` holds n keys.
void SortByHighHalf(uint64_t* keys, int32_t n, uint64_t* scratch) {
  if (n <= 32) {  // insertion sort
    for (int32_t i = 1; i < n; ++i) {
      const uint64_t k = keys[i];
      int32_t j = i;
      for (; j > 0 && (keys[j - 1] >> 32) > (k >> 32); --j) keys[j] = keys[j - 1];
      keys[j] = k;
    }
    return;
  }
  uint32_t counts[4][256] = {};
  for (int32_t i = 0; i < n; ++i) {
    const uint64_t k = keys[i];
    ++counts[0][(k >> 32) & 0xff];
    ++counts[1][(k >> 40) & 0xff];
    ++counts[2][(k >> 48) & 0xff];
    ++counts[3][k >> 56];
  }
  uint64_t* from = keys;
  uint64_t* to = scratch;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 32 + 8 * pass;
    uint32_t* count = counts[pass];
    if (count[(from[0] >> shift) & 0xff] == static_cast<uint32_t>(n)) continue;
    uint32_t offset = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t c = count[b];
      count[b] = offset;
      offset += c;
    }
    for (int32_t i = 0; i < n; ++i) to[count[(from[i] >> shift) & 0xff]++] = from[i];
    std::swap(from, to);
  }
  if (from != keys) std::copy_n(from, n, keys);
}

// What each worker (or, for the fresh plan, each interchangeable bin) holds.
struct WorkerFill {
  int32_t slots_per_worker = 0;
  std::vector<int32_t> experts;  // [W][slots_per_worker], first count[w] valid
  std::vector<int32_t> count;    // [W]
  std::vector<double> load;      // [W]

  void Init(int32_t workers, int32_t s) {
    slots_per_worker = s;
    experts.assign(static_cast<size_t>(workers) * s, -1);
    count.assign(workers, 0);
    load.assign(workers, 0.0);
  }
  void Clear(int32_t first, int32_t num) {
    std::fill(count.begin() + first, count.begin() + first + num, 0);
    std::fill(load.begin() + first, load.begin() + first + num, 0.0);
  }
  void Add(int32_t w, int32_t expert, double value) {
    experts[static_cast<size_t>(w) * slots_per_worker + count[w]++] = expert;
    load[w] += value;
  }
  double MaxLoad() const { return *std::max_element(load.begin(), load.end()); }
};

struct LayerOutcome {
  double imbalance = 1.0;
  int32_t slots_changed = 0;
  bool sticky = false;
};

// Plans layers one at a time in scratch sized once for the shape, so planning a
// layer allocates nothing but its output row.
class LayerPlanner {
 public:
  LayerPlanner(const Shape& shape, double tolerance) : shape_(shape), tolerance_(tolerance) {
    const int32_t e = shape.experts;
    const int32_t r = shape.slots;
    const int32_t w = shape.workers;
    groups_.resize(shape.groups);
    group_load_.resize(shape.groups);
    node_load_.resize(shape.domains);
    node_count_.resize(shape.domains);
    node_groups_.resize(shape.groups);
    sticky_node_groups_.resize(shape.groups);
    node_target_.resize(shape.domains);
    fresh_best_per_replica_.resize(shape.domains);
    sticky_source_bin_.resize(shape.domains);
    here_.resize(e);
    dropping_.resize(e);
    sticky_node_of_group_.resize(shape.groups);
    group_of_expert_.resize(e);
    for (int32_t expert = 0; expert < e; ++expert) {
      group_of_expert_[expert] = expert / shape.experts_per_group;
    }
    domain_experts_.resize(e);
    replicas_.resize(e);
    sticky_replicas_.resize(e);
    optimal_replicas_.resize(e);
    by_load_.resize(e);
    worker_tree_.Init(shape.workers_per_domain);
    keys_.resize(e);
    items_.resize(e);
    pending_.resize(e);
    per_replica_.resize(e);
    aside_.reserve(w);
    fresh_.Init(w, shape.slots_per_worker);
    sticky_.Init(w, shape.slots_per_worker);
    slot_start_.resize(e + 1);
    slots_of_.resize(r);
    node_of_slot_.resize(r);
    worker_of_slot_.resize(r);
    for (int32_t slot = 0; slot < r; ++slot) {
      node_of_slot_[slot] = slot / shape.slots_per_domain;
      worker_of_slot_[slot] = slot / shape.slots_per_worker;
    }
    kept_.resize(r);
    worker_target_.resize(w);
    bin_of_worker_.resize(w);
    mark_.assign(w, -1);
    tally_.assign(std::max(w, shape.domains), 0);
    touched_.reserve(std::max(w, shape.domains));
    taken_.resize(std::max(w, shape.domains));
    expert_count_.assign(e, 0);
    filled_.resize(shape.slots_per_worker);
  }

  // load: [E] tokens per expert; current: [R] or null; row: [R] out.
  LayerOutcome Plan(const double* load, const int32_t* current, int32_t* row) {
    total_load_ = 0;
    for (int32_t e = 0; e < shape_.experts; ++e) total_load_ += load[e];
    PlanFresh(load);
    LayerOutcome outcome;
    const double fresh_max = fresh_.MaxLoad();
    outcome.imbalance = Factor(fresh_max);
    if (current == nullptr) {
      for (int32_t w = 0; w < shape_.workers; ++w) Arrange(w, fresh_, w, nullptr, row);
      return outcome;
    }
    IndexCurrent(current);
    // The current placement itself, when it is within the tolerance already.
    const double stay_imbalance = CurrentImbalance(load, current);
    if (stay_imbalance <= outcome.imbalance * (1 + tolerance_) + kEpsilon) {
      std::copy_n(current, shape_.slots, row);
      outcome.imbalance = stay_imbalance;
      outcome.sticky = true;
      return outcome;
    }
    MatchNodes();
    PlanSticky(load, current, fresh_max);
    const double sticky_imbalance = Factor(sticky_.MaxLoad());
    outcome.sticky = sticky_imbalance <= outcome.imbalance * (1 + tolerance_) + kEpsilon;
    if (outcome.sticky) {
      for (int32_t w = 0; w < shape_.workers; ++w) Arrange(w, sticky_, w, current, row);
    } else {
      MatchWorkers();
      for (int32_t w = 0; w < shape_.workers; ++w) {
        Arrange(w, fresh_, bin_of_worker_[w], current, row);
      }
    }
    if (outcome.sticky) outcome.imbalance = sticky_imbalance;
    for (int32_t s = 0; s < shape_.slots; ++s) outcome.slots_changed += row[s] != current[s];
    return outcome;
  }

 private:
  double Factor(double max_load) const {
    const double mean = total_load_ / shape_.workers;
    return mean > 0 ? max_load / mean : 1.0;
  }

  // ---- The fresh plan, in bins: domain d's bins are [d·W/N, (d+1)·W/N). ----

  void PlanFresh(const double* load) {
    PackGroupsOntoNodes(load);
    const int32_t ed = shape_.experts_per_domain;
    const int32_t wd = shape_.workers_per_domain;
    for (int32_t d = 0; d < shape_.domains; ++d) {
      int32_t* experts = &domain_experts_[static_cast<size_t>(d) * ed];
      ExpertsOfGroups(&node_groups_[static_cast<size_t>(d) * shape_.groups_per_domain], experts);
      SortByLoad(load, experts, ed);
      fresh_best_per_replica_[d] = Replicate(load, ed, shape_.slots_per_domain, replicas_.data());
      OrderReplicated(load, ed, shape_.slots_per_domain, replicas_.data(), items_.data());
      fresh_.Clear(d * wd, wd);
      PackItems(items_.data(), ed, d * wd, wd, fresh_, /*mark_kept=*/false);
    }
  }

  // node_groups_[d·G/N ..] := the groups of node bin d: heaviest group first onto the
  // least-loaded node that still takes groups.
  void PackGroupsOntoNodes(const double* load) {
    const int32_t epg = shape_.experts_per_group;
    for (int32_t g = 0; g < shape_.groups; ++g) {
      double sum = 0;
      for (int32_t e = g * epg; e < (g + 1) * epg; ++e) sum += load[e];
      group_load_[g] = sum;
      groups_[g] = DescendingKey(sum, g);
    }
    std::sort(groups_.begin(), groups_.end());
    std::fill(node_load_.begin(), node_load_.end(), 0.0);
    std::fill(node_count_.begin(), node_count_.end(), 0);
    const int32_t per_node = shape_.groups_per_domain;
    for (uint64_t key : groups_) {
      const int32_t g = IdOf(key);
      int32_t best = -1;
      for (int32_t n = 0; n < shape_.domains; ++n) {
        if (node_count_[n] < per_node && (best < 0 || node_load_[n] < node_load_[best])) best = n;
      }
      node_groups_[static_cast<size_t>(best) * per_node + node_count_[best]++] = g;
      node_load_[best] += group_load_[g];
    }
    fresh_node_max_ = *std::max_element(node_load_.begin(), node_load_.end());
  }

  // experts := those of the node's `groups`, ascending (sorts `groups`).
  void ExpertsOfGroups(int32_t* groups, int32_t* experts) const {
    const int32_t epg = shape_.experts_per_group;
    std::sort(groups, groups + shape_.groups_per_domain);
    for (int32_t i = 0; i < shape_.groups_per_domain; ++i) {
      for (int32_t k = 0; k < epg; ++k) *experts++ = groups[i] * epg + k;
    }
  }

  // by_load_[0..n) := the keys of the n `experts` (ascending) by load, highest first.
  void SortByLoad(const double* load, const int32_t* experts, int32_t n) {
    for (int32_t i = 0; i < n; ++i) by_load_[i] = DescendingKey(load[experts[i]], experts[i]);
    SortByHighHalf(by_load_.data(), n, keys_.data());
  }

  // replicas[e] for the n experts in by_load_ (SortByLoad first): one each, then the
  // budget - n extra ones one by one to the expert with the highest load per replica.
  // Returns that highest load per replica afterwards (the least any split of the
  // budget achieves). Leaves the first Candidates(n, budget) keys of by_load_ as a
  // heap of the candidates' keys by load per replica, the rest still by load.
  //
  // Only the `budget - n` most loaded experts can ever get an extra replica (each
  // of the more loaded ones would need one first), so only they enter the heap;
  // sorted keys already form a heap.
  double Replicate(const double* load, int32_t n, int32_t budget, int32_t* replicas) {
    for (int32_t i = 0; i < n; ++i) replicas[IdOf(by_load_[i])] = 1;
    uint64_t* heap = by_load_.data();
    const int32_t candidates = Candidates(n, budget);
    for (int32_t extra = budget - n; extra > 0; --extra) {
      const int32_t e = IdOf(heap[0]);
      heap[0] = DescendingKey(load[e] / ++replicas[e], e);
      SiftDown(heap, candidates, 0);
    }
    double hottest = 0;
    if (candidates > 0) hottest = load[IdOf(heap[0])] / replicas[IdOf(heap[0])];
    if (candidates < n) hottest = std::max(hottest, load[IdOf(by_load_[candidates])]);
    return hottest;
  }

  static int32_t Candidates(int32_t n, int32_t budget) { return std::min(budget - n, n); }

  // items[0..n) := the experts Replicate just planned with their replicas, highest
  // load per replica first: the candidates sorted, merged with the others.
  void OrderReplicated(const double* load, int32_t n, int32_t budget, const int32_t* replicas,
                       Item* items) {
    const int32_t candidates = Candidates(n, budget);
    std::sort(by_load_.begin(), by_load_.begin() + candidates);
    std::merge(by_load_.begin(), by_load_.begin() + candidates, by_load_.begin() + candidates,
               by_load_.begin() + n, keys_.begin());
    for (int32_t i = 0; i < n; ++i) {
      const int32_t e = IdOf(keys_[i]);
      items[i] = {replicas[e] > 1 ? load[e] / replicas[e] : load[e], e, replicas[e]};
    }
  }

  // Places every copy of items[0..n) (heaviest first) on the least-loaded of workers
  // [first, first + num) in `fill` with a free slot, preferring one that does not hold
  // that expert yet (with mark_kept, the replicas kept in place count as held).
  void PackItems(const Item* items, int32_t n, int32_t first, int32_t num, WorkerFill& fill,
                 bool mark_kept) {
    const int32_t s = shape_.slots_per_worker;
    auto key = [&](int32_t w) {
      return fill.count[w] < s ? AscendingKey(fill.load[w], w) : kEmpty;
    };
    worker_tree_.Build(num, [&](int32_t i) { return key(first + i); });
    for (int32_t i = 0; i < n; ++i) {
      const Item& item = items[i];
      ++epoch_;
      if (mark_kept) {
        for (int32_t k = slot_start_[item.expert]; k < slot_start_[item.expert + 1]; ++k) {
          if (kept_[slots_of_[k]]) mark_[worker_of_slot_[slots_of_[k]]] = epoch_;
        }
      }
      for (int32_t copy = 0; copy < item.copies; ++copy) {
        // Set aside the lightest workers that hold the expert already; if all do,
        // the lightest of them takes it anyway.
        aside_.clear();
        while (worker_tree_.Min() != kEmpty && mark_[IdOf(worker_tree_.Min())] == epoch_) {
          const int32_t w = IdOf(worker_tree_.Min());
          aside_.push_back(w);
          worker_tree_.Set(w - first, kEmpty);
        }
        const int32_t chosen = worker_tree_.Min() != kEmpty ? IdOf(worker_tree_.Min()) : aside_[0];
        fill.Add(chosen, item.expert, item.value);
        mark_[chosen] = epoch_;
        worker_tree_.Set(chosen - first, key(chosen));
        for (int32_t w : aside_) {
          if (w != chosen) worker_tree_.Set(w - first, key(w));
        }
      }
    }
  }

  // ---- The current placement. ----

  // slots_of_[slot_start_[e] .. slot_start_[e + 1]) := the slots holding e, ascending.
  void IndexCurrent(const int32_t* current) {
    std::fill(slot_start_.begin(), slot_start_.end(), 0);
    for (int32_t s = 0; s < shape_.slots; ++s) ++slot_start_[current[s] + 1];
    for (int32_t e = 0; e < shape_.experts; ++e) slot_start_[e + 1] += slot_start_[e];
    for (int32_t s = 0; s < shape_.slots; ++s) slots_of_[slot_start_[current[s]]++] = s;
    for (int32_t e = shape_.experts; e > 0; --e) slot_start_[e] = slot_start_[e - 1];
    slot_start_[0] = 0;
  }

  // The imbalance factor of the current placement under `load` (IndexCurrent first);
  // infinity when the hierarchical policy applies and it does not hold each group
  // on one node, G/N groups per node.
  double CurrentImbalance(const double* load, const int32_t* current) {
    if (shape_.domains > 1) {
      std::fill(node_count_.begin(), node_count_.end(), 0);
      std::fill(sticky_node_of_group_.begin(), sticky_node_of_group_.end(), -1);
      for (int32_t slot = 0; slot < shape_.slots; ++slot) {
        int32_t& node = sticky_node_of_group_[group_of_expert_[current[slot]]];
        if (node < 0) {
          node = node_of_slot_[slot];
          ++node_count_[node];
        } else if (node != node_of_slot_[slot]) {
          return std::numeric_limits<double>::infinity();
        }
      }
      for (int32_t count : node_count_) {
        if (count != shape_.groups_per_domain) return std::numeric_limits<double>::infinity();
      }
    }
    const int32_t s = shape_.slots_per_worker;
    double max_load = 0;
    for (int32_t w = 0; w < shape_.workers; ++w) {
      double sum = 0;
      for (int32_t slot = w * s; slot < (w + 1) * s; ++slot) {
        const int32_t e = current[slot];
        sum += load[e] / (slot_start_[e + 1] - slot_start_[e]);
      }
      max_load = std::max(max_load, sum);
    }
    return Factor(max_load);
  }

  // Assigns each of `n` bins a distinct target in [0, n): bins in order take the free
  // target that `votes(bin, add)` names most often (add(target) once per current slot
  // the bin would find in place there); bins with no vote take the targets left.
  template <typename Votes>
  void MatchByOverlap(int32_t n, Votes votes, int32_t* target_of_bin) {
    std::fill(taken_.begin(), taken_.begin() + n, 0);
    for (int32_t b = 0; b < n; ++b) {
      touched_.clear();
      votes(b, [&](int32_t t) {
        if (tally_[t]++ == 0) touched_.push_back(t);
      });
      int32_t best = -1;
      for (int32_t t : touched_) {
        if (!taken_[t] &&
            (best < 0 || tally_[t] > tally_[best] || (tally_[t] == tally_[best] && t < best))) {
          best = t;
        }
      }
      for (int32_t t : touched_) tally_[t] = 0;
      target_of_bin[b] = best;
      if (best >= 0) taken_[best] = 1;
    }
    int32_t next = 0;
    for (int32_t b = 0; b < n; ++b) {
      if (target_of_bin[b] >= 0) continue;
      while (taken_[next]) ++next;
      target_of_bin[b] = next;
      taken_[next] = 1;
    }
  }

  // node_target_ := fresh node bin -> node, overlapping the current placement most.
  void MatchNodes() {
    if (shape_.domains == 1) {
      node_target_[0] = 0;
      return;
    }
    const int32_t gpd = shape_.groups_per_domain;
    const int32_t epg = shape_.experts_per_group;
    MatchByOverlap(
        shape_.domains,
        [&](int32_t bin, auto add) {
          for (int32_t i = 0; i < gpd; ++i) {
            const int32_t g = node_groups_[static_cast<size_t>(bin) * gpd + i];
            for (int32_t e = g * epg; e < (g + 1) * epg; ++e) {
              for (int32_t k = slot_start_[e]; k < slot_start_[e + 1]; ++k)
                add(node_of_slot_[slots_of_[k]]);
            }
          }
        },
        node_target_.data());
  }

  // worker_target_ / bin_of_worker_ := fresh bin <-> worker (within the node
  // node_target_ gives the bin's node), overlapping the current placement most.
  void MatchWorkers() {
    const int32_t s = shape_.slots_per_worker;
    const int32_t wd = shape_.workers_per_domain;
    for (int32_t d = 0; d < shape_.domains; ++d) {
      const int32_t node = node_target_[d];
      MatchByOverlap(
          wd,
          [&](int32_t local_bin, auto add) {
            const int32_t bin = d * wd + local_bin;
            const int32_t* held = &fresh_.experts[static_cast<size_t>(bin) * s];
            for (int32_t i = 0; i < fresh_.count[bin]; ++i) {
              for (int32_t k = slot_start_[held[i]]; k < slot_start_[held[i] + 1]; ++k) {
                const int32_t slot = slots_of_[k];
                if (node_of_slot_[slot] == node) add(worker_of_slot_[slot] - node * wd);
              }
            }
          },
          &worker_target_[static_cast<size_t>(d) * wd]);
      for (int32_t local_bin = 0; local_bin < wd; ++local_bin) {
        int32_t& target = worker_target_[d * wd + local_bin];
        target += node * wd;
        bin_of_worker_[target] = d * wd + local_bin;
      }
    }
  }

  // ---- The sticky plan, on physical workers. ----

  void PlanSticky(const double* load, const int32_t* current, double fresh_max) {
    std::fill(kept_.begin(), kept_.end(), 0);
    ChooseStickyNodes();
    const int32_t ed = shape_.experts_per_domain;
    const int32_t rd = shape_.slots_per_domain;
    const int32_t wd = shape_.workers_per_domain;
    // The sticky plan is taken when its imbalance is within the tolerance of the
    // fresh one's: swaps stop there.
    const double target = fresh_max * (1 + tolerance_);
    for (int32_t d = 0; d < shape_.domains; ++d) {
      int32_t* experts = &domain_experts_[static_cast<size_t>(d) * ed];
      ExpertsOfGroups(&sticky_node_groups_[static_cast<size_t>(d) * shape_.groups_per_domain],
                      experts);
      double best_per_replica;
      if (sticky_source_bin_[d] >= 0) {
        best_per_replica = fresh_best_per_replica_[sticky_source_bin_[d]];
      } else {
        SortByLoad(load, experts, ed);
        best_per_replica = Replicate(load, ed, rd, optimal_replicas_.data());
      }
      for (int32_t i = 0; i < ed; ++i) {
        const int32_t e = experts[i];
        int32_t here = 0;
        for (int32_t k = slot_start_[e]; k < slot_start_[e + 1]; ++k) {
          here += node_of_slot_[slots_of_[k]] == d;
        }
        here_[e] = here;
        sticky_replicas_[e] = std::max(here, 1);
      }
      AdjustReplicas(load, experts, ed, rd, best_per_replica * (1 + tolerance_ / 2),
                     sticky_replicas_.data());
      for (int32_t i = 0; i < ed; ++i) {
        const int32_t e = experts[i];
        per_replica_[e] = sticky_replicas_[e] > 1 ? load[e] / sticky_replicas_[e] : load[e];
      }
      sticky_.Clear(d * wd, wd);
      KeepInPlace(experts, d, current);
      PackItems(pending_.data(), pending_count_, d * wd, wd, sticky_, /*mark_kept=*/true);
      Rebalance(d * wd, wd, target);
    }
  }

  // Adds to sticky_ the replicas of node d's `experts` that stay in their current
  // slots: all of an expert's when its count did not drop, else those on the
  // lightest workers. pending_[0..pending_count_) := the replicas still to place,
  // heaviest first; kept_[slot] marks the slots kept.
  void KeepInPlace(const int32_t* experts, int32_t d, const int32_t* current) {
    const int32_t ed = shape_.experts_per_domain;
    const int32_t rd = shape_.slots_per_domain;
    pending_count_ = 0;
    int32_t dropping = 0;
    for (int32_t i = 0; i < ed; ++i) {
      const int32_t e = experts[i];
      const int32_t copies = sticky_replicas_[e];
      if (here_[e] > copies) {
        dropping_[dropping++] = e;
      } else if (here_[e] < copies) {
        pending_[pending_count_++] = {per_replica_[e], e, copies - here_[e]};
      }
    }
    for (int32_t slot = d * rd; slot < (d + 1) * rd; ++slot) {
      const int32_t e = current[slot];
      if (sticky_node_of_group_[group_of_expert_[e]] != d || here_[e] > sticky_replicas_[e]) {
        continue;
      }
      kept_[slot] = 1;
      sticky_.Add(worker_of_slot_[slot], e, per_replica_[e]);
    }
    for (int32_t i = 0; i < dropping; ++i) {
      const int32_t e = dropping_[i];
      for (int32_t kept = 0; kept < sticky_replicas_[e]; ++kept) {
        int32_t best = -1;
        for (int32_t k = slot_start_[e]; k < slot_start_[e + 1]; ++k) {
          const int32_t slot = slots_of_[k];
          if (node_of_slot_[slot] != d || kept_[slot]) continue;
          if (best < 0 ||
              sticky_.load[worker_of_slot_[slot]] < sticky_.load[worker_of_slot_[best]]) {
            best = slot;
          }
        }
        kept_[best] = 1;
        sticky_.Add(worker_of_slot_[best], e, per_replica_[e]);
      }
    }
    std::sort(pending_.begin(), pending_.begin() + pending_count_,
              [](const Item& a, const Item& b) {
                return a.value > b.value || (a.value == b.value && a.expert < b.expert);
              });
  }

  // Swaps replicas between the most loaded of workers [first, first + num) in sticky_
  // and the lightest few until it carries at most `target` or no swap lowers it;
  // each swap moves two replicas, so only what the balance needs moves.
  void Rebalance(int32_t first, int32_t num, double target) {
    constexpr int32_t kPartners = 4;
    const int32_t s = shape_.slots_per_worker;
    std::vector<double>& load = sticky_.load;
    auto holds = [&](int32_t w, int32_t e) {
      const int32_t* held = &sticky_.experts[static_cast<size_t>(w) * s];
      return std::find(held, held + s, e) != held + s;
    };
    for (int32_t step = 0; step < shape_.slots && num > 1; ++step) {
      int32_t hot = first;
      for (int32_t w = first + 1; w < first + num; ++w) {
        if (load[w] > load[hot]) hot = w;
      }
      if (load[hot] <= target) return;
      // The kPartners lightest other workers, lightest first.
      int32_t partners[kPartners];
      int32_t found = 0;
      for (int32_t w = first; w < first + num; ++w) {
        if (w == hot) continue;
        int32_t at = std::min(found, kPartners);
        while (at > 0 && load[partners[at - 1]] > load[w]) {
          if (at < kPartners) partners[at] = partners[at - 1];
          --at;
        }
        if (at < kPartners) {
          partners[at] = w;
          found = std::min(found + 1, kPartners);
        }
      }
      int32_t* hot_held = &sticky_.experts[static_cast<size_t>(hot) * s];
      double best_max = load[hot] * (1 - kEpsilon);
      int32_t best_partner = -1, best_i = -1, best_j = -1;
      for (int32_t p = 0; p < found; ++p) {
        const int32_t w = partners[p];
        const int32_t* held = &sticky_.experts[static_cast<size_t>(w) * s];
        for (int32_t i = 0; i < s; ++i) {
          const double pa = per_replica_[hot_held[i]];
          for (int32_t j = 0; j < s; ++j) {
            const double moved = pa - per_replica_[held[j]];
            if (moved <= 0) continue;
            const double new_max = std::max(load[hot] - moved, load[w] + moved);
            if (new_max >= best_max || holds(w, hot_held[i]) || holds(hot, held[j])) continue;
            best_max = new_max;
            best_partner = w;
            best_i = i;
            best_j = j;
          }
        }
      }
      if (best_partner < 0) return;
      int32_t& a = hot_held[best_i];
      int32_t& b = sticky_.experts[static_cast<size_t>(best_partner) * s + best_j];
      const double moved = per_replica_[a] - per_replica_[b];
      load[hot] -= moved;
      load[best_partner] += moved;
      std::swap(a, b);
    }
  }

  // sticky_node_groups_ := each group on the node holding most of its slots now, when
  // that gives every node G/N groups and balances the nodes within the tolerance of
  // the fresh packing; else the fresh packing as matched to the current nodes.
  void ChooseStickyNodes() {
    const int32_t gpd = shape_.groups_per_domain;
    const int32_t epg = shape_.experts_per_group;
    bool usable = shape_.domains > 1;
    if (usable) {
      std::fill(node_count_.begin(), node_count_.end(), 0);
      std::fill(node_load_.begin(), node_load_.end(), 0.0);
      for (int32_t g = 0; g < shape_.groups && usable; ++g) {
        touched_.clear();
        for (int32_t e = g * epg; e < (g + 1) * epg; ++e) {
          for (int32_t k = slot_start_[e]; k < slot_start_[e + 1]; ++k) {
            const int32_t node = node_of_slot_[slots_of_[k]];
            if (tally_[node]++ == 0) touched_.push_back(node);
          }
        }
        int32_t best = touched_[0];
        for (int32_t node : touched_) {
          if (tally_[node] > tally_[best] || (tally_[node] == tally_[best] && node < best)) {
            best = node;
          }
        }
        for (int32_t node : touched_) tally_[node] = 0;
        if (node_count_[best] == gpd) {
          usable = false;
          break;
        }
        sticky_node_groups_[static_cast<size_t>(best) * gpd + node_count_[best]++] = g;
        node_load_[best] += group_load_[g];
      }
      usable = usable && *std::max_element(node_load_.begin(), node_load_.end()) <=
                             fresh_node_max_ * (1 + tolerance_) + kEpsilon;
    }
    for (int32_t d = 0; d < shape_.domains; ++d) sticky_source_bin_[d] = -1;
    if (!usable) {
      for (int32_t bin = 0; bin < shape_.domains; ++bin) {
        sticky_source_bin_[node_target_[bin]] = bin;
        std::copy_n(&node_groups_[static_cast<size_t>(bin) * gpd], gpd,
                    &sticky_node_groups_[static_cast<size_t>(node_target_[bin]) * gpd]);
      }
    }
    for (int32_t d = 0; d < shape_.domains; ++d) {
      for (int32_t i = 0; i < gpd; ++i) {
        sticky_node_of_group_[sticky_node_groups_[static_cast<size_t>(d) * gpd + i]] = d;
      }
    }
  }

  // Moves the replica counts `c` of the n `experts` (starting from the current ones)
  // to sum to `budget` and then, one replica at a time, from the expert that loses
  // least by it to the one with the highest load per replica, until that is at most
  // `threshold` or no move lowers it.
  static void AdjustReplicas(const double* load, const int32_t* experts, int32_t n, int32_t budget,
                             double threshold, int32_t* c) {
    auto hottest = [&]() {
      int32_t best = experts[0];
      for (int32_t i = 1; i < n; ++i) {
        const int32_t e = experts[i];
        if (load[e] * c[best] > load[best] * c[e]) best = e;
      }
      return best;
    };
    // The expert whose per-replica load grows least when it gives up one; -1: none.
    auto cheapest_donor = [&](int32_t except) {
      int32_t best = -1;
      double best_after = 0;
      for (int32_t i = 0; i < n; ++i) {
        const int32_t e = experts[i];
        if (c[e] <= 1 || e == except) continue;
        const double after = load[e] / (c[e] - 1);
        if (best < 0 || after < best_after) {
          best = e;
          best_after = after;
        }
      }
      return best;
    };
    int64_t sum = 0;
    for (int32_t i = 0; i < n; ++i) sum += c[experts[i]];
    for (; sum > budget; --sum) --c[cheapest_donor(-1)];
    for (; sum < budget; ++sum) ++c[hottest()];
    for (int32_t moves = 0; moves < budget; ++moves) {
      const int32_t hot = hottest();
      const double hot_value = load[hot] / c[hot];
      if (hot_value <= threshold) break;
      const int32_t donor = cheapest_donor(hot);
      if (donor < 0 || load[donor] / (c[donor] - 1) >= hot_value) break;
      --c[donor];
      ++c[hot];
    }
  }

  // Row slots of worker w := the experts `fill` gives worker `source`, an expert that
  // sits in one of w's slots now staying in that slot.
  void Arrange(int32_t w, const WorkerFill& fill, int32_t source, const int32_t* current,
               int32_t* row) {
    const int32_t s = shape_.slots_per_worker;
    const int32_t* held = &fill.experts[static_cast<size_t>(source) * s];
    int32_t* out = row + static_cast<size_t>(w) * s;
    if (current == nullptr) {
      std::copy_n(held, s, out);
      return;
    }
    const int32_t* now = current + static_cast<size_t>(w) * s;
    for (int32_t i = 0; i < s; ++i) ++expert_count_[held[i]];
    for (int32_t i = 0; i < s; ++i) {
      filled_[i] = expert_count_[now[i]] > 0;
      if (filled_[i]) {
        out[i] = now[i];
        --expert_count_[now[i]];
      }
    }
    int32_t next = 0;
    for (int32_t i = 0; i < s; ++i) {
      if (expert_count_[held[i]] == 0) continue;
      --expert_count_[held[i]];
      while (filled_[next]) ++next;
      out[next] = held[i];
      filled_[next] = 1;
    }
  }

  const Shape shape_;
  const double tolerance_;
  double total_load_ = 0;
  double fresh_node_max_ = 0;
  std::vector<double> fresh_best_per_replica_;  // [N] Replicate's result per node bin
  // [N] the fresh node bin whose groups the sticky plan gives the node, or -1.
  std::vector<int32_t> sticky_source_bin_;
  std::vector<int32_t> here_;                  // [E] the expert's current slots on its sticky node
  std::vector<int32_t> dropping_;              // [E] see KeepInPlace
  std::vector<int32_t> sticky_node_of_group_;  // [G]
  std::vector<int32_t> group_of_expert_;       // [E]
  // Nodes: node_groups_[bin·G/N + i] is the i-th group of fresh node bin `bin`;
  // sticky_node_groups_ the same per physical node for the sticky plan.
  std::vector<uint64_t> groups_;  // [G] keys by load
  std::vector<double> group_load_;
  std::vector<double> node_load_;
  std::vector<int32_t> node_count_;
  std::vector<int32_t> node_groups_;
  std::vector<int32_t> sticky_node_groups_;
  std::vector<int32_t> node_target_;  // [N] fresh node bin -> node
  // Experts and replicas.
  std::vector<int32_t> domain_experts_;  // [E]: node d's experts at [d·E/N, (d+1)·E/N)
  std::vector<int32_t> replicas_;        // [E] fresh plan
  std::vector<int32_t> sticky_replicas_;
  std::vector<int32_t> optimal_replicas_;
  std::vector<uint64_t> by_load_;  // [E] see SortByLoad, Replicate
  MinTree worker_tree_;            // see PackItems
  std::vector<uint64_t> keys_;
  std::vector<Item> items_;
  std::vector<Item> pending_;
  int32_t pending_count_ = 0;
  std::vector<double> per_replica_;  // [E] sticky plan: load ÷ replicas
  std::vector<int32_t> aside_;
  std::vector<int64_t> mark_;  // [W]: == epoch_ when the worker holds the item's expert
  int64_t epoch_ = 0;
  WorkerFill fresh_;                    // by bin
  WorkerFill sticky_;                   // by worker
  std::vector<int32_t> worker_target_;  // [W] fresh bin -> worker
  std::vector<int32_t> bin_of_worker_;  // [W] its inverse
  // The current placement, by expert.
  std::vector<int32_t> slot_start_;      // [E + 1]
  std::vector<int32_t> slots_of_;        // [R]
  std::vector<int32_t> node_of_slot_;    // [R] (the node planned apart; 0 when global)
  std::vector<int32_t> worker_of_slot_;  // [R]
  std::vector<uint8_t> kept_;            // [R] the sticky plan keeps this slot's replica
  // Matching and arranging scratch.
  std::vector<int32_t> tally_;
  std::vector<int32_t> touched_;
  std::vector<uint8_t> taken_;
  std::vector<int32_t> expert_count_;  // [E], all zero between uses
  std::vector<uint8_t> filled_;        // [R/W]
};

}  // namespace

absl::StatusOr<EplbPlan> PlanPlacement(const ExpertLoad& load, const EplbOptions& options,
                                       const Phy2Log* current) {
  if (absl::Status valid = ValidateLoad(load); !valid.ok()) return valid;
  absl::StatusOr<Shape> shape = MakeShape(static_cast<int64_t>(load[0].size()), options);
  if (!shape.ok()) return shape.status();
  if (current != nullptr) {
    absl::Status valid =
        ValidatePlacement(*current, load.size(), shape->experts, shape->slots, "current placement");
    if (!valid.ok()) return valid;
  }
  EplbPlan plan;
  plan.hierarchical = shape->hierarchical;
  const size_t layers = load.size();
  plan.phy2log.assign(layers, std::vector<int32_t>(shape->slots));
  plan.imbalance.resize(layers);
  plan.slots_changed.assign(layers, 0);
  plan.sticky.assign(layers, false);
  LayerPlanner planner(*shape, options.stickiness_tolerance);
  for (size_t layer = 0; layer < layers; ++layer) {
    const LayerOutcome outcome =
        planner.Plan(load[layer].data(), current ? (*current)[layer].data() : nullptr,
                     plan.phy2log[layer].data());
    plan.imbalance[layer] = outcome.imbalance;
    plan.slots_changed[layer] = outcome.slots_changed;
    plan.sticky[layer] = outcome.sticky;
    plan.total_slots_changed += outcome.slots_changed;
  }
  plan.mean_imbalance = MeanImbalance(plan.imbalance);
  return plan;
}

absl::StatusOr<std::vector<double>> LayerImbalance(const ExpertLoad& load, const Phy2Log& phy2log,
                                                   int32_t num_workers) {
  if (absl::Status valid = ValidateLoad(load); !valid.ok()) return valid;
  if (num_workers <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_workers is ", num_workers, ", must be > 0"));
  }
  const int64_t experts = static_cast<int64_t>(load[0].size());
  if (phy2log.empty()) return absl::InvalidArgumentError("placement has no layers");
  const int64_t slots = static_cast<int64_t>(phy2log[0].size());
  if (slots % num_workers != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "placement has ", slots, " slots per layer, not divisible by ", num_workers, " workers"));
  }
  if (absl::Status valid = ValidatePlacement(phy2log, load.size(), experts, slots, "placement");
      !valid.ok()) {
    return valid;
  }
  const int64_t per_worker = slots / num_workers;
  std::vector<double> factors(load.size());
  std::vector<int32_t> replicas(experts);
  for (size_t layer = 0; layer < load.size(); ++layer) {
    std::fill(replicas.begin(), replicas.end(), 0);
    for (int32_t e : phy2log[layer]) ++replicas[e];
    double total = 0;
    for (double v : load[layer]) total += v;
    double max_load = 0;
    for (int64_t w = 0; w < num_workers; ++w) {
      double sum = 0;
      for (int64_t s = w * per_worker; s < (w + 1) * per_worker; ++s) {
        const int32_t e = phy2log[layer][s];
        sum += load[layer][e] / replicas[e];
      }
      max_load = std::max(max_load, sum);
    }
    const double mean = total / num_workers;
    factors[layer] = mean > 0 ? max_load / mean : 1.0;
  }
  return factors;
}

double MeanImbalance(const std::vector<double>& per_layer) {
  if (per_layer.empty()) return 1.0;
  double sum = 0;
  for (double f : per_layer) sum += f;
  return sum / static_cast<double>(per_layer.size());
}

int64_t CountChangedSlots(const Phy2Log& a, const Phy2Log& b) {
  int64_t changed = 0;
  for (size_t layer = 0; layer < std::max(a.size(), b.size()); ++layer) {
    const size_t na = layer < a.size() ? a[layer].size() : 0;
    const size_t nb = layer < b.size() ? b[layer].size() : 0;
    for (size_t s = 0; s < std::max(na, nb); ++s) {
      changed += s >= na || s >= nb || a[layer][s] != b[layer][s];
    }
  }
  return changed;
}

Phy2Log IdentityPlacement(int32_t num_layers, int32_t num_experts, int32_t num_slots) {
  std::vector<int32_t> row(std::max(num_slots, 0));
  for (int32_t s = 0; s < num_slots; ++s) row[s] = num_experts > 0 ? s % num_experts : 0;
  return Phy2Log(std::max(num_layers, 0), row);
}

}  // namespace yard::coordinator::placement
