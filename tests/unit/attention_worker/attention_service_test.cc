#include "attention_worker/attention_service.h"

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "attention_worker/engine_runner.h"
#include "gtest/gtest.h"
#include "tests/unit/attention_worker/test_engine.h"
#include "transport/grpc/auth.h"

namespace yard::attention_worker {
namespace {

using fixture::StepGate;
using fixture::TestEngine;

cluster::RunRequest MakeRun(uint64_t id, std::vector<int32_t> prompt, int32_t max_tokens) {
  cluster::RunRequest r;
  r.set_request_id(id);
  for (int32_t t : prompt) r.add_prompt_token_ids(t);
  r.set_max_tokens(max_tokens);
  return r;
}

// --- ToEngineRequest ---

TEST(ToEngineRequestTest, MapsEveryField) {
  cluster::RunRequest run = MakeRun(42, {1, 2, 3}, 10);
  run.mutable_sampling()->set_temperature(0.7f);
  run.mutable_sampling()->set_top_k(5);
  run.mutable_sampling()->set_top_p(0.5f);
  run.mutable_sampling()->set_seed(99);
  run.add_stop("end");
  run.add_stop("\n\n");
  run.set_ignore_eos(true);
  run.set_logprobs(3);
  absl::StatusOr<engine::Request> r = ToEngineRequest(run);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "42");
  EXPECT_EQ(r->prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r->max_tokens, 10);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.7f);
  EXPECT_EQ(r->sampling.top_k, 5);
  EXPECT_DOUBLE_EQ(r->sampling.top_p, 0.5);
  ASSERT_TRUE(r->sampling.seed.has_value());
  EXPECT_EQ(*r->sampling.seed, 99u);
  EXPECT_TRUE(r->sampling.logprobs);
  EXPECT_EQ(r->sampling.top_logprobs, 3);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"end", "\n\n"}));
  EXPECT_TRUE(r->ignore_eos);
}

TEST(ToEngineRequestTest, ResumeAppendsGeneratedTokensAndReducesMaxTokens) {
  cluster::RunRequest run = MakeRun(7, {5, 6}, 10);
  run.add_generated_token_ids(8);
  run.add_generated_token_ids(9);
  run.add_generated_token_ids(4);
  absl::StatusOr<engine::Request> r = ToEngineRequest(run);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, (std::vector<int32_t>{5, 6, 8, 9, 4}));
  EXPECT_EQ(r->max_tokens, 7);
}

TEST(ToEngineRequestTest, TopPZeroMeansOne) {
  absl::StatusOr<engine::Request> r = ToEngineRequest(MakeRun(1, {1}, 4));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->sampling.top_p, 1.0);
}

