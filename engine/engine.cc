#include "engine/engine.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::engine {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options,
                                                       PagedLatentCache& cache,
                                                       BatchForwardInterface& forward,
                                                       const DetokenizerInterface* detokenizer) {
  if (options.vocab_size <= 0 || options.vocab_size > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine: vocab_size must be in [1, 2^31], got ", options.vocab_size));
  }
  if (options.max_waiting < 0) {
    return absl::InvalidArgumentError("engine: max_waiting must be >= 0");
  }
  for (int32_t eos : options.scheduler.eos_token_ids) {
    if (eos < 0 || eos >= options.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("engine: eos token id ", eos, " outside the vocabulary"));
    }
  }
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(options.scheduler, cache);
  if (!scheduler.ok()) return scheduler.status();
  return std::unique_ptr<Engine>(
      new Engine(options, cache, forward, detokenizer, std::move(*scheduler)));
}

Engine::Engine(const EngineOptions& options, PagedLatentCache& cache,
               BatchForwardInterface& forward, const DetokenizerInterface* detokenizer,
               std::unique_ptr<Scheduler> scheduler)
    : options_(options),
      cache_(cache),
      forward_(forward),
      detokenizer_(detokenizer),
      scheduler_(std::move(scheduler)) {}

absl::Status Engine::ValidateRequest(const Request& request, const StreamCallback& callback) const {
  if (request.id.empty()) return absl::InvalidArgumentError("request id is empty");
  const std::string where = absl::StrCat("request ", request.id, ": ");
  if (!callback) return absl::InvalidArgumentError(absl::StrCat(where, "no stream callback"));
  if (requests_.contains(request.id)) {
    return absl::AlreadyExistsError(absl::StrCat(where, "id in use by an unfinished request"));
  }
  if (request.prompt.empty())
    return absl::InvalidArgumentError(absl::StrCat(where, "empty prompt"));
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    const int32_t token = request.prompt[i];
    if (token < 0 || token >= options_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(where, "prompt[", i, "] = ", token,
                                                     " outside [0, ", options_.vocab_size, ")"));
    }
  }
  for (int32_t token : request.stop_token_ids) {
    if (token < 0 || token >= options_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "stop token id ", token, " outside [0, ", options_.vocab_size, ")"));
    }
  }
  for (const std::string& stop : request.stop) {
    if (stop.empty()) return absl::InvalidArgumentError(absl::StrCat(where, "empty stop string"));
  }
  if (request.generated_before < 0 ||
      request.generated_before >= static_cast<int64_t>(request.prompt.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "generated_before ", request.generated_before,
                     " outside [0, prompt length ", request.prompt.size(), ")"));
  }
  if (!request.stop.empty() && detokenizer_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "stop strings need an engine with a detokenizer"));
  }
  absl::Status sampling = ValidateSamplingParams(request.sampling);
  if (!sampling.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, sampling.message()));
  }
  if (options_.max_waiting > 0 && scheduler_->num_waiting() >= options_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat(where, "waiting queue is full (", options_.max_waiting, " requests)"));
  }
  return absl::OkStatus();
}

absl::Status Engine::Submit(Request request, StreamCallback callback) {
  absl::Status valid = ValidateRequest(request, callback);
  if (!valid.ok()) return valid;
  SequenceSpec spec;
  // A resumed request's earlier tokens, replayed into its text stream below.
  const std::vector<int32_t> generated_before(request.prompt.end() - request.generated_before,
                                              request.prompt.end());
  spec.prompt = std::move(request.prompt);
  spec.max_tokens = request.max_tokens;
  spec.stop_token_ids = request.stop_token_ids;
  spec.ignore_eos = request.ignore_eos;
  absl::StatusOr<SequenceId> sequence = scheduler_->Add(std::move(spec));
  if (!sequence.ok()) {
    return absl::Status(sequence.status().code(),
                        absl::StrCat("request ", request.id, ": ", sequence.status().message()));
  }
  RequestRecord& record = requests_[request.id];
  record.id = request.id;
  record.sequence = *sequence;
  record.sampling = request.sampling;
  record.generated_before = static_cast<uint64_t>(request.generated_before);
  record.seed = request.sampling.seed.has_value()
                    ? *request.sampling.seed
                    : DeriveSeed(options_.seed, static_cast<uint64_t>(accepted_));
  record.callback = std::move(callback);
  if (detokenizer_ != nullptr) {
    record.text = detokenizer_->NewStream();
    record.stops.emplace(std::move(request.stop));
    if (!generated_before.empty()) {
      ReplayGenerated(record, generated_before, request.streamed_text);
    }
  }
  by_sequence_[*sequence] = &record;
  ++accepted_;
  return absl::OkStatus();
}

