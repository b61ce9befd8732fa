// Per-name counters of posted tasks: how many ran, how long they waited in the queue
// and how long they ran. Actors and the compute pool keep one so that queueing and run
// time can be exported as metrics by task name.
#ifndef SWITCHYARD_ACTOR_TASK_STATS_H_
#define SWITCHYARD_ACTOR_TASK_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace yard::actor {

// What happened to the tasks of one name since the table was created.
struct TaskStats {
  std::string name;
  int64_t count = 0;
  // From the post to the start of the run.
  absl::Duration total_queue = absl::ZeroDuration();
  absl::Duration max_queue = absl::ZeroDuration();
  absl::Duration total_run = absl::ZeroDuration();
  absl::Duration max_run = absl::ZeroDuration();
};

// The table of TaskStats by name.
//
// Thread rule: not synchronized; the owner serializes access (an actor touches it only
// on its strand, the compute pool under its mutex).
class TaskStatsTable {
 public:
  void Record(const char* name, absl::Duration queued, absl::Duration ran);

  // One entry per name recorded so far, sorted by name.
  std::vector<TaskStats> Snapshot() const;

 private:
  absl::flat_hash_map<std::string, TaskStats> by_name_;
};

}  // namespace yard::actor

#endif  // SWITCHYARD_ACTOR_TASK_STATS_H_