TEST(ToEngineRequestTest, LogprobsBounds) {
  for (int n : {0, 1, 20}) {
    cluster::RunRequest run = MakeRun(1, {1}, 4);
    run.set_logprobs(n);
    absl::StatusOr<engine::Request> r = ToEngineRequest(run);
    ASSERT_TRUE(r.ok()) << n << ": " << r.status();
    EXPECT_EQ(r->sampling.logprobs, n > 0) << n;
    EXPECT_EQ(r->sampling.top_logprobs, n) << n;
  }
  for (int n : {21, -1, 1000}) {
    cluster::RunRequest run = MakeRun(1, {1}, 4);
    run.set_logprobs(n);
    EXPECT_EQ(ToEngineRequest(run).status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
}

TEST(ToEngineRequestTest, MaxTokensNotAboveGeneratedIsInvalidArgument) {
  cluster::RunRequest run = MakeRun(1, {1}, 2);
  run.add_generated_token_ids(3);
  run.add_generated_token_ids(4);
  EXPECT_EQ(ToEngineRequest(run).status().code(), absl::StatusCode::kInvalidArgument);
  run.set_max_tokens(1);
  EXPECT_EQ(ToEngineRequest(run).status().code(), absl::StatusCode::kInvalidArgument);
  run.set_max_tokens(3);
  absl::StatusOr<engine::Request> r = ToEngineRequest(run);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->max_tokens, 1);
  EXPECT_EQ(ToEngineRequest(MakeRun(1, {1}, 0)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToEngineRequest(MakeRun(1, {1}, -5)).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- ToRunResponse ---

TEST(ToRunResponseTest, TokenTextLogprobsAndFinishReason) {
  engine::StreamEvent e;
  e.request_id = "3";
  e.token = 17;
  e.text = "rR";
  e.logprob = -0.25f;
  e.top_logprobs = {{17, -0.25f}, {4, -1.5f}};
  e.finish = engine::FinishReason::kLength;
  const cluster::RunResponse r = ToRunResponse(e);
  ASSERT_EQ(r.token_ids_size(), 1);
  EXPECT_EQ(r.token_ids(0), 17);
  EXPECT_EQ(r.text(), "rR");
  ASSERT_EQ(r.logprobs_size(), 1);
  EXPECT_EQ(r.logprobs(0).chosen().id(), 17);
  EXPECT_FLOAT_EQ(r.logprobs(0).chosen().logprob(), -0.25f);
  ASSERT_EQ(r.logprobs(0).top_size(), 2);
  EXPECT_EQ(r.logprobs(0).top(0).id(), 17);
  EXPECT_FLOAT_EQ(r.logprobs(0).top(0).logprob(), -0.25f);
  EXPECT_EQ(r.logprobs(0).top(1).id(), 4);
  EXPECT_FLOAT_EQ(r.logprobs(0).top(1).logprob(), -1.5f);
  EXPECT_EQ(r.finish_reason(), "length");
}

TEST(ToRunResponseTest, TokenWithoutLogprobsHasNone) {
  engine::StreamEvent e;
  e.token = 2;
  e.text = "c";
  const cluster::RunResponse r = ToRunResponse(e);
  ASSERT_EQ(r.token_ids_size(), 1);
  EXPECT_EQ(r.token_ids(0), 2);
  EXPECT_EQ(r.logprobs_size(), 0);
  EXPECT_EQ(r.text(), "c");
  EXPECT_EQ(r.finish_reason(), "");
}

TEST(ToRunResponseTest, FinishWithoutTokenAndReasonNames) {
  struct Case {
    engine::FinishReason reason;
    const char* name;
  };
  for (const Case& c : {Case{engine::FinishReason::kEos, "eos"},
                        Case{engine::FinishReason::kLength, "length"},
                        Case{engine::FinishReason::kStop, "stop"},
                        Case{engine::FinishReason::kCancelled, "cancelled"}}) {
    engine::StreamEvent e;
    e.finish = c.reason;
    const cluster::RunResponse r = ToRunResponse(e);
    EXPECT_EQ(r.token_ids_size(), 0);
    EXPECT_EQ(r.logprobs_size(), 0);
    EXPECT_EQ(r.finish_reason(), c.name);
  }
}

// --- The service on a loopback port ---

// An AttentionWorkerService over an EngineRunner over the fake forward. The runner's
// between_steps hook is a StepGate that lets `allowed` boundaries through.
class Worker {
 public:
  explicit Worker(int allowed = 1 << 30)
      : gate_(allowed), runner_(env_.engine(), [this] { gate_.AtBoundary(); }), service_(runner_, kToken) {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port, 0);
    address_ = "127.0.0.1:" + std::to_string(port);
    stub_ = cluster::AttentionWorker::NewStub(
        transport::CreateChannel(address_, transport::ChannelSecurity{.token = kToken}));
  }
  ~Worker() {
    gate_.Open();
    if (server_ != nullptr) server_->Shutdown();
  }

  // Runs `request` to the end of its stream.
  grpc::Status RunToEnd(const cluster::RunRequest& request,
                        std::vector<cluster::RunResponse>* responses) {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<cluster::RunResponse>> reader =
        stub_->Run(&context, request);
    cluster::RunResponse r;
    while (reader->Read(&r)) responses->push_back(r);
    return reader->Finish();
  }

  TestEngine& env() { return env_; }
  StepGate& gate() { return gate_; }
  cluster::AttentionWorker::Stub& stub() { return *stub_; }
  const std::string& address() const { return address_; }
  static constexpr const char* kToken = "worker-cluster-token";

 private:
  TestEngine env_;
  StepGate gate_;
  EngineRunner runner_;
  AttentionWorkerService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<cluster::AttentionWorker::Stub> stub_;
  std::string address_;
};

std::vector<int32_t> Tokens(const std::vector<cluster::RunResponse>& responses) {
  std::vector<int32_t> tokens;
  for (const cluster::RunResponse& r : responses) {
    tokens.insert(tokens.end(), r.token_ids().begin(), r.token_ids().end());
  }
  return tokens;
}

cluster::RunRequest GreedyRun(uint64_t id, std::vector<int32_t> prompt, int32_t max_tokens) {
  cluster::RunRequest r = MakeRun(id, std::move(prompt), max_tokens);
  r.mutable_sampling()->set_temperature(0);  // top_p 0: means 1
  return r;
}

TEST(AttentionWorkerServiceTest, RunStreamsTokensTextAndFinishReason) {
  Worker worker;
  std::vector<cluster::RunResponse> responses;
  const grpc::Status status = worker.RunToEnd(GreedyRun(7, {5, 9, 2}, 5), &responses);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::vector<int32_t> want = worker.env().Greedy({5, 9, 2}, 5);
  EXPECT_EQ(Tokens(responses), want);
  ASSERT_FALSE(responses.empty());
  std::string text, want_text;
  for (const cluster::RunResponse& r : responses) text += r.text();
  for (int32_t t : want) want_text += worker.env().Text(t);
  EXPECT_EQ(text, want_text);
  for (size_t i = 0; i + 1 < responses.size(); ++i) EXPECT_EQ(responses[i].finish_reason(), "");
  EXPECT_EQ(responses.back().finish_reason(), "length");
}

TEST(AttentionWorkerServiceTest, ResumedRunContinuesAfterTheGeneratedTokens) {
  Worker worker;
  const std::vector<int32_t> all = worker.env().Greedy({5, 9, 2}, 5);
  cluster::RunRequest run = GreedyRun(8, {5, 9, 2}, 5);
  run.add_generated_token_ids(all[0]);
  run.add_generated_token_ids(all[1]);
  std::vector<cluster::RunResponse> responses;
  const grpc::Status status = worker.RunToEnd(run, &responses);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Tokens(responses), (std::vector<int32_t>{all[2], all[3], all[4]}));
  ASSERT_FALSE(responses.empty());
  EXPECT_EQ(responses.back().finish_reason(), "length");
}

TEST(AttentionWorkerServiceTest, RunWithLogprobsStreamsThem) {
  Worker worker;
  cluster::RunRequest run = GreedyRun(9, {1, 2}, 3);
  run.set_logprobs(2);
  std::vector<cluster::RunResponse> responses;
  ASSERT_TRUE(worker.RunToEnd(run, &responses).ok());
  int with_token = 0;
  for (const cluster::RunResponse& r : responses) {
    if (r.token_ids_size() == 0) continue;
    ++with_token;
    ASSERT_EQ(r.logprobs_size(), 1);
    EXPECT_EQ(r.logprobs(0).chosen().id(), r.token_ids(0));
    EXPECT_LE(r.logprobs(0).chosen().logprob(), 0.0f);
    ASSERT_EQ(r.logprobs(0).top_size(), 2);
    EXPECT_EQ(r.logprobs(0).top(0).id(), r.token_ids(0));  // greedy: the most likely
  }
  EXPECT_EQ(with_token, 3);
}

TEST(AttentionWorkerServiceTest, InvalidRunIsInvalidArgument) {
  Worker worker;
  std::vector<cluster::RunRequest> bad;
  bad.push_back(GreedyRun(1, {1, 2}, 4));
  bad.back().set_logprobs(21);
  bad.push_back(GreedyRun(2, {1, 2}, 4));
  bad.back().set_logprobs(-1);
  bad.push_back(GreedyRun(3, {1, 2}, 0));
  bad.push_back(GreedyRun(4, {1, 2}, 2));  // nothing left after the generated tokens
  bad.back().add_generated_token_ids(3);
  bad.back().add_generated_token_ids(4);
  bad.push_back(GreedyRun(5, {}, 4));  // the engine refuses an empty prompt
  bad.push_back(GreedyRun(6, {1, fixture::kVocab}, 4));  // a token outside the vocabulary
  for (const cluster::RunRequest& run : bad) {
    std::vector<cluster::RunResponse> responses;
    const grpc::Status status = worker.RunToEnd(run, &responses);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << "request " << run.request_id() << ": " << status.error_message();
    EXPECT_TRUE(responses.empty()) << "request " << run.request_id();
  }
  // The worker still serves.
  std::vector<cluster::RunResponse> responses;
  EXPECT_TRUE(worker.RunToEnd(GreedyRun(10, {1}, 2), &responses).ok());
  EXPECT_EQ(Tokens(responses).size(), 2u);
}

TEST(AttentionWorkerServiceTest, CancelEndsARunningRequestsStreamAsCancelled) {
  Worker worker(/*allowed=*/2);  // two steps, then the engine thread waits
  constexpr int kMaxTokens = 40;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<cluster::RunResponse>> reader =
      worker.stub().Run(&context, GreedyRun(77, {4, 4, 4}, kMaxTokens));
  std::vector<cluster::RunResponse> responses;
  cluster::RunResponse r;
  ASSERT_TRUE(reader->Read(&r));  // the first token: the request is running
  responses.push_back(r);
  ASSERT_TRUE(worker.gate().WaitUntilHeld());

  grpc::ClientContext cancel_context;
  cluster::CancelRequest cancel;
  cancel.set_request_id(77);
  cluster::CancelResponse cancel_response;
  const grpc::Status cancelled = worker.stub().Cancel(&cancel_context, cancel, &cancel_response);
  ASSERT_TRUE(cancelled.ok()) << cancelled.error_message();
  worker.gate().Open();  // the cancellation is queued: it runs at the next boundary

  while (reader->Read(&r)) responses.push_back(r);
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(responses.back().finish_reason(), "cancelled");
  const std::vector<int32_t> tokens = Tokens(responses);
  EXPECT_LT(tokens.size(), static_cast<size_t>(kMaxTokens));
  const std::vector<int32_t> want = worker.env().Greedy({4, 4, 4}, static_cast<int>(tokens.size()));
  EXPECT_EQ(tokens, want);
}

TEST(AttentionWorkerServiceTest, CallsWithoutTheClusterTokenAreUnauthenticated) {
  Worker worker;
  for (const std::string token : {"", "wrong"}) {
    auto stub = cluster::AttentionWorker::NewStub(transport::CreateChannel(
        worker.address(), transport::ChannelSecurity{.token = token}));
    grpc::ClientContext run_context;
    auto reader = stub->Run(&run_context, GreedyRun(1, {2}, 2));
    cluster::RunResponse r;
    EXPECT_FALSE(reader->Read(&r));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext cancel_context;
    cluster::CancelRequest cancel;
    cluster::CancelResponse response;
    EXPECT_EQ(stub->Cancel(&cancel_context, cancel, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST(AttentionWorkerServiceTest, CancelOfAnUnknownRequestIsHarmless) {
  Worker worker;
  grpc::ClientContext context;
  cluster::CancelRequest cancel;
  cancel.set_request_id(12345);
  cluster::CancelResponse response;
  EXPECT_TRUE(worker.stub().Cancel(&context, cancel, &response).ok());
  std::vector<cluster::RunResponse> responses;
  EXPECT_TRUE(worker.RunToEnd(GreedyRun(1, {2}, 2), &responses).ok());
}

}  // namespace
}  // namespace yard::attention_worker