absl::Status Engine::Cancel(absl::string_view request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end() || it->second.finished) {
    return absl::NotFoundError(absl::StrCat("no unfinished request '", request_id, "'"));
  }
  RequestRecord& record = it->second;
  YARD_CHECK(!scheduler_->step_in_flight(), "Cancel during a step's forward");
  const absl::Status removed = scheduler_->Remove(record.sequence);
  YARD_CHECK(removed.ok(), "an unfinished request has a scheduler sequence");
  StreamEvent event;
  Finish(record, std::move(event), FinishReason::kCancelled);
  Deliver();
  return absl::OkStatus();
}

void Engine::ReplayGenerated(RequestRecord& record, const std::vector<int32_t>& tokens,
                             absl::string_view sent) {
  // The same tokens through a fresh text stream give the text the lost engine had
  // decoded; the part the client was not sent goes back into the stop-string matcher.
  std::string decoded;
  for (const int32_t t : tokens) decoded += record.text->Next(t);
  const size_t skip = absl::StartsWith(decoded, sent) ? sent.size() : decoded.size();
  record.pending_text = record.stops->Append(absl::string_view(decoded).substr(skip)).text;
}

StopStringMatcher::Result Engine::TokenText(RequestRecord& record, int32_t token) {
  if (record.text == nullptr) return {};
  StopStringMatcher::Result result = record.stops->Append(record.text->Next(token));
  if (!record.pending_text.empty()) {
    result.text.insert(0, record.pending_text);
    record.pending_text.clear();
  }
  return result;
}

std::string Engine::FlushText(RequestRecord& record) {
  if (record.text == nullptr || record.stops->stopped()) return "";
  StopStringMatcher::Result tail = record.stops->Append(record.text->Flush());
  tail.text.insert(0, record.pending_text);
  record.pending_text.clear();
  if (tail.stopped) return std::move(tail.text);
  return tail.text + record.stops->Flush();
}

void Engine::Finish(RequestRecord& record, StreamEvent event, FinishReason reason,
                    absl::Status status) {
  YARD_CHECK(!record.finished, "a request finishes once");
  if (reason != FinishReason::kStop || record.stops == std::nullopt || !record.stops->stopped()) {
    event.text += FlushText(record);
  }
  event.request_id = record.id;
  event.finish = reason;
  event.status = std::move(status);
  record.finished = true;
  by_sequence_.erase(record.sequence);
  ++finished_;
  outbox_.push_back(std::move(event));
}

void Engine::FailBatch(const StepPlan& plan, const absl::Status& status) {
  for (const ForwardSequence& fs : plan.batch.sequences) {
    auto it = by_sequence_.find(fs.sequence_id);
    if (it == by_sequence_.end()) continue;
    RequestRecord& record = *it->second;
    if (scheduler_->state(fs.sequence_id).has_value()) {
      const absl::Status removed = scheduler_->Remove(fs.sequence_id);
      YARD_CHECK(removed.ok(), "removing a known sequence");
    }
    Finish(record, StreamEvent(), FinishReason::kError, status);
  }
}

