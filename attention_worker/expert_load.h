// Routed-token counts of an attention worker, per (MoE layer, logical expert) and per
// physical slot, for the coordinator's load window (issue #5: the planner's input).
//
// Count runs on the engine thread for every routed row and must not slow decoding: it
// is two relaxed atomic increments into preallocated arrays. Take runs on the reporting
// thread and swaps the counts out. Slot counts belong to one placement version; when
// the routing changes (Install), the old version's counts are kept until the next Take
// so that no routed token goes unreported.
#ifndef SWITCHYARD_ATTENTION_WORKER_EXPERT_LOAD_H_
#define SWITCHYARD_ATTENTION_WORKER_EXPERT_LOAD_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "attention_worker/expert_routing.h"
#include "proto/cluster.pb.h"

namespace yard::attention_worker {

class ExpertLoadCounter {
 public:
  // num_experts: the model's routed experts (n_routed_experts); 0 turns counting off.
  explicit ExpertLoadCounter(int64_t num_experts) : num_experts_(num_experts) {}

  // Engine thread: count under this routing from now on. The routing must be the
  // backend's, which has checked every expert id against num_experts.
  void Install(const ExpertRouting& routing);

  // Engine thread: one row of `expert` of `layer`, sent to `replica`. Ignored before
  // Install.
  void Count(int64_t layer, int32_t expert, const Replica& replica) {
    Counts* c = current_;
    if (c == nullptr) return;
    c->per_expert[c->expert_base[layer] + expert].fetch_add(1, std::memory_order_relaxed);
    c->per_slot[c->slot_base[layer] + replica.physical].fetch_add(1, std::memory_order_relaxed);
  }

  // Any thread: the counts since the last Take, one report per placement version that
  // counted anything (oldest first; none when nothing was routed), each with
  // worker_id and window_ms (time since the previous Take) set.
  std::vector<cluster::LoadReport> Take(uint32_t worker_id);

 private:
  struct Counts {
    uint64_t version = 0;
    std::vector<uint32_t> layers;       // MoE layers, ascending
    std::vector<int64_t> expert_base;   // [layer] → offset into per_expert (-1: dense)
    std::vector<int64_t> slot_base;     // [layer] → offset into per_slot
    std::vector<uint32_t> slot_count;   // [layer]
    std::unique_ptr<std::atomic<uint64_t>[]> per_expert;
    std::unique_ptr<std::atomic<uint64_t>[]> per_slot;
    int64_t per_expert_size = 0;
    int64_t per_slot_size = 0;
  };
  // Swaps c's counts to zero into a report; false when all were zero.
  bool Drain(Counts& c, cluster::LoadReport& report) const;

  const int64_t num_experts_;
  std::mutex mu_;  // guards the lists below, not the counts
  std::vector<std::unique_ptr<Counts>> live_;  // back(): current; others retired until Take
  Counts* current_ = nullptr;  // engine thread's view of live_.back()
  std::chrono::steady_clock::time_point last_take_ = std::chrono::steady_clock::now();
};

}  // namespace yard::attention_worker

#endif  // SWITCHYARD_ATTENTION_WORKER_EXPERT_LOAD_H_
