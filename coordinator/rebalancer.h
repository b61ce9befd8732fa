// Live expert rebalancing (DESIGN.md "Expert placement and rebalancing", issue #5):
// plans a placement for the load window with the EPLB planner and moves the cluster to
// it without stopping a step:
//
//   plan ─▶ load (expert workers stage the new slots beside the old, pages prefetched
//   off their compute thread) ─▶ publish v+1 ─▶ switch (every live attention worker
//   installs v+1 at a step boundary and acknowledges) ─▶ release (slots v+1 no longer
//   names) ─▶ done
//
// It also keeps every expert served when expert workers come and go (DESIGN.md
// "Failure model"): when a worker that the placement in force names dies, a recovery
// job drops its slots and reloads each expert left without a replica into a free slot
// of a live worker (the one with the most free slots), then publishes; attention
// workers waiting on those experts send to the new slots at once. When a new expert
// worker registers (a restarted one gets a new id) and the placement names none of its
// slots, a rebalance (uniform load if none was reported) gives it a share. Both run
// like any job, one at a time; one found busy runs after the job in progress.
//
// An attention worker installs a version only between steps, after every combine of
// the step before has arrived, so once all have acknowledged v+1 no dispatch can still
// name an old slot, and releasing it is safe. A failure before publishing leaves v in
// force (the slots other workers staged are released again before the job ends); a
// switch that times out is reported and nothing is released.
//
// Thread rule: Run may be called from any thread; its callbacks run on the strand.
// Ownership: the controller, load window and loader are borrowed and must outlive it.
#ifndef SWITCHYARD_COORDINATOR_REBALANCER_H_
#define SWITCHYARD_COORDINATOR_REBALANCER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "actor/actor.h"
#include "boost/asio/steady_timer.hpp"
#include "coordinator/expert_load_window.h"
#include "coordinator/expert_loader.h"
#include "coordinator/membership.h"
#include "coordinator/placement_change.h"
#include "coordinator/placement_controller.h"
#include "proto/admin.pb.h"

namespace yard::coordinator {

// One operator edit of the placement in force, applied like a rebalance.
struct PlacementEdit {
  enum class Kind { kReplicate, kEvict };
  Kind kind = Kind::kReplicate;
  uint32_t layer = 0;
  // kReplicate: one more replica of `expert`, on `worker` (default: the expert worker
  // with the least load in the layer that does not hold the expert yet).
  int32_t expert = 0;
  std::optional<uint32_t> worker;
  // kEvict: the layer's slot at this index (placement order, as `yardctl experts`
  // lists them); its expert must keep another replica.
  uint32_t slot = 0;
};

struct RebalanceOptions {
  std::vector<uint32_t> moe_layers;
  int64_t num_experts = 0;
  int32_t groups = 1;  // the model's expert groups (n_group)
  int32_t nodes = 1;   // expert-worker nodes for the hierarchical policy (must divide W)
  double tolerance = 0.05;
  // Physical slots per layer beyond one per expert, for replicas of hot experts;
  // -1: one per expert worker. Rounded up so that every worker gets as many.
  int32_t redundant_slots = -1;
  absl::Duration switch_timeout = absl::Seconds(60);
  // Automatic rebalancing: every auto_interval, a rebalance is applied when the mean
  // imbalance of the placement in force over the load window exceeds auto_threshold
  // (0: never).
  double auto_threshold = 0;
  absl::Duration auto_interval = absl::Seconds(30);
  absl::Duration poll_interval = absl::Milliseconds(20);
};

class Rebalancer {
 public:
  using Progress = absl::AnyInvocable<void(admin::RebalanceProgress)>;
  using Done = absl::AnyInvocable<void(absl::Status)>;

  Rebalancer(RebalanceOptions options, PlacementController& placement,
             const ExpertLoadWindow& load, ExpertLoaderInterface& loader,
             actor::Actor::Executor executor);
  ~Rebalancer();

  // Plans (and with `apply`, runs) one rebalance; `progress` gets each step, `done`
  // the outcome. FailedPrecondition when one is already running, the cluster has no
  // placement yet, or no load was reported in the window.
  void Run(bool apply, Progress progress, Done done);
  // Moves every slot off `expert_worker` (a rebalance over the other live expert
  // workers, with a uniform load if none was reported) and leaves it out of every later
  // plan: once done it serves nothing and can be stopped. FailedPrecondition when it is
  // the last expert worker or not a live one.
  void Drain(uint32_t expert_worker, Progress progress, Done done);
  // Starts the automatic checks (options.auto_threshold > 0); `log` gets one line per
  // automatic rebalance started and ended.
  void StartAuto(absl::AnyInvocable<void(std::string)> log);
  // Applies one edit (InvalidArgument for a layer, expert, slot or worker that does not
  // exist; FailedPrecondition for evicting an expert's last replica).
  void Edit(PlacementEdit edit, Progress progress, Done done);