StepStats Engine::Step() {
  YARD_CHECK(!in_step_ && !delivering_, "Engine::Step re-entered (from a callback?)");
  StepStats stats;
  const StepPlan plan = scheduler_->Plan();
  if (plan.empty()) {
    Deliver();
    return stats;
  }
  in_step_ = true;
  const absl::Status applied = scheduler_->Apply(plan);
  YARD_CHECK(applied.ok(), "a fresh plan applies");
  stats.sequences = static_cast<int64_t>(plan.batch.sequences.size());
  stats.tokens = plan.batch.num_tokens();
  stats.admitted = static_cast<int64_t>(plan.admitted.size());
  stats.preempted = static_cast<int64_t>(plan.preempted.size());
  const int64_t finished_before = finished_;

  const int64_t rows = plan.batch.num_logit_rows();
  const int64_t vocab = options_.vocab_size;
  absl::StatusOr<ForwardResult> result =
      plan.batch.sequences.empty() ? ForwardResult() : forward_.Forward(plan.batch);
  if (result.ok() && static_cast<int64_t>(result->logits.size()) != rows * vocab) {
    result = absl::InternalError(absl::StrCat("forward returned ", result->logits.size(),
                                              " logits for ", rows, " rows of ", vocab));
  }

  std::vector<int32_t> sampled(rows, kNoToken);
  if (!result.ok()) {
    absl::StatusOr<std::vector<SequenceUpdate>> closed = scheduler_->Complete(plan, sampled);
    YARD_CHECK(closed.ok(), "completing the applied plan");
    FailBatch(plan, result.status());
  } else {
    // Sample every row first; the scheduler then appends them all at once.
    std::vector<absl::StatusOr<SampledToken>> samples;
    samples.reserve(rows);
    absl::flat_hash_map<SequenceId, int64_t> row_of;
    for (size_t i = 0; i < plan.batch.sequences.size(); ++i) {
      const ForwardSequence& fs = plan.batch.sequences[i];
      if (!fs.needs_logits) continue;
      const int64_t row = static_cast<int64_t>(samples.size());
      const RequestRecord& record = *by_sequence_.at(fs.sequence_id);
      const absl::Span<const float> logits(result->logits.data() + row * vocab, vocab);
      samples.push_back(Sample(logits, record.sampling, record.seed,
                               record.generated_before +
                                   static_cast<uint64_t>(plan.num_generated[i])));
      if (samples.back().ok()) sampled[row] = samples.back()->token;
      row_of[fs.sequence_id] = row;
    }
    absl::StatusOr<std::vector<SequenceUpdate>> updates = scheduler_->Complete(plan, sampled);
    YARD_CHECK(updates.ok(), "completing the applied plan");

    for (const SequenceUpdate& update : *updates) {
      RequestRecord& record = *by_sequence_.at(update.sequence_id);
      const absl::StatusOr<SampledToken>& sample = samples[row_of.at(update.sequence_id)];
      if (!update.token.has_value()) {
        Finish(record, StreamEvent(), FinishReason::kError, sample.status());
        continue;
      }
      ++stats.generated;
      ++generated_;
      StreamEvent event;
      event.request_id = record.id;
      event.token = *update.token;
      event.logprob = sample->logprob;
      event.top_logprobs = sample->top_logprobs;
      const bool token_stop =
          update.finish == FinishReason::kEos || update.finish == FinishReason::kStop;
      if (token_stop) {  // the stop token is reported; its text is not
        Finish(record, std::move(event), *update.finish);
        continue;
      }
      StopStringMatcher::Result text = TokenText(record, *update.token);
      event.text = std::move(text.text);
      if (text.stopped) {
        if (!update.finish.has_value()) {
          const absl::Status removed = scheduler_->Remove(update.sequence_id);
          YARD_CHECK(removed.ok(), "removing a running sequence");
        }
        Finish(record, std::move(event), FinishReason::kStop);
      } else if (update.finish.has_value()) {
        Finish(record, std::move(event), *update.finish);
      } else {
        outbox_.push_back(std::move(event));
      }
    }
  }
  stats.finished = finished_ - finished_before;
  in_step_ = false;
  Deliver();
  return stats;
}

int64_t Engine::RunUntilIdle() {
  int64_t steps = 0;
  while (!idle()) {
    const StepStats stats = Step();
    YARD_CHECK(stats.sequences > 0 || stats.preempted > 0 || !scheduler_->has_work(),
               "the scheduler made no progress with work pending");
    ++steps;
  }
  return steps;
}

void Engine::Deliver() {
  if (delivering_) return;
  delivering_ = true;
  while (!outbox_.empty()) {
    StreamEvent event = std::move(outbox_.front());
    outbox_.pop_front();
    auto it = requests_.find(event.request_id);
    YARD_CHECK(it != requests_.end(), "an event for an unknown request");
    if (!event.finish.has_value()) {
      // The record stays alive during its callback: only this loop erases records.
      it->second.callback(event);
      continue;
    }
    // Forget the request before its final callback, so the callback may reuse the id.
    StreamCallback callback = std::move(it->second.callback);
    requests_.erase(it);
    callback(event);
  }
  delivering_ = false;
}

EngineStats Engine::stats() const {
  EngineStats stats;
  stats.scheduler = scheduler_->stats();
  stats.kv = cache_.stats();
  stats.active_requests = static_cast<int64_t>(by_sequence_.size());
  stats.accepted_requests = accepted_;
  stats.finished_requests = finished_;
  stats.generated_tokens = generated_;
  return stats;
}

}  // namespace yard::engine
