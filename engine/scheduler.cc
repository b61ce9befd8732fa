#include "engine/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::engine {

absl::Status ValidateSchedulerOptions(const SchedulerOptions& options) {
  if (options.max_num_seqs <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler: max_num_seqs must be > 0, got ", options.max_num_seqs));
  }
  if (options.max_batch_tokens < options.max_num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler: max_batch_tokens (", options.max_batch_tokens,
                     ") must be >= max_num_seqs (", options.max_num_seqs, ")"));
  }
  if (options.max_prefill_chunk <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler: max_prefill_chunk must be > 0, got ", options.max_prefill_chunk));
  }
  if (options.max_context <= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler: max_context must be > 1, got ", options.max_context));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerOptions& options,
                                                             PagedLatentCache& cache) {
  absl::Status status = ValidateSchedulerOptions(options);
  if (!status.ok()) return status;
  return std::unique_ptr<Scheduler>(new Scheduler(options, cache));
}

absl::StatusOr<SequenceId> Scheduler::Add(SequenceSpec spec) {
  const int64_t prompt_len = static_cast<int64_t>(spec.prompt.size());
  if (prompt_len == 0) return absl::InvalidArgumentError("empty prompt");
  if (spec.max_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be > 0, got ", spec.max_tokens));
  }
  if (prompt_len >= options_.max_context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt of ", prompt_len, " tokens leaves no room in a context of ", options_.max_context));
  }
  const int64_t longest =
      std::min(prompt_len + spec.max_tokens, options_.max_context) - 1;  // cached tokens
  if (cache_.BlocksFor(longest) > cache_.num_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a sequence of up to ", longest + 1, " tokens needs ",
                     cache_.BlocksFor(longest), " KV blocks; the cache has ", cache_.num_blocks()));
  }
  Sequence seq;
  seq.id = next_id_++;
  seq.prompt_len = prompt_len;
  seq.tokens = std::move(spec.prompt);
  seq.max_tokens = spec.max_tokens;
  seq.stop_token_ids = std::move(spec.stop_token_ids);
  seq.ignore_eos = spec.ignore_eos;
  const SequenceId id = seq.id;
  sequences_.emplace(id, std::move(seq));
  waiting_.push_back(id);
  ++version_;
  return id;
}

absl::Status Scheduler::Remove(SequenceId sequence) {
  auto it = sequences_.find(sequence);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("sequence ", sequence, " is not active"));
  }
  if (it->second.state == SequenceState::kWaiting) {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), sequence));
  } else {
    running_.erase(std::find(running_.begin(), running_.end(), sequence));
  }
  cache_.Free(sequence);
  sequences_.erase(it);
  ++version_;
  return absl::OkStatus();
}

void Scheduler::Schedule(const Sequence& seq, int64_t count, StepPlan& plan) const {
  ForwardSequence fs;
  fs.sequence_id = seq.id;
  fs.start_position = seq.computed;
  fs.tokens.assign(seq.tokens.begin() + seq.computed, seq.tokens.begin() + seq.computed + count);
  const absl::Span<const int32_t> table = plan.kv->BlockTable(seq.id);
  fs.block_table.assign(table.begin(), table.end());
  fs.needs_logits = seq.computed + count == static_cast<int64_t>(seq.tokens.size());
  plan.batch.sequences.push_back(std::move(fs));
  plan.num_generated.push_back(seq.num_generated());
}

StepPlan Scheduler::Plan() const {
  YARD_CHECK(!in_flight_, "Scheduler::Plan between Apply and Complete");
  StepPlan plan;
  plan.version = version_;
  plan.kv.emplace(cache_);
  KvCachePlan& kv = *plan.kv;
  const int64_t block_tokens = cache_.block_tokens();
  int64_t budget = options_.max_batch_tokens;

  auto remaining = [](const Sequence& s) {
    return static_cast<int64_t>(s.tokens.size()) - s.computed;
  };
  // Running sequences [0, live) are still candidates; [live, end) were preempted.
  size_t live = running_.size();
  int64_t pending_decodes = 0;
  for (SequenceId id : running_) {
    if (remaining(sequences_.at(id)) == 1) ++pending_decodes;
  }
  for (size_t i = 0; i < live; ++i) {
    const Sequence& seq = sequences_.at(running_[i]);
    const bool decode = remaining(seq) == 1;
    int64_t want;
    if (decode) {
      --pending_decodes;
      want = 1;
    } else {
      want = std::min({remaining(seq), options_.max_prefill_chunk, budget - pending_decodes});
      if (want <= 0) continue;  // no budget this step; keeps its blocks
    }
    bool preempt_self = false;
    while (kv.BlocksToGrow(seq.id, seq.computed + want) > kv.free_blocks()) {
      if (!decode) {
        const int64_t fit =
            kv.CapacityTokens(seq.id) + kv.free_blocks() * block_tokens - seq.computed;
        if (fit >= 1) {
          want = std::min(want, fit);
          break;
        }
      }
      if (live - 1 > i) {
        const SequenceId victim = running_[--live];
        if (remaining(sequences_.at(victim)) == 1) --pending_decodes;
        kv.Free(victim);
        plan.preempted.push_back(victim);
        continue;
      }
      preempt_self = true;
      break;
    }
    if (preempt_self) {
      kv.Free(seq.id);
      plan.preempted.push_back(seq.id);
      live = i;
      break;
    }
    const absl::Status reserved = kv.Reserve(seq.id, seq.computed + want);
    YARD_CHECK(reserved.ok(), "planned reservation must fit");
    Schedule(seq, want, plan);
    budget -= want;
  }

  if (plan.preempted.empty()) {
    int64_t running = static_cast<int64_t>(running_.size());
    for (SequenceId id : waiting_) {
      if (running >= options_.max_num_seqs || budget <= 0) break;
      const Sequence& seq = sequences_.at(id);
      YARD_CHECK(seq.computed == 0, "a waiting sequence has no cached tokens");
      const int64_t want = std::min({remaining(seq), options_.max_prefill_chunk, budget});
      if (kv.BlocksToGrow(id, want) > kv.free_blocks()) break;  // strict FCFS
      const absl::Status reserved = kv.Reserve(id, want);
      YARD_CHECK(reserved.ok(), "planned reservation must fit");
      Schedule(seq, want, plan);
      plan.admitted.push_back(id);
      budget -= want;
      ++running;
    }
  }
  return plan;
}

