#include "coordinator/rebalancer.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/placement/eplb_planner.h"

namespace yard::coordinator {
namespace {


double Mean(const google::protobuf::RepeatedField<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return values.empty() ? 0.0 : sum / values.size();
}

}  // namespace

void FillImbalance(const ExpertLoadTotals& totals, const cluster::Placement& before,
                   const cluster::Placement& after, admin::RebalanceProgress& out) {
  std::map<uint32_t, const cluster::LayerPlacement*> old_layers, new_layers;
  for (const cluster::LayerPlacement& l : before.layers()) old_layers[l.layer()] = &l;
  for (const cluster::LayerPlacement& l : after.layers()) new_layers[l.layer()] = &l;
  const std::vector<uint32_t> old_workers = PlacedWorkers(before);
  const std::vector<uint32_t> new_workers = PlacedWorkers(after);
  out.clear_layers();
  out.clear_layer_imbalance_before();
  out.clear_layer_imbalance_after();
  for (size_t i = 0; i < totals.layers.size(); ++i) {
    const uint32_t layer = totals.layers[i];
    if (!old_layers.contains(layer) || !new_layers.contains(layer)) continue;
    out.add_layers(layer);
    out.add_layer_imbalance_before(
        LayerImbalance(*old_layers[layer], totals.tokens_per_expert[i], old_workers));
    out.add_layer_imbalance_after(
        LayerImbalance(*new_layers[layer], totals.tokens_per_expert[i], new_workers));
  }
  out.set_imbalance_before(Mean(out.layer_imbalance_before()));
  out.set_imbalance_after(Mean(out.layer_imbalance_after()));
}

Rebalancer::Rebalancer(RebalanceOptions options, PlacementController& placement,
                       const ExpertLoadWindow& load, ExpertLoaderInterface& loader,
                       actor::Actor::Executor executor)
    : options_(std::move(options)),
      placement_(placement),
      load_(load),
      loader_(loader),
      actor_("rebalancer", std::move(executor)) {}

Rebalancer::~Rebalancer() {
  if (timer_ != nullptr) timer_->cancel();
  if (auto_timer_ != nullptr) auto_timer_->cancel();
}

void Rebalancer::StartAuto(absl::AnyInvocable<void(std::string)> log) {
  actor_.Post("rebalancer.start_auto", [this, log = std::move(log)]() mutable {
    if (options_.auto_threshold <= 0) return;
    auto_log_ = std::move(log);
    auto_timer_ = std::make_unique<boost::asio::steady_timer>(actor_.strand());
    ArmAuto();
  });
}

void Rebalancer::ArmAuto() {
  auto_timer_->expires_after(absl::ToChronoNanoseconds(options_.auto_interval));
  auto_timer_->async_wait(actor_.Bind("rebalancer.auto", [this](const boost::system::error_code& e) {
    if (e) return;
    placement_.GetState(actor_.Bind("rebalancer.auto_state", [this](ClusterState state) {
      AutoCheck(std::move(state));
    }));
  }));
}

void Rebalancer::AutoCheck(ClusterState state) {
  ArmAuto();
  if (job_ != nullptr || state.placement.version() == 0) return;
  admin::RebalanceProgress now;
  FillImbalance(load_.Totals(), state.placement, state.placement, now);
  if (now.imbalance_before() <= options_.auto_threshold) return;
  auto_log_(absl::StrFormat("automatic rebalance: imbalance %.3f above %.3f",
                            now.imbalance_before(), options_.auto_threshold));
  StartJob(true, std::nullopt, std::nullopt, [](admin::RebalanceProgress) {},
           actor_.Bind("rebalancer.auto_done", [this](absl::Status s) {
             auto_log_(s.ok() ? std::string("automatic rebalance done")
                              : absl::StrCat("automatic rebalance failed: ", s.message()));
           }));
}

void Rebalancer::Run(bool apply, Progress progress, Done done) {
  StartJob(apply, std::nullopt, std::nullopt, std::move(progress), std::move(done));
}

void Rebalancer::Drain(uint32_t expert_worker, Progress progress, Done done) {
  StartJob(true, expert_worker, std::nullopt, std::move(progress), std::move(done));
}

void Rebalancer::Edit(PlacementEdit edit, Progress progress, Done done) {
  StartJob(true, std::nullopt, edit, std::move(progress), std::move(done));
}

Membership::Listener Rebalancer::MakeListener(absl::AnyInvocable<void(std::string)> log) {
  actor_.Post("rebalancer.set_repair_log",
              [this, log = std::move(log)]() mutable { repair_log_ = std::move(log); });
  auto post = actor_.Bind("rebalancer.on_workers",
                          [this](WorkerSnapshot workers) { OnWorkers(std::move(workers)); });
  return [post](const WorkerSnapshot& workers) mutable { post(workers); };
}

void Rebalancer::OnWorkers(WorkerSnapshot workers) {
  YARD_DCHECK_ON_STRAND(actor_);
  // Heartbeats notify too: act only when which expert workers are alive changed.
  std::set<uint32_t> live;
  for (const WorkerRecord& w : workers) {
    if (w.alive && w.info.role() == cluster::ROLE_EXPERT) live.insert(w.id);
  }
  if (live == live_experts_) return;
  live_experts_ = std::move(live);
  repair_due_ = true;
  MaybeRepair();
}

void Rebalancer::MaybeRepair() {
  if (!repair_due_ || job_ != nullptr) return;
  repair_due_ = false;
  placement_.GetState(actor_.Bind("rebalancer.on_repair_state", [this](ClusterState state) {
    OnRepairState(std::move(state));
  }));
}

void Rebalancer::OnRepairState(ClusterState state) {
  if (job_ != nullptr) {  // an operator's job started meanwhile: check after it
    repair_due_ = true;
    return;
  }
  if (state.placement.version() == 0) return;  // the initial placement is not ours
  std::set<uint32_t> live;
  for (const WorkerRecord& w : state.live_expert_workers) live.insert(w.id);
  std::vector<uint32_t> lost, fresh;
  const std::vector<uint32_t> placed = PlacedWorkers(state.placement);
  for (uint32_t w : placed) {
    if (!live.contains(w)) lost.push_back(w);
  }
  for (uint32_t w : live) {
    if (!drained_.contains(w) && !joined_.contains(w) &&
        std::find(placed.begin(), placed.end(), w) == placed.end()) {
      fresh.push_back(w);
    }
  }
  if (lost.empty() && fresh.empty()) return;
  const Trigger trigger = lost.empty() ? Trigger::kJoin : Trigger::kRecover;
  if (trigger == Trigger::kJoin) joined_.insert(fresh.begin(), fresh.end());
  const std::string what =
      trigger == Trigger::kRecover
          ? absl::StrCat("expert worker(s) ", absl::StrJoin(lost, ", "),
                         " lost: reloading their experts on the live workers")
          : absl::StrCat("expert worker(s) ", absl::StrJoin(fresh, ", "),
                         " joined: rebalancing onto them");
  if (repair_log_) repair_log_(what);
  const auto started = absl::Now();
  StartJob(true, std::nullopt, std::nullopt, [](admin::RebalanceProgress) {},
           actor_.Bind("rebalancer.repair_done",
                       [this, what, started](absl::Status s) {
                         if (!repair_log_) return;
                         repair_log_(absl::StrCat(
                             what, s.ok() ? ": done in " : ": failed after ",
                             absl::FormatDuration(absl::Now() - started),
                             s.ok() ? "" : absl::StrCat(": ", s.message())));
                       }),
           trigger);
}

absl::StatusOr<TargetPlacement> Rebalancer::RecoveredTarget(
    const cluster::Placement& current, const std::vector<uint32_t>& workers,
    const std::vector<ExpertWorkerCapacity>& capacities) const {
  std::map<uint32_t, int64_t> free;
  for (const ExpertWorkerCapacity& c : capacities) free[c.worker_id] = c.slot_capacity;
  for (const cluster::LayerPlacement& l : current.layers()) {
    for (const cluster::Slot& s : l.slots()) {
      if (free.contains(s.worker_id())) --free[s.worker_id()];
    }
  }
  TargetPlacement target = TargetOf(current);
  for (size_t i = 0; i < target.layers.size(); ++i) {
    std::vector<std::pair<uint32_t, int32_t>>& slots = target.slots[i];
    std::erase_if(slots, [&](const auto& s) { return !free.contains(s.first); });
    std::vector<bool> covered(options_.num_experts, false);
    for (const auto& [w, e] : slots) {
      if (e >= 0 && e < options_.num_experts) covered[e] = true;
    }
    for (int32_t e = 0; e < options_.num_experts; ++e) {
      if (covered[e]) continue;
      std::optional<uint32_t> best;
      for (uint32_t w : workers) {
        if (free[w] > 0 && (!best.has_value() || free[w] > free[*best])) best = w;
      }
      if (!best.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "no live expert worker has a free slot for expert ", e, " of layer ",
            target.layers[i], ": start another expert worker (it takes them when it registers)"));
      }
      --free[*best];
      slots.emplace_back(*best, e);
    }
  }
  return target;
}

