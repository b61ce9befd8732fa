// How the coordinator asks expert workers to load slots: an interface, so the
// placement controller is tested without gRPC, and its gRPC implementation.
#ifndef SWITCHYARD_COORDINATOR_EXPERT_LOADER_H_
#define SWITCHYARD_COORDINATOR_EXPERT_LOADER_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/cluster.grpc.pb.h"
#include "proto/cluster.pb.h"
#include "transport/grpc/auth.h"

namespace yard::coordinator {

// Thread rule: the calls may be made from any thread; `done` runs once, on any
// thread (callers pass an Actor::Bind callable).
class ExpertLoaderInterface {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<cluster::LoadSlotsResponse>)>;
  using ReleaseDone = absl::AnyInvocable<void(absl::Status)>;
  virtual ~ExpertLoaderInterface() = default;
  virtual void LoadSlots(const std::string& grpc_address, cluster::LoadSlotsRequest request,
                         Done done) = 0;
  virtual void ReleaseSlots(const std::string& grpc_address, cluster::ReleaseSlotsRequest request,
                            ReleaseDone done) = 0;
};

// ExpertWorker.LoadSlots / ReleaseSlots over gRPC, one channel per address (kept for
// reuse), each presenting `security` (the cluster token).
//
// Thread rule: any thread. Ownership: in-flight calls own their state; the loader
// may be destroyed while calls are outstanding only after the gRPC library is done
// with them (the coordinator destroys it after its server has shut down).
class GrpcExpertLoader final : public ExpertLoaderInterface {
 public:
  // `deadline`: how long one LoadSlots may take (weights are read from disk).
  explicit GrpcExpertLoader(transport::ChannelSecurity security,
                            absl::Duration deadline = absl::Minutes(10))
      : security_(std::move(security)), deadline_(deadline) {}

  void LoadSlots(const std::string& grpc_address, cluster::LoadSlotsRequest request,
                 Done done) override ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseSlots(const std::string& grpc_address, cluster::ReleaseSlotsRequest request,
                    ReleaseDone done) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  cluster::ExpertWorker::Stub* StubFor(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);

  const transport::ChannelSecurity security_;
  const absl::Duration deadline_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<cluster::ExpertWorker::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_EXPERT_LOADER_H_
