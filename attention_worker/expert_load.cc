#include "attention_worker/expert_load.h"

#include <utility>

namespace yard::attention_worker {

void ExpertLoadCounter::Install(const ExpertRouting& routing) {
  if (num_experts_ <= 0) return;  // counting off
  auto c = std::make_unique<Counts>();
  c->version = routing.version();
  const std::vector<uint32_t>& slots = routing.slots_per_layer();
  c->expert_base.assign(slots.size(), -1);
  c->slot_base.assign(slots.size(), 0);
  c->slot_count = slots;
  for (size_t l = 0; l < slots.size(); ++l) {
    if (slots[l] == 0) continue;  // dense
    c->layers.push_back(static_cast<uint32_t>(l));
    c->expert_base[l] = c->per_expert_size;
    c->per_expert_size += num_experts_;
    c->slot_base[l] = c->per_slot_size;
    c->per_slot_size += slots[l];
  }
  // Value-initialized: every counter starts at zero.
  c->per_expert = std::make_unique<std::atomic<uint64_t>[]>(c->per_expert_size);
  c->per_slot = std::make_unique<std::atomic<uint64_t>[]>(c->per_slot_size);
  std::lock_guard<std::mutex> lock(mu_);
  live_.push_back(std::move(c));
  current_ = live_.back().get();
}

bool ExpertLoadCounter::Drain(Counts& c, cluster::LoadReport& report) const {
  bool any = false;
  report.set_placement_version(c.version);
  for (uint32_t layer : c.layers) {
    cluster::LayerLoad* load = report.add_layers();
    load->set_layer(layer);
    for (int64_t e = 0; e < num_experts_; ++e) {
      const uint64_t n = c.per_expert[c.expert_base[layer] + e].exchange(0, std::memory_order_relaxed);
      any |= n != 0;
      load->add_tokens_per_expert(n);
    }
    for (uint32_t s = 0; s < c.slot_count[layer]; ++s) {
      load->add_tokens_per_slot(c.per_slot[c.slot_base[layer] + s].exchange(0, std::memory_order_relaxed));
    }
  }
  return any;
}

std::vector<cluster::LoadReport> ExpertLoadCounter::Take(uint32_t worker_id) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<cluster::LoadReport> reports;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t window_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - last_take_).count();
  last_take_ = now;
  for (const std::unique_ptr<Counts>& c : live_) {
    cluster::LoadReport report;
    if (!Drain(*c, report)) continue;
    report.set_worker_id(worker_id);
    report.set_window_ms(window_ms);
    reports.push_back(std::move(report));
  }
  // Retired versions are drained for good. (The engine thread may still be inside a
  // Count on the one it replaced at the moment it installed the next: it reads current_
  // once, and Install happens on that same thread, so a retired Counts is never
  // written after its Install returned.)
  if (live_.size() > 1) live_.erase(live_.begin(), live_.end() - 1);
  return reports;
}

}  // namespace yard::attention_worker