void Rebalancer::StartJob(bool apply, std::optional<uint32_t> drain,
                          std::optional<PlacementEdit> edit, Progress progress, Done done,
                          Trigger trigger) {
  actor_.Post("rebalancer.run", [this, apply, drain, edit, trigger,
                                 progress = std::move(progress),
                                 done = std::move(done)]() mutable {
    if (job_ != nullptr) {
      done(absl::FailedPreconditionError("a rebalance is already running"));
      return;
    }
    job_ = std::make_unique<Job>();
    job_->apply = apply;
    job_->trigger = trigger;
    job_->drain = drain;
    job_->edit = edit;
    job_->progress = std::move(progress);
    job_->done = std::move(done);
    placement_.GetState(actor_.Bind("rebalancer.on_state", [this](ClusterState state) {
      OnState(std::move(state));
    }));
  });
}

void Rebalancer::OnState(ClusterState state) {
  const cluster::Placement& current = state.placement;
  if (current.version() == 0) {
    Finish(absl::FailedPreconditionError("the cluster has no expert placement yet"));
    return;
  }
  const ExpertLoadTotals totals = load_.Totals();
  uint64_t routed = 0;
  for (const std::vector<uint64_t>& layer : totals.tokens_per_expert) {
    for (uint64_t n : layer) routed += n;
  }
  if (routed == 0 && !job_->drain.has_value() && !job_->edit.has_value() &&
      job_->trigger == Trigger::kOperator) {
    Finish(absl::FailedPreconditionError(
        "no routed tokens in the load window yet: serve some requests first"));
    return;
  }
  // The live expert workers not drained, ascending; each holds an equal share of every
  // layer.
  std::vector<uint32_t> workers;
  std::vector<ExpertWorkerCapacity> capacities;
  bool drained_is_live = false;
  for (const WorkerRecord& w : state.live_expert_workers) {
    job_->addresses[w.id] = w.info.grpc_address();
    capacities.push_back({w.id, w.info.slot_capacity()});
    if (job_->drain == w.id) drained_is_live = true;
    if (job_->drain == w.id || drained_.contains(w.id)) continue;
    workers.push_back(w.id);
  }
  std::sort(workers.begin(), workers.end());
  if (job_->drain.has_value() && !drained_is_live) {
    Finish(absl::FailedPreconditionError(
        absl::StrCat("worker ", *job_->drain, " is not a live expert worker")));
    return;
  }
  if (workers.empty()) {
    Finish(absl::FailedPreconditionError(
        job_->drain.has_value() ? "it is the last expert worker: nothing could take its slots"
                                : "no live expert worker"));
    return;
  }
  const int64_t experts = options_.num_experts;
  if (job_->trigger == Trigger::kRecover) {
    absl::StatusOr<TargetPlacement> target = RecoveredTarget(current, workers, capacities);
    OnPlanned(target.ok() ? PlanChangeTo(current, *target, experts, capacities)
                          : absl::StatusOr<PlacementChange>(target.status()),
              current, totals, /*plan_ms=*/0, "experts of lost workers reloaded");
    return;
  }
  if (job_->edit.has_value()) {
    absl::StatusOr<TargetPlacement> target = EditedTarget(*job_->edit, current, totals, workers);
    absl::StatusOr<PlacementChange> change =
        target.ok() ? PlanChangeTo(current, *target, experts, capacities)
                    : absl::StatusOr<PlacementChange>(target.status());
    OnPlanned(std::move(change), current, totals, /*plan_ms=*/0,
              job_->edit->kind == PlacementEdit::Kind::kReplicate ? "one more replica"
                                                                   : "one replica fewer");
    return;
  }
  const int32_t num_workers = static_cast<int32_t>(workers.size());
  const int64_t extra = options_.redundant_slots >= 0 ? options_.redundant_slots : num_workers;
  int64_t slots = (experts + extra + num_workers - 1) / num_workers * num_workers;
  // No more slots per layer than every worker can hold for all layers.
  int64_t min_capacity = INT64_MAX;
  for (const ExpertWorkerCapacity& c : capacities) {
    if (std::find(workers.begin(), workers.end(), c.worker_id) != workers.end()) {
      min_capacity = std::min<int64_t>(min_capacity, c.slot_capacity);
    }
  }
  const int64_t num_layers = std::max<int64_t>(1, static_cast<int64_t>(totals.layers.size()));
  slots = std::min(slots, min_capacity / num_layers * num_workers);
  if (slots < experts) {
    Finish(absl::FailedPreconditionError(absl::StrCat(
        num_workers, " expert workers of ", min_capacity, " slots cannot hold ", experts,
        " experts in each of ", num_layers, " layers")));
    return;
  }

  // Nothing routed yet (a drain only): every expert counts alike.
  placement::ExpertLoad load(totals.layers.size(), std::vector<double>(experts, 1.0));
  for (size_t l = 0; routed > 0 && l < totals.layers.size(); ++l) {
    for (int64_t e = 0; e < experts; ++e) {
      load[l][e] = static_cast<double>(totals.tokens_per_expert[l][e]);
    }
  }
  placement::EplbOptions eplb;
  eplb.num_slots = static_cast<int32_t>(slots);
  eplb.num_groups = options_.groups;
  eplb.num_nodes = num_workers % options_.nodes == 0 ? options_.nodes : 1;
  eplb.num_workers = num_workers;
  eplb.stickiness_tolerance = options_.tolerance;
  // The planner keeps experts in place when the placement in use has its shape.
  std::optional<PhysicalPlan> in_use = ToPhysicalPlan(current, totals.layers, workers);
  const placement::Phy2Log* sticky = nullptr;
  if (in_use.has_value() && !in_use->phy2log.empty() &&
      static_cast<int32_t>(in_use->phy2log[0].size()) == slots) {
    sticky = &in_use->phy2log;
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<placement::EplbPlan> plan = placement::PlanPlacement(load, eplb, sticky);
  const double plan_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!plan.ok()) {
    Finish(plan.status());
    return;
  }
  OnPlanned(PlanPlacementChange(current, PhysicalPlan{totals.layers, workers, plan->phy2log},
                                experts, capacities),
            current, totals, plan_ms,
            absl::StrCat(slots, " slots per layer on ", num_workers, " expert workers, ",
                         eplb.num_groups % eplb.num_nodes == 0 && eplb.num_nodes > 1
                             ? "hierarchical"
                             : "global",
                         " policy", sticky != nullptr ? ", keeping experts in place" : ""));
}

