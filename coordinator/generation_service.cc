#include "coordinator/generation_service.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/steady_timer.hpp"
#include "transport/grpc/grpc_status.h"

namespace yard::coordinator {
namespace {

// Fire and forget: tells the worker to stop a request whose client went away.
void SendCancel(std::shared_ptr<grpc::Channel> channel, uint64_t request_id) {
  struct Call {
    std::unique_ptr<cluster::AttentionWorker::Stub> stub;
    grpc::ClientContext context;
    cluster::CancelRequest request;
    cluster::CancelResponse response;
  };
  auto* call = new Call;
  call->stub = cluster::AttentionWorker::NewStub(std::move(channel));
  call->request.set_request_id(request_id);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  call->stub->async()->Cancel(&call->context, &call->request, &call->response,
                              [call](grpc::Status) { delete call; });
}

// Whether a worker stream that ended with `code` is worth resuming on another
// attention worker: the worker or its experts failed, not the request.
bool Resumable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::CANCELLED:  // the worker shut down (the client's own is seen first)
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

// Resumes of one request at most, and the pause before the n-th (n >= 2; the first is
// at once): a worker lost takes one resume, a cluster in trouble does not spin.
constexpr int kMaxResumes = 8;
absl::Duration ResumePause(int n) {
  return std::min(absl::Milliseconds(250) * (1 << std::min(n - 2, 4)), absl::Seconds(2));
}

// One Generate stream. Its gRPC callbacks (server side and the worker stream) only
// post to `actor_`; everything else runs there, so the fields need no lock.
//
//   start ─validate─▶ preparing (compute pool) ─▶ routing (Router) ─▶ streaming
//     │                  │                          │ ▲                  │
//     │                  │                          │ └─ worker failed: ─┤ resume from
//     │                  │                          │    route again     │ prompt + tokens
//     └──── error / cancel: Finish ◀────────────────┴────────────────────┘ streamed
//
// A resumed request continues on another attention worker (DESIGN.md "Failure model"):
// it is sent the prompt and the tokens the client already has, and its stream goes on
// with the next token, so the client sees no gap and no repeat.
//
// Deleted on its strand once gRPC is done with both calls (server OnDone, worker
// OnDone) and no pool or router answer is outstanding (`holds_`).
class GenerateCall final : public grpc::ServerWriteReactor<generation::GenerateResponse> {
 public:
  GenerateCall(GenerationService& service, const generation::GenerateRequest& request)
      : service_(service), request_(request), actor_("generate", service.deps().executor) {
    actor_.Post("generate.start", [this] { Start(); });
  }
  ~GenerateCall() override { service_.CallEnded(); }

  void OnWriteDone(bool ok) override {
    actor_.Post("generate.on_write_done", [this, ok] { HandleWriteDone(ok); });
  }
  void OnCancel() override { actor_.Post("generate.on_cancel", [this] { HandleCancel(); }); }
  void OnDone() override {
    actor_.Post("generate.on_done", [this] {
      server_done_ = true;
      MaybeDelete();
    });
  }

 private:
  class WorkerStream final : public grpc::ClientReadReactor<cluster::RunResponse> {
   public:
    explicit WorkerStream(GenerateCall& call) : call_(call) {}
    void OnReadDone(bool ok) override {
      call_.actor_.Post("generate.on_worker_read", [this, ok] { call_.HandleWorkerRead(ok); });
    }
    void OnDone(const grpc::Status& status) override {
      call_.actor_.Post("generate.on_worker_done",
                        [this, status] { call_.HandleWorkerDone(status); });
    }

   private:
    GenerateCall& call_;
  };

  void Start() {
    if (!service_.accepting()) {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down"));
      return;
    }
    absl::Status valid = ValidateGenerateRequest(request_, service_.limits());
    if (!valid.ok()) {
      FinishOnce(transport::ToGrpc(valid));
      return;
    }
    ++holds_;
    const model::Tokenizer* tokenizer = service_.deps().tokenizer;
    actor::RunThenPost(
        *service_.deps().compute, actor_, "generate.prepare",
        [tokenizer, request = request_] { return PromptTokens(request, *tokenizer); },
        [this](absl::StatusOr<std::vector<int32_t>> prompt) {
          --holds_;
          OnPrepared(std::move(prompt));
        });
  }