absl::Status Scheduler::Apply(const StepPlan& plan) {
  if (in_flight_) {
    return absl::FailedPreconditionError("scheduler: a step is applied and not completed");
  }
  if (plan.version != version_ || !plan.kv.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "scheduler: stale plan (version ", plan.version, ", scheduler at ", version_, ")"));
  }
  absl::Status status = cache_.Apply(*plan.kv);
  if (!status.ok()) return status;

  YARD_CHECK(plan.preempted.empty() || plan.admitted.empty(),
             "a step never admits while preempting");
  for (SequenceId id : plan.preempted) {
    Sequence& seq = sequences_.at(id);
    running_.erase(std::find(running_.begin(), running_.end(), id));
    seq.computed = 0;
    seq.state = SequenceState::kWaiting;
    waiting_.push_front(id);  // newest first, so the oldest victim ends up in front
    ++preemptions_;
  }
  for (SequenceId id : plan.admitted) {
    YARD_CHECK(!waiting_.empty() && waiting_.front() == id, "admission is FCFS");
    waiting_.pop_front();
    running_.push_back(id);
    sequences_.at(id).state = SequenceState::kPrefilling;
  }
  scheduled_tokens_ += plan.batch.num_tokens();
  ++steps_;
  ++version_;
  in_flight_ = true;
  applied_version_ = version_;
  return absl::OkStatus();
}

std::optional<FinishReason> Scheduler::StopReason(const Sequence& seq, int32_t token) const {
  if (!seq.ignore_eos) {
    for (int32_t eos : options_.eos_token_ids) {
      if (token == eos) return FinishReason::kEos;
    }
  }
  for (int32_t stop : seq.stop_token_ids) {
    if (token == stop) return FinishReason::kStop;
  }
  if (seq.num_generated() >= seq.max_tokens) return FinishReason::kLength;
  if (static_cast<int64_t>(seq.tokens.size()) >= options_.max_context) {
    return FinishReason::kLength;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<SequenceUpdate>> Scheduler::Complete(const StepPlan& plan,
                                                                absl::Span<const int32_t> sampled) {
  // Apply bumped the version once; Add/Remove since then bump it further, so compare
  // with the version Apply left rather than the current one.
  if (!in_flight_ || plan.version + 1 != applied_version_) {
    return absl::FailedPreconditionError("scheduler: Complete of a plan that is not in flight");
  }
  if (static_cast<int64_t>(sampled.size()) != plan.batch.num_logit_rows()) {
    return absl::InvalidArgumentError(absl::StrCat("scheduler: ", sampled.size(),
                                                   " sampled tokens for ",
                                                   plan.batch.num_logit_rows(), " logit rows"));
  }
  std::vector<SequenceUpdate> updates;
  std::vector<SequenceId> retired;  // in batch order, so blocks free deterministically
  size_t row = 0;
  for (const ForwardSequence& fs : plan.batch.sequences) {
    const int32_t token = fs.needs_logits ? sampled[row++] : kNoToken;
    auto it = sequences_.find(fs.sequence_id);
    if (it == sequences_.end()) continue;  // removed since Apply
    Sequence& seq = it->second;
    seq.computed = fs.end_position();
    if (!fs.needs_logits) continue;
    SequenceUpdate update;
    update.sequence_id = seq.id;
    if (token < 0) {
      update.finish = FinishReason::kError;
    } else {
      seq.tokens.push_back(token);
      seq.state = SequenceState::kDecoding;
      update.token = token;
      update.finish = StopReason(seq, token);
    }
    if (update.finish.has_value()) retired.push_back(seq.id);
    updates.push_back(update);
  }
  if (!retired.empty()) {
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [&](SequenceId id) {
                                    return std::find(retired.begin(), retired.end(), id) !=
                                           retired.end();
                                  }),
                   running_.end());
    for (SequenceId id : retired) {
      cache_.Free(id);
      sequences_.erase(id);
    }
  }
  in_flight_ = false;
  ++version_;
  return updates;
}

std::optional<SequenceState> Scheduler::state(SequenceId sequence) const {
  auto it = sequences_.find(sequence);
  if (it == sequences_.end()) return std::nullopt;
  return it->second.state;
}

absl::Span<const int32_t> Scheduler::tokens(SequenceId sequence) const {
  auto it = sequences_.find(sequence);
  if (it == sequences_.end()) return {};
  return it->second.tokens;
}

int64_t Scheduler::num_generated(SequenceId sequence) const {
  auto it = sequences_.find(sequence);
  return it == sequences_.end() ? 0 : it->second.num_generated();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats stats;
  stats.waiting = num_waiting();
  stats.running = num_running();
  stats.steps = steps_;
  stats.preemptions = preemptions_;
  stats.scheduled_tokens = scheduled_tokens_;
  return stats;
}

}  // namespace yard::engine