void Rebalancer::OnPlanned(absl::StatusOr<PlacementChange> change,
                           const cluster::Placement& current, const ExpertLoadTotals& totals,
                           double plan_ms, std::string what) {
  if (!change.ok()) {
    Finish(change.status());
    return;
  }
  job_->change = *std::move(change);
  // Dead workers' slots are gone with them: nothing to release there.
  std::erase_if(job_->change.releases,
                [this](const auto& entry) { return !job_->addresses.contains(entry.first); });
  admin::RebalanceProgress& summary = job_->summary;
  FillImbalance(totals, current, job_->change.next, summary);
  summary.set_plan_ms(plan_ms);
  summary.set_placement_version(job_->change.next.version());
  summary.set_slots_loaded(job_->change.slots_loaded);
  int64_t released = 0;
  for (const auto& [worker, list] : job_->change.releases) released += list.size();
  summary.set_slots_released(released);
  Report("plan", 1, 1, std::move(what));
  if (!job_->apply) {
    Finish(absl::OkStatus());
    return;
  }
  StartLoading();
}

absl::StatusOr<TargetPlacement> Rebalancer::EditedTarget(const PlacementEdit& edit,
                                                        const cluster::Placement& current,
                                                        const ExpertLoadTotals& totals,
                                                        const std::vector<uint32_t>& workers) const {
  TargetPlacement target = TargetOf(current);
  const auto at = std::find(target.layers.begin(), target.layers.end(), edit.layer);
  if (at == target.layers.end()) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", edit.layer, " is not a MoE layer"));
  }
  std::vector<std::pair<uint32_t, int32_t>>& slots = target.slots[at - target.layers.begin()];
  if (edit.kind == PlacementEdit::Kind::kEvict) {
    if (edit.slot >= slots.size()) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", edit.layer, " has ", slots.size(),
                                                     " slots; there is no slot ", edit.slot));
    }
    const int32_t expert = slots[edit.slot].second;
    const auto replicas = std::count_if(slots.begin(), slots.end(),
                                        [expert](const auto& s) { return s.second == expert; });
    if (replicas < 2) {
      return absl::FailedPreconditionError(absl::StrCat(
          "slot ", edit.slot, " holds the last replica of expert ", expert, " of layer ",
          edit.layer));
    }
    slots.erase(slots.begin() + edit.slot);
    return target;
  }
  if (edit.expert < 0 || edit.expert >= options_.num_experts) {
    return absl::InvalidArgumentError(absl::StrCat("expert ", edit.expert, " out of range"));
  }
  auto holds = [&](uint32_t worker) {
    return std::find(slots.begin(), slots.end(), std::make_pair(worker, edit.expert)) !=
           slots.end();
  };
  std::optional<uint32_t> worker = edit.worker;
  if (worker.has_value()) {
    if (std::find(workers.begin(), workers.end(), *worker) == workers.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker ", *worker, " is not a live expert worker in service"));
    }
  } else {
    // The least loaded worker of this layer without the expert (tokens split over
    // replicas, from the load window).
    const size_t index = std::find(totals.layers.begin(), totals.layers.end(), edit.layer) -
                         totals.layers.begin();
    std::map<int32_t, int> replicas;
    for (const auto& [w, e] : slots) ++replicas[e];
    double best = 0;
    for (uint32_t w : workers) {
      if (holds(w)) continue;
      double load = 0;
      for (const auto& [slot_worker, e] : slots) {
        if (slot_worker == w && index < totals.layers.size()) {
          load += static_cast<double>(totals.tokens_per_expert[index][e]) / replicas[e];
        }
      }
      if (!worker.has_value() || load < best) {
        worker = w;
        best = load;
      }
    }
    if (!worker.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "every expert worker already holds expert ", edit.expert, " of layer ", edit.layer));
    }
  }
  slots.emplace_back(*worker, edit.expert);
  return target;
}

