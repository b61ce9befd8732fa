#include "actor/task_stats.h"

#include <algorithm>

#include "absl/strings/string_view.h"

namespace yard::actor {

void TaskStatsTable::Record(const char* name, absl::Duration queued, absl::Duration ran) {
  // Look up by view first: the hot path (a name already seen) must not allocate.
  auto it = by_name_.find(absl::string_view(name));
  if (it == by_name_.end()) {
    it = by_name_.try_emplace(std::string(name)).first;
    it->second.name = name;
  }
  TaskStats& stats = it->second;
  ++stats.count;
  stats.total_queue += queued;
  stats.max_queue = std::max(stats.max_queue, queued);
  stats.total_run += ran;
  stats.max_run = std::max(stats.max_run, ran);
}

std::vector<TaskStats> TaskStatsTable::Snapshot() const {
  std::vector<TaskStats> out;
  out.reserve(by_name_.size());
  for (const auto& [name, stats] : by_name_) out.push_back(stats);
  std::sort(out.begin(), out.end(),
            [](const TaskStats& a, const TaskStats& b) { return a.name < b.name; });
  return out;
}

}  // namespace yard::actor