  // The membership table changed: starts a recovery or join job when one is due (see
  // above); `log` gets one line per job started and ended.
  void OnWorkers(WorkerSnapshot workers);
  // A Membership::Listener that posts OnWorkers here.
  Membership::Listener MakeListener(absl::AnyInvocable<void(std::string)> log);

 private:
  // Why a job runs beyond what the operator asked.
  enum class Trigger { kOperator, kRecover, kJoin };

  struct Job {
    bool apply = false;
    Trigger trigger = Trigger::kOperator;
    std::optional<uint32_t> drain;  // the expert worker being drained
    std::optional<PlacementEdit> edit;
    Progress progress;
    Done done;
    admin::RebalanceProgress summary;  // the "plan" figures, repeated in later phases
    PlacementChange change;
    std::map<uint32_t, std::string> addresses;  // expert worker → gRPC address
    int pending = 0;
    int finished = 0;
    bool published = false;
    std::vector<uint32_t> staged;  // expert workers whose slots loaded
    absl::Status failure;          // the first load that failed
    absl::Time switch_deadline;
  };

  void ArmAuto();
  void AutoCheck(ClusterState state);
  void StartJob(bool apply, std::optional<uint32_t> drain, std::optional<PlacementEdit> edit,
                Progress progress, Done done, Trigger trigger = Trigger::kOperator);
  // On the strand: starts the recovery or join job the membership calls for, if any and
  // no job is running.
  void MaybeRepair();
  void OnRepairState(ClusterState state);
  // `current` without slots on workers outside `capacities` (the live ones), with every
  // expert left without a slot reloaded on the worker of `workers` with the most free
  // slots. FailedPrecondition when none has one.
  absl::StatusOr<TargetPlacement> RecoveredTarget(
      const cluster::Placement& current, const std::vector<uint32_t>& workers,
      const std::vector<ExpertWorkerCapacity>& capacities) const;
  // The target of an edit of `current`, or why it cannot be made.
  absl::StatusOr<TargetPlacement> EditedTarget(const PlacementEdit& edit,
                                               const cluster::Placement& current,
                                               const ExpertLoadTotals& totals,
                                               const std::vector<uint32_t>& workers) const;
  void OnState(ClusterState state);
  // The job's change is planned (or why not): the "plan" report, then stop (dry run)
  // or run it.
  void OnPlanned(absl::StatusOr<PlacementChange> change, const cluster::Placement& current,
                 const ExpertLoadTotals& totals, double plan_ms, std::string what);
  void StartLoading();
  void OnLoaded(uint32_t worker, absl::StatusOr<cluster::LoadSlotsResponse> result);
  // After a failed load: releases what the other workers staged, then finishes.
  void Unstage();
  void PollSwitch();
  void OnSwitchState(ClusterState state);
  void StartReleasing();
  void OnReleased(absl::Status status);
  void Report(const char* phase, int done, int total, std::string message = "");
  void Finish(absl::Status status);

  const RebalanceOptions options_;
  PlacementController& placement_;
  const ExpertLoadWindow& load_;
  ExpertLoaderInterface& loader_;
  // On the strand:
  std::unique_ptr<Job> job_;
  std::set<uint32_t> drained_;  // expert workers no plan may use
  std::set<uint32_t> live_experts_;  // live expert workers in the latest membership table
  std::set<uint32_t> joined_;   // expert workers a join job ran for
  bool repair_due_ = false;     // the membership changed since the last repair check
  absl::AnyInvocable<void(std::string)> repair_log_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::unique_ptr<boost::asio::steady_timer> auto_timer_;
  absl::AnyInvocable<void(std::string)> auto_log_;
  actor::Actor actor_;  // last: destroyed first
};

// The plan's figures for `totals` and a placement (the "plan" progress message apart
// from phase): per-layer and mean imbalance of `placement` (before) and `next` (after).
void FillImbalance(const ExpertLoadTotals& totals, const cluster::Placement& before,
                   const cluster::Placement& after, admin::RebalanceProgress& out);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_REBALANCER_H_