void Rebalancer::StartLoading() {
  job_->pending = static_cast<int>(job_->change.loads.size());
  job_->finished = 0;
  Report("load", 0, job_->pending);
  if (job_->pending == 0) {
    placement_.Publish(job_->change.next);
    job_->published = true;
    job_->switch_deadline = absl::Now() + options_.switch_timeout;
    PollSwitch();
    return;
  }
  for (auto& [worker, request] : job_->change.loads) {
    const uint32_t id = worker;
    loader_.LoadSlots(job_->addresses[id], request,
                      actor_.Bind("rebalancer.on_loaded",
                                  [this, id](absl::StatusOr<cluster::LoadSlotsResponse> r) {
                                    OnLoaded(id, std::move(r));
                                  }));
  }
}

void Rebalancer::OnLoaded(uint32_t worker, absl::StatusOr<cluster::LoadSlotsResponse> result) {
  if (job_ == nullptr || job_->pending == 0 || job_->published) return;
  if (!result.ok()) {
    if (job_->failure.ok()) {
      job_->failure = absl::Status(
          result.status().code(),
          absl::StrCat("expert worker ", worker, " could not stage its slots: ",
                       result.status().message(), " (placement v",
                       job_->change.next.version() - 1, " stays in force)"));
    }
  } else {
    job_->staged.push_back(worker);
    ++job_->finished;
    Report("load", job_->finished, static_cast<int>(job_->change.loads.size()));
  }
  if (--job_->pending > 0) return;
  if (!job_->failure.ok()) {
    Unstage();
    return;
  }
  placement_.Publish(job_->change.next);
  job_->published = true;
  job_->switch_deadline = absl::Now() + options_.switch_timeout;
  PollSwitch();
}

