// The expert slots of one expert worker (DESIGN.md "Expert placement"): slot s holds
// one logical expert of one layer. Weights stay in the memory-mapped checkpoint; a
// slot only points at its expert's tensors, whose pages Prefetch reads once beforehand
// so that no step waits on a page fault (the other experts' pages are never touched).
#ifndef SWITCHYARD_EXPERT_WORKER_EXPERT_SLOTS_H_
#define SWITCHYARD_EXPERT_WORKER_EXPERT_SLOTS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_weights.h"

namespace yard::expert_worker {

struct SlotContents {
  uint32_t layer = 0;
  uint32_t logical_expert = 0;
  const engine::SwiGluViews* weights = nullptr;
};

// Not thread-safe: owned by the expert server's compute thread (loads and releases
// are posted there, so compute never sees a slot change mid-batch). `views` (bound to
// the checkpoint) must outlive it.
class ExpertSlots {
 public:
  ExpertSlots(const engine::ModelViews& views, uint32_t capacity);

  // Reads the pages of `logical_expert` of `layer` (one byte each), so that they are
  // resident before Load: a live rebalance calls it on a gRPC thread, and the compute
  // thread never waits on a page fault of a new slot. Thread-safe (reads the views
  // only). InvalidArgument for a layer without routed experts or an expert out of range.
  absl::Status Prefetch(uint32_t layer, uint32_t logical_expert) const;

  // Puts `logical_expert` of `layer` into `slot` (replacing nothing: the slot must be
  // free or already hold exactly that expert). Cheap: a pointer, no page is read (see
  // Prefetch). InvalidArgument for a slot beyond the capacity, a layer without routed
  // experts or an expert id out of range; FailedPrecondition when the slot holds
  // another expert.
  absl::Status Load(uint32_t slot, uint32_t layer, uint32_t logical_expert);
  // Frees the slot (no-op when free); InvalidArgument beyond the capacity.
  absl::Status Release(uint32_t slot);

  // The slot's contents, or nullopt when `slot` is free or beyond the capacity.
  std::optional<SlotContents> Find(uint32_t slot) const;

  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }
  uint32_t used() const;

 private:
  const engine::ModelViews& views_;
  // The expert's weights, or InvalidArgument.
  absl::StatusOr<const engine::SwiGluViews*> Expert(uint32_t layer, uint32_t logical_expert) const;

  std::vector<std::optional<SlotContents>> slots_;
};

}  // namespace yard::expert_worker

#endif  // SWITCHYARD_EXPERT_WORKER_EXPERT_SLOTS_H_