  void OnPrepared(absl::StatusOr<std::vector<int32_t>> prompt) {
    if (finished_) return MaybeDelete();
    absl::Status status = prompt.status();
    if (status.ok()) {
      status = CheckContext(static_cast<int64_t>(prompt->size()), request_.max_tokens(),
                            service_.limits());
    }
    if (!status.ok()) {
      FinishOnce(transport::ToGrpc(status));
      return;
    }
    prompt_ = *std::move(prompt);
    ++holds_;
    service_.deps().router->Pick(
        static_cast<int64_t>(prompt_.size()) + request_.max_tokens(),
        actor_.Bind("generate.on_route", [this](absl::StatusOr<Route> route) {
          --holds_;
          OnRouted(std::move(route));
        }));
  }

  void OnRouted(absl::StatusOr<Route> route) {
    if (!route.ok()) {
      const absl::StatusCode code = route.status().code();
      if (resumes_ > 0 && !finished_ && resumes_ < kMaxResumes &&
          (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kResourceExhausted)) {
        // No attention worker right now, or the coordinator is full: a request under
        // way waits for one to (re)register or for room.
        return Resume();
      }
      FinishOnce(transport::ToGrpc(route.status()));
      return MaybeDelete();
    }
    if (finished_) {  // cancelled while routing
      service_.deps().router->Finish(route->request_id);
      return MaybeDelete();
    }
    if (last_failure_full_ && generated_.empty() && failed_workers_.contains(route->worker_id)) {
      // Each attention worker tried refused it for a full queue: so does the cluster.
      service_.deps().router->Finish(route->request_id);
      FinishOnce(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "every attention worker's waiting queue is full; retry later"));
      return MaybeDelete();
    }
    route_ = *std::move(route);
    run_request_ = MakeRunRequest(request_, route_.request_id, prompt_);
    // A resumed request keeps the seed of its first route (MakeRunRequest derives one
    // from the request id when the client gave none).
    if (!seed_.has_value()) seed_ = run_request_.sampling().seed();
    run_request_.mutable_sampling()->set_seed(*seed_);
    run_request_.mutable_generated_token_ids()->Add(generated_.begin(), generated_.end());
    run_request_.set_streamed_text(streamed_text_);
    channel_ = service_.ChannelFor(route_.grpc_address);
    stub_ = cluster::AttentionWorker::NewStub(channel_);
    worker_ = std::make_unique<WorkerStream>(*this);
    worker_context_ = std::make_unique<grpc::ClientContext>();
    service_.worker_streams().Watch(route_.worker_id, worker_context_.get());
    worker_started_ = true;
    worker_done_ = false;
    worker_cancelled_ = false;
    ++holds_;
    stub_->async()->Run(worker_context_.get(), &run_request_, worker_.get());
    // Reads are started from this strand, outside gRPC's reactions: the hold keeps
    // OnDone (after which the stream must not be touched) back until no read will be
    // started any more (ReleaseWorkerHold).
    worker_->AddHold();
    worker_hold_ = true;
    // After a resume a write of the old stream's last tokens may still be in flight;
    // its completion starts the first read then.
    if (!writing_) worker_->StartRead(&run_response_);
    worker_->StartCall();
  }

  // The worker stream failed: route the request again (after a pause from the second
  // resume on), avoiding the workers it failed on.
  void Resume() {
    ++resumes_;
    if (static_cast<int64_t>(generated_.size()) >= request_.max_tokens()) {
      // Every token was streamed; only the finish was lost.
      saw_finish_ = true;
      generation::GenerateResponse last;
      last.set_finish_reason(generation::FINISH_REASON_LENGTH);
      last.mutable_usage()->set_prompt_tokens(static_cast<int32_t>(prompt_.size()));
      last.mutable_usage()->set_completion_tokens(completion_tokens_);
      if (writing_) {
        last_response_ = std::move(last);  // after the write in flight
      } else {
        out_ = std::move(last);
        writing_ = true;
        StartWrite(&out_);
      }
      FinishOnce(grpc::Status::OK);
      return;
    }
    auto pick = [this] {
      ++holds_;
      service_.deps().router->Pick(
          static_cast<int64_t>(prompt_.size()) + request_.max_tokens(),
          actor_.Bind("generate.on_reroute",
                      [this](absl::StatusOr<Route> route) {
                        --holds_;
                        OnRouted(std::move(route));
                      }),
          failed_workers_);
    };
    if (resumes_ == 1) return pick();
    ++holds_;
    timer_ = std::make_unique<boost::asio::steady_timer>(actor_.strand());
    timer_->expires_after(absl::ToChronoNanoseconds(ResumePause(resumes_)));
    timer_->async_wait(actor_.Bind("generate.resume_pause",
                                   [this, pick](const boost::system::error_code&) mutable {
                                     --holds_;
                                     if (finished_) return MaybeDelete();
                                     pick();
                                   }));
  }

