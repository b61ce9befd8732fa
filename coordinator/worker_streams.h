// The Generate calls' streams from attention workers, by worker. When membership
// declares a worker dead its streams are cancelled, so that their requests resume on
// another worker: a silent worker (stopped, or cut off without a reset) would
// otherwise hold them forever, its TCP connection looking healthy.
//
// Threading: any thread; Watch and Unwatch from the calls' strands, CancelLost from
// Membership's notifications. A watched context must stay alive until Unwatch.
#ifndef SWITCHYARD_COORDINATOR_WORKER_STREAMS_H_
#define SWITCHYARD_COORDINATOR_WORKER_STREAMS_H_

#include <cstdint>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/membership.h"

namespace yard::coordinator {

class WorkerStreams {
 public:
  void Watch(uint32_t worker_id, grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  void Unwatch(uint32_t worker_id, grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels (TryCancel) and forgets the streams of every watched worker that is not
  // alive in `workers`; returns how many, by worker.
  absl::flat_hash_map<uint32_t, int> CancelLost(const WorkerSnapshot& workers)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, absl::flat_hash_set<grpc::ClientContext*>> streams_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_WORKER_STREAMS_H_
