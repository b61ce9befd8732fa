#include "coordinator/worker_streams.h"

namespace yard::coordinator {

void WorkerStreams::Watch(uint32_t worker_id, grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  streams_[worker_id].insert(context);
}

void WorkerStreams::Unwatch(uint32_t worker_id, grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(worker_id);
  if (it == streams_.end()) return;
  it->second.erase(context);
  if (it->second.empty()) streams_.erase(it);
}

absl::flat_hash_map<uint32_t, int> WorkerStreams::CancelLost(const WorkerSnapshot& workers) {
  absl::flat_hash_set<uint32_t> alive;
  for (const WorkerRecord& w : workers) {
    if (w.alive) alive.insert(w.id);
  }
  absl::flat_hash_map<uint32_t, int> cancelled;
  absl::MutexLock lock(&mu_);
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (alive.contains(it->first)) {
      ++it;
      continue;
    }
    // Under the lock: a context stays alive until its Unwatch, which waits for it.
    for (grpc::ClientContext* context : it->second) context->TryCancel();
    cancelled[it->first] = static_cast<int>(it->second.size());
    streams_.erase(it++);
  }
  return cancelled;
}

}  // namespace yard::coordinator