  void HandleWorkerRead(bool ok) {
    if (!ok || finished_) {  // the worker's OnDone follows
      ReleaseWorkerHold();
      return;
    }
    std::optional<generation::FinishReason> reason;
    if (!run_response_.finish_reason().empty()) {
      reason = MapFinishReason(run_response_.finish_reason());
      if (!reason) {
        CancelWorker();
        FinishOnce(grpc::Status(
            grpc::StatusCode::INTERNAL,
            absl::StrCat("attention worker ", route_.worker_id, " sent finish_reason \"",
                         run_response_.finish_reason(), "\"")));
        ReleaseWorkerHold();
        return;
      }
    }
    out_ = ToGenerateResponse(run_response_);
    generated_.insert(generated_.end(), run_response_.token_ids().begin(),
                      run_response_.token_ids().end());
    streamed_text_ += run_response_.text();
    if (first_response_) {
      out_.mutable_prompt_token_ids()->Add(prompt_.begin(), prompt_.end());
      first_response_ = false;
    }
    completion_tokens_ += run_response_.token_ids_size();
    if (reason) {
      saw_finish_ = true;
      out_.set_finish_reason(*reason);
      out_.mutable_usage()->set_prompt_tokens(static_cast<int32_t>(prompt_.size()));
      out_.mutable_usage()->set_completion_tokens(completion_tokens_);
    }
    writing_ = true;
    StartWrite(&out_);
  }

  void HandleWriteDone(bool ok) {
    writing_ = false;
    if (last_response_ && ok) {
      out_ = *std::move(last_response_);
      last_response_.reset();
      writing_ = true;
      StartWrite(&out_);
      return;
    }
    if (pending_status_) {
      grpc::Status status = *std::move(pending_status_);
      pending_status_.reset();
      Finish(status);
      ReleaseWorkerHold();
      return;
    }
    if (finished_) {
      ReleaseWorkerHold();
      return;
    }
    if (!ok) {  // the client is gone
      CancelWorker();
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      ReleaseWorkerHold();
      return;
    }
    if (worker_hold_) worker_->StartRead(&run_response_);
  }

  // No read of the current worker stream will be started any more: gRPC may end it.
  void ReleaseWorkerHold() {
    if (!worker_hold_) return;
    worker_hold_ = false;
    worker_->RemoveHold();
  }

  void HandleWorkerDone(const grpc::Status& status) {
    service_.worker_streams().Unwatch(route_.worker_id, worker_context_.get());
    worker_done_ = true;
    --holds_;
    service_.deps().router->Finish(route_.request_id);
    if (!finished_) {
      if (status.ok() && saw_finish_) {
        FinishOnce(grpc::Status::OK);
      } else if (!status.ok() && !saw_finish_ && Resumable(status.error_code()) &&
                 resumes_ < kMaxResumes && service_.accepting()) {
        std::fprintf(stderr,
                     "coordinator: request %lu: attention worker %u failed (%s: %s); resuming "
                     "after %zu tokens\n",
                     static_cast<unsigned long>(route_.request_id), route_.worker_id,
                     absl::StatusCodeToString(transport::FromGrpc(status).code()).c_str(),
                     status.error_message().c_str(), generated_.size());
        failed_workers_.insert(route_.worker_id);
        last_failure_full_ = status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
        Resume();
      } else if (status.ok()) {
        FinishOnce(grpc::Status(grpc::StatusCode::INTERNAL,
                                absl::StrCat("attention worker ", route_.worker_id,
                                             " ended the stream without a finish_reason")));
      } else {
        FinishOnce(grpc::Status(status.error_code(),
                                absl::StrCat("attention worker ", route_.worker_id, " (",
                                             route_.grpc_address,
                                             "): ", status.error_message())));
      }
    }
    MaybeDelete();
  }

