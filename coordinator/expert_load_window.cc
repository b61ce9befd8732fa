#include "coordinator/expert_load_window.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace yard::coordinator {
namespace {

// Bounds on what one report may hold, far above any real cluster (EP320: 320 slots).
constexpr int64_t kMaxReportWindowMs = 24 * 3600 * 1000;
constexpr int kMaxSlotsPerLayer = 1 << 16;

}  // namespace

ExpertLoadWindow::ExpertLoadWindow(std::vector<uint32_t> moe_layers, int64_t num_experts,
                                   absl::Duration window, const ClockInterface& clock)
    : moe_layers_(std::move(moe_layers)),
      num_experts_(num_experts),
      window_(window),
      clock_(clock) {
  const uint32_t top = moe_layers_.empty() ? 0 : moe_layers_.back() + 1;
  layer_index_.assign(top, -1);
  for (size_t i = 0; i < moe_layers_.size(); ++i) layer_index_[moe_layers_[i]] = static_cast<int>(i);
}

absl::Status ExpertLoadWindow::Add(const cluster::LoadReport& report) {
  if (report.window_ms() < 0 || report.window_ms() > kMaxReportWindowMs) {
    return absl::InvalidArgumentError(absl::StrCat("LoadReport.window_ms: ", report.window_ms(),
                                                   " outside [0, ", kMaxReportWindowMs, "]"));
  }
  Entry entry;
  entry.version = report.placement_version();
  entry.per_expert.assign(moe_layers_.size() * num_experts_, 0);
  entry.per_slot.resize(moe_layers_.size());
  std::vector<bool> seen(moe_layers_.size(), false);
  for (const cluster::LayerLoad& layer : report.layers()) {
    const int index = layer.layer() < layer_index_.size() ? layer_index_[layer.layer()] : -1;
    if (index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoadReport.layers.layer: ", layer.layer(), " is not a MoE layer"));
    }
    if (seen[index]) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoadReport.layers.layer: ", layer.layer(), " named twice"));
    }
    seen[index] = true;
    if (layer.tokens_per_expert_size() != num_experts_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoadReport.layers.tokens_per_expert: layer ", layer.layer(), " has ",
          layer.tokens_per_expert_size(), " expert counts; the model has ", num_experts_,
          " experts"));
    }
    if (layer.tokens_per_slot_size() > kMaxSlotsPerLayer) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoadReport.layers.tokens_per_slot: layer ", layer.layer(), " has ",
          layer.tokens_per_slot_size(), " slot counts, at most ", kMaxSlotsPerLayer));
    }
    std::copy(layer.tokens_per_expert().begin(), layer.tokens_per_expert().end(),
              entry.per_expert.begin() + index * num_experts_);
    entry.per_slot[index].assign(layer.tokens_per_slot().begin(), layer.tokens_per_slot().end());
  }
  absl::MutexLock lock(&mu_);
  entry.at = clock_.Now();
  DropExpired(entry.at);
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

void ExpertLoadWindow::DropExpired(absl::Time now) const {
  while (!entries_.empty() && now - entries_.front().at > window_) entries_.pop_front();
}

ExpertLoadTotals ExpertLoadWindow::Totals() const {
  ExpertLoadTotals totals;
  totals.layers = moe_layers_;
  totals.tokens_per_expert.assign(moe_layers_.size(), std::vector<uint64_t>(num_experts_, 0));
  totals.tokens_per_slot.resize(moe_layers_.size());
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  DropExpired(now);
  totals.reports = static_cast<int64_t>(entries_.size());
  if (entries_.empty()) return totals;
  totals.covered = now - entries_.front().at;
  for (const Entry& e : entries_) totals.slot_version = std::max(totals.slot_version, e.version);
  for (const Entry& e : entries_) {
    for (size_t l = 0; l < moe_layers_.size(); ++l) {
      for (int64_t x = 0; x < num_experts_; ++x) {
        totals.tokens_per_expert[l][x] += e.per_expert[l * num_experts_ + x];
      }
      if (e.version != totals.slot_version) continue;
      std::vector<uint64_t>& slots = totals.tokens_per_slot[l];
      if (slots.size() < e.per_slot[l].size()) slots.resize(e.per_slot[l].size(), 0);
      for (size_t s = 0; s < e.per_slot[l].size(); ++s) slots[s] += e.per_slot[l][s];
    }
  }
  return totals;
}

}  // namespace yard::coordinator
