#include "attention_worker/attention_service.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "transport/grpc/auth.h"
#include "transport/grpc/grpc_status.h"

namespace yard::attention_worker {
namespace {

constexpr int kMaxLogprobs = 20;

// Events of one call, from the engine thread to the gRPC thread that writes them.
struct EventQueue {
  std::mutex mu;
  std::condition_variable ready;
  std::deque<engine::StreamEvent> events;
  absl::Status submit_error;  // set if Submit failed
  bool submitted = false;
};

}  // namespace

absl::StatusOr<engine::Request> ToEngineRequest(const cluster::RunRequest& run) {
  if (run.logprobs() < 0 || run.logprobs() > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("logprobs ", run.logprobs(), " outside [0, ", kMaxLogprobs, "]"));
  }
  if (run.max_tokens() <= run.generated_token_ids_size()) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens ", run.max_tokens(),
                                                   " leaves nothing after the ",
                                                   run.generated_token_ids_size(),
                                                   " tokens already generated"));
  }
  engine::Request r;
  r.id = absl::StrCat(run.request_id());
  r.prompt.assign(run.prompt_token_ids().begin(), run.prompt_token_ids().end());
  r.prompt.insert(r.prompt.end(), run.generated_token_ids().begin(),
                  run.generated_token_ids().end());
  r.max_tokens = run.max_tokens() - run.generated_token_ids_size();
  // Random stream, text and stop strings go on where the previous worker left them.
  r.generated_before = run.generated_token_ids_size();
  r.streamed_text = run.streamed_text();
  r.sampling.temperature = run.sampling().temperature();
  r.sampling.top_k = run.sampling().top_k();
  r.sampling.top_p = run.sampling().top_p() == 0.0f ? 1.0 : run.sampling().top_p();
  r.sampling.seed = run.sampling().seed();
  r.sampling.logprobs = run.logprobs() > 0;
  r.sampling.top_logprobs = run.logprobs();
  r.stop.assign(run.stop().begin(), run.stop().end());
  r.ignore_eos = run.ignore_eos();
  return r;
}

cluster::RunResponse ToRunResponse(const engine::StreamEvent& event) {
  cluster::RunResponse response;
  if (event.token) {
    response.add_token_ids(*event.token);
    if (event.logprob) {
      cluster::StepLogprobs* lp = response.add_logprobs();
      lp->mutable_chosen()->set_id(*event.token);
      lp->mutable_chosen()->set_logprob(*event.logprob);
      for (const engine::TokenLogprob& t : event.top_logprobs) {
        cluster::TokenLogprob* top = lp->add_top();
        top->set_id(t.token);
        top->set_logprob(t.logprob);
      }
    }
  }
  response.set_text(event.text);
  if (event.finish) {
    response.set_finish_reason(std::string(engine::FinishReasonName(*event.finish)));
  }
  return response;
}

grpc::Status AttentionWorkerService::Run(grpc::ServerContext* context,
                                         const cluster::RunRequest* run,
                                         grpc::ServerWriter<cluster::RunResponse>* writer) {
  if (grpc::Status auth = transport::CheckBearer(*context, accepted_, "cluster token");
      !auth.ok()) {
    return auth;
  }
  absl::StatusOr<engine::Request> request = ToEngineRequest(*run);
  if (!request.ok()) return transport::ToGrpc(request.status());
  const std::string id = request->id;
  auto queue = std::make_shared<EventQueue>();
  runner_.Post([queue, request = *std::move(request)](engine::Engine& engine) mutable {
    absl::Status s = engine.Submit(std::move(request), [queue](const engine::StreamEvent& e) {
      std::lock_guard<std::mutex> lock(queue->mu);
      queue->events.push_back(e);
      queue->ready.notify_one();
    });
    std::lock_guard<std::mutex> lock(queue->mu);
    queue->submitted = true;
    queue->submit_error = s;
    queue->ready.notify_one();
  });

  bool cancel_sent = false;
  while (true) {
    std::deque<engine::StreamEvent> events;
    {
      std::unique_lock<std::mutex> lock(queue->mu);
      // Wake now and then to notice a client that went away.
      queue->ready.wait_for(lock, std::chrono::milliseconds(100), [&] {
        return !queue->events.empty() || (queue->submitted && !queue->submit_error.ok());
      });
      if (queue->submitted && !queue->submit_error.ok()) {
        return transport::ToGrpc(queue->submit_error);
      }
      events.swap(queue->events);
    }
    for (const engine::StreamEvent& e : events) {
      if (e.finish && *e.finish == engine::FinishReason::kError) {
        return transport::ToGrpc(e.status.ok() ? absl::InternalError("request failed")
                                               : e.status);
      }
      writer->Write(ToRunResponse(e));
      if (e.finish) return grpc::Status::OK;
    }
    if (context->IsCancelled() && !cancel_sent) {
      cancel_sent = true;
      runner_.Post([id](engine::Engine& engine) { engine.Cancel(id).IgnoreError(); });
    }
  }
}

grpc::Status AttentionWorkerService::Cancel(grpc::ServerContext* context,
                                            const cluster::CancelRequest* request,
                                            cluster::CancelResponse*) {
  if (grpc::Status auth = transport::CheckBearer(*context, accepted_, "cluster token");
      !auth.ok()) {
    return auth;
  }
  const std::string id = absl::StrCat(request->request_id());
  runner_.Post([id](engine::Engine& engine) { engine.Cancel(id).IgnoreError(); });
  return grpc::Status::OK;
}

}  // namespace yard::attention_worker