  void HandleCancel() {
    CancelWorker();
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  void CancelWorker() {
    if (!worker_started_ || worker_done_ || worker_cancelled_) return;
    worker_cancelled_ = true;
    worker_context_->TryCancel();
    SendCancel(channel_, route_.request_id);
  }

  // Finishes the server call once; after the write in flight, if any.
  void FinishOnce(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    if (writing_) {
      pending_status_ = std::move(status);
    } else {
      Finish(status);
    }
  }

  void MaybeDelete() {
    if (server_done_ && holds_ == 0) delete this;
  }

  GenerationService& service_;
  const generation::GenerateRequest request_;
  // All below: only on actor_'s strand.
  std::vector<int32_t> prompt_;
  Route route_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cluster::AttentionWorker::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> worker_context_;  // one per worker stream
  cluster::RunRequest run_request_;
  cluster::RunResponse run_response_;
  std::unique_ptr<WorkerStream> worker_;
  generation::GenerateResponse out_;
  std::optional<grpc::Status> pending_status_;
  std::optional<generation::GenerateResponse> last_response_;  // written after out_
  int holds_ = 0;  // outstanding pool, router and worker-stream answers
  int32_t completion_tokens_ = 0;
  std::vector<int32_t> generated_;  // tokens the client was sent
  std::string streamed_text_;       // and their text
  int resumes_ = 0;
  absl::flat_hash_set<uint32_t> failed_workers_;
  // The last worker refused the request for a full waiting queue.
  bool last_failure_full_ = false;
  std::optional<uint64_t> seed_;  // of the first route, kept by resumes
  std::unique_ptr<boost::asio::steady_timer> timer_;
  bool first_response_ = true;
  bool saw_finish_ = false;
  bool writing_ = false;
  bool finished_ = false;
  bool server_done_ = false;
  bool worker_started_ = false;
  bool worker_done_ = false;
  bool worker_cancelled_ = false;
  bool worker_hold_ = false;  // AddHold taken on worker_, not yet removed
  actor::Actor actor_;  // last: destroyed first
};

}  // namespace

GenerationService::GenerationService(GenerationServiceDeps deps, RequestLimits limits)
    : deps_(std::move(deps)), limits_(limits) {}

GenerationService::~GenerationService() = default;

grpc::ServerWriteReactor<generation::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* context, const generation::GenerateRequest* request) {
  if (grpc::Status auth = transport::CheckBearer(*context, deps_.api_keys, "API key");
      !auth.ok()) {
    return new transport::RefusedStream<generation::GenerateResponse>(auth);
  }
  {
    absl::MutexLock lock(&mu_);
    ++live_calls_;
  }
  return new GenerateCall(*this, *request);
}

Membership::Listener GenerationService::MakeListener() {
  return [streams = worker_streams_](const WorkerSnapshot& workers) {
    for (const auto& [worker, count] : streams->CancelLost(workers)) {
      std::fprintf(stderr,
                   "coordinator: attention worker %u declared dead: cancelling its %d "
                   "request stream(s) to resume them elsewhere\n",
                   worker, count);
    }
  };
}

void GenerationService::CallEnded() {
  absl::MutexLock lock(&mu_);
  --live_calls_;
}

void GenerationService::WaitForCalls() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* live) { return *live == 0; }, &live_calls_));
}

std::shared_ptr<grpc::Channel> GenerationService::ChannelFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<grpc::Channel>& channel = channels_[address];
  if (channel == nullptr) {
    channel = transport::CreateChannel(address, deps_.workers);
  }
  return channel;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const generation::TokenizeRequest* request,
                                                      generation::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = transport::CheckBearer(*context, deps_.api_keys, "API key");
      !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  const model::Tokenizer* tokenizer = deps_.tokenizer;
  deps_.compute->Post("generate.tokenize", [reactor, request, response, tokenizer] {
    absl::StatusOr<std::vector<int32_t>> ids = TokenizeInput(*request, *tokenizer);
    if (ids.ok()) response->mutable_token_ids()->Add(ids->begin(), ids->end());
    reactor->Finish(transport::ToGrpc(ids.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::ModelInfo(grpc::CallbackServerContext* context,
                                                       const generation::ModelInfoRequest*,
                                                       generation::ModelInfoResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = transport::CheckBearer(*context, deps_.api_keys, "API key");
      !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  const model::ModelConfig& config = *deps_.config;
  response->set_model_type(config.model_type == model::ModelType::kDeepseekV2 ? "deepseek_v2"
                                                                              : "deepseek_v3");
  response->set_vocab_size(static_cast<int32_t>(config.vocab_size));
  response->set_max_context(static_cast<int32_t>(limits_.max_context));
  response->set_num_layers(static_cast<int32_t>(config.num_hidden_layers));
  response->set_num_routed_experts(static_cast<int32_t>(config.n_routed_experts));
  response->set_experts_per_token(static_cast<int32_t>(config.num_experts_per_tok));
  response->set_weights_dtype(config.quantization ? "fp8" : "bf16");
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Health(grpc::CallbackServerContext* context,
                                                    const generation::HealthRequest*,
                                                    generation::HealthResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool accepting = accepting_.load();
  deps_.placement->GetState([reactor, response, accepting](ClusterState state) {
    response->set_serving(state.ready && accepting);
    response->set_attention_workers(state.attention_workers);
    response->set_expert_workers(state.expert_workers);
    response->set_experts_complete(state.experts_complete);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace yard::coordinator
