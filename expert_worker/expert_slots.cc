#include "expert_worker/expert_slots.h"

#include <cstddef>

#include "absl/strings/str_cat.h"

namespace yard::expert_worker {
namespace {

// Reads one byte per page, so the mapping's pages are resident before the first step.
void TouchPages(const kernels::cpu::WeightView& w) {
  const size_t bytes =
      static_cast<size_t>(w.n * w.k) * (w.type == kernels::cpu::WeightType::kFp8E4m3 ? 1 : 2);
  const volatile uint8_t* p = static_cast<const uint8_t*>(w.data);
  uint8_t sink = 0;
  for (size_t i = 0; i < bytes; i += 4096) sink ^= p[i];
  if (bytes > 0) sink ^= p[bytes - 1];
  (void)sink;
}

}  // namespace

ExpertSlots::ExpertSlots(const engine::ModelViews& views, uint32_t capacity)
    : views_(views), slots_(capacity) {}

absl::StatusOr<const engine::SwiGluViews*> ExpertSlots::Expert(uint32_t layer,
                                                              uint32_t logical_expert) const {
  if (layer >= views_.layers.size() || !views_.layers[layer].moe) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", layer, " has no routed experts"));
  }
  const std::vector<engine::SwiGluViews>& experts = views_.layers[layer].moe->experts;
  if (logical_expert >= experts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("expert ", logical_expert, " of layer ",
                                                   layer, ": the layer has ", experts.size()));
  }
  return &experts[logical_expert];
}

absl::Status ExpertSlots::Prefetch(uint32_t layer, uint32_t logical_expert) const {
  absl::StatusOr<const engine::SwiGluViews*> w = Expert(layer, logical_expert);
  if (!w.ok()) return w.status();
  TouchPages((*w)->gate);
  TouchPages((*w)->up);
  TouchPages((*w)->down);
  return absl::OkStatus();
}

absl::Status ExpertSlots::Load(uint32_t slot, uint32_t layer, uint32_t logical_expert) {
  if (slot >= slots_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot ", slot, " beyond this worker's ", slots_.size(), " slots"));
  }
  absl::StatusOr<const engine::SwiGluViews*> w = Expert(layer, logical_expert);
  if (!w.ok()) return w.status();
  std::optional<SlotContents>& s = slots_[slot];
  if (s.has_value()) {
    if (s->layer == layer && s->logical_expert == logical_expert) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("slot ", slot, " holds expert ", s->logical_expert, " of layer ", s->layer));
  }
  s = SlotContents{layer, logical_expert, *w};
  return absl::OkStatus();
}

absl::Status ExpertSlots::Release(uint32_t slot) {
  if (slot >= slots_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot ", slot, " beyond this worker's ", slots_.size(), " slots"));
  }
  slots_[slot].reset();
  return absl::OkStatus();
}

std::optional<SlotContents> ExpertSlots::Find(uint32_t slot) const {
  if (slot >= slots_.size()) return std::nullopt;
  return slots_[slot];
}

uint32_t ExpertSlots::used() const {
  uint32_t n = 0;
  for (const auto& s : slots_) n += s.has_value() ? 1 : 0;
  return n;
}

}  // namespace yard::expert_worker