void Rebalancer::Unstage() {
  // Slots staged for a version never published: released before the job ends, so that
  // the next plan (which counts them free) does not find them taken.
  job_->pending = static_cast<int>(job_->staged.size());
  if (job_->pending == 0) {
    Finish(job_->failure);
    return;
  }
  for (uint32_t worker : job_->staged) {
    cluster::ReleaseSlotsRequest request;
    for (const cluster::SlotLoad& slot : job_->change.loads[worker].slots()) {
      request.add_slots(slot.slot());
    }
    loader_.ReleaseSlots(job_->addresses[worker], std::move(request),
                         actor_.Bind("rebalancer.on_unstaged", [this](absl::Status) {
                           if (job_ != nullptr && --job_->pending == 0) Finish(job_->failure);
                         }));
  }
}

void Rebalancer::PollSwitch() {
  placement_.GetState(actor_.Bind("rebalancer.on_switch_state", [this](ClusterState state) {
    OnSwitchState(std::move(state));
  }));
}

void Rebalancer::OnSwitchState(ClusterState state) {
  if (job_ == nullptr) return;
  const uint64_t version = job_->change.next.version();
  if (state.placement.version() != version) {
    Finish(absl::AbortedError(absl::StrCat("placement v", state.placement.version(),
                                           " replaced v", version, " during the switch")));
    return;
  }
  if (state.attention_acked_version >= version) {
    Report("switch", state.attention_workers, state.attention_workers);
    StartReleasing();
    return;
  }
  if (absl::Now() > job_->switch_deadline) {
    Finish(absl::DeadlineExceededError(absl::StrCat(
        "not every attention worker acknowledged placement v", version, " within ",
        absl::FormatDuration(options_.switch_timeout), "; old slots left loaded")));
    return;
  }
  if (timer_ == nullptr) timer_ = std::make_unique<boost::asio::steady_timer>(actor_.strand());
  timer_->expires_after(absl::ToChronoNanoseconds(options_.poll_interval));
  timer_->async_wait(actor_.Bind("rebalancer.poll", [this](const boost::system::error_code& e) {
    if (!e) PollSwitch();
  }));
}

void Rebalancer::StartReleasing() {
  job_->pending = static_cast<int>(job_->change.releases.size());
  job_->finished = 0;
  Report("release", 0, job_->pending);
  if (job_->pending == 0) {
    Report("done", 1, 1);
    Finish(absl::OkStatus());
    return;
  }
  for (auto& [worker, slots] : job_->change.releases) {
    cluster::ReleaseSlotsRequest request;
    for (uint32_t s : slots) request.add_slots(s);
    loader_.ReleaseSlots(job_->addresses[worker], std::move(request),
                         actor_.Bind("rebalancer.on_released",
                                     [this](absl::Status s) { OnReleased(std::move(s)); }));
  }
}

void Rebalancer::OnReleased(absl::Status status) {
  if (job_ == nullptr || job_->pending == 0) return;
  // A failed release leaves an unused slot loaded: reported, not fatal to the switch.
  if (!status.ok()) {
    Report("release", job_->finished, static_cast<int>(job_->change.releases.size()),
           std::string(status.message()));
  }
  ++job_->finished;
  Report("release", job_->finished, static_cast<int>(job_->change.releases.size()));
  if (--job_->pending > 0) return;
  Report("done", 1, 1);
  Finish(absl::OkStatus());
}

void Rebalancer::Report(const char* phase, int done, int total, std::string message) {
  admin::RebalanceProgress p = job_->summary;
  p.set_phase(phase);
  p.set_done(done);
  p.set_total(total);
  p.set_message(std::move(message));
  job_->progress(std::move(p));
}

void Rebalancer::Finish(absl::Status status) {
  std::unique_ptr<Job> job = std::move(job_);
  // A drained worker stays out of later plans once its slots have moved (from the
  // publication on, which a failure after it does not undo).
  if (job->drain.has_value() && (status.ok() || job->published)) drained_.insert(*job->drain);
  // A worker lost or joined during any job is seen to after it; a failed repair waits
  // for the next membership change (no retry loop while nothing can change).
  const bool failed_repair = job->trigger != Trigger::kOperator && !status.ok();
  if (failed_repair && job->trigger == Trigger::kJoin) joined_.clear();
  job->done(std::move(status));
  // (A change seen during the job has set repair_due_ already: kept.)
  if (!failed_repair) repair_due_ = true;
  MaybeRepair();
}

}  // namespace yard::coordinator
