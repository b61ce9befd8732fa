// An in-process coordinator on a loopback port, and fake attention workers (real gRPC
// servers streaming canned tokens), for the coordinator's service tests.
#ifndef SWITCHYARD_TESTS_UNIT_COORDINATOR_TEST_CLUSTER_H_
#define SWITCHYARD_TESTS_UNIT_COORDINATOR_TEST_CLUSTER_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "actor/event_loop.h"
#include "coordinator/clock.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "model/config.h"
#include "model/presets.h"
#include "proto/admin.grpc.pb.h"
#include "proto/cluster.grpc.pb.h"
#include "proto/generation.grpc.pb.h"
#include "transport/grpc/auth.h"

namespace yard::coordinator::testing {

// A model directory with tiny-v3's config.json (no tokenizer.json: the coordinator
// falls back to data/tokenizers/deepseek-v3, a data dependency of the test).
inline std::string TinyModelDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name;
  std::filesystem::create_directories(dir);
  absl::StatusOr<model::ModelConfig> config = model::PresetConfig("tiny-v3");
  EXPECT_TRUE(config.ok());
  std::ofstream(dir + "/config.json") << model::ModelConfigToJson(*config);
  return dir;
}

// One attention worker and no expert workers to be ready, the repository's tokenizer.
inline CoordinatorOptions AttentionOnlyOptions() {
  CoordinatorOptions options;
  options.tokenizer_dir = kDefaultTokenizerDir;
  options.attention_workers = 1;
  options.expert_workers = 0;
  return options;
}

// A coordinator serving on 127.0.0.1:<picked port>, its actors on a 2-thread loop.
class TestCoordinator {
 public:
  static constexpr const char* kAdminToken = "test-admin-token";

  // Without a cluster_token in `options`, kAdminToken unless `insecure` (no auth).
  explicit TestCoordinator(CoordinatorOptions options, bool insecure = false) : loop_(2) {
    if (options.model_dir.empty()) options.model_dir = TinyModelDir("model");
    if (options.cluster_token.empty() && !insecure) options.cluster_token = kAdminToken;
    options.insecure_no_auth = insecure;
    auto created = Coordinator::Create(options, clock_, loop_.executor());
    EXPECT_TRUE(created.ok()) << created.status();
    coordinator_ = *std::move(created);
    loop_.Start();
    auto address = coordinator_->Start();
    EXPECT_TRUE(address.ok()) << address.status();
    address_ = *address;
    auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    generation = generation::Generation::NewStub(channel);
    // As a worker's: every call carries the cluster token.
    cluster = cluster::Cluster::NewStub(transport::CreateChannel(
        address_, transport::ChannelSecurity{.token = options.cluster_token}));
    admin = admin::Admin::NewStub(channel);
  }
  ~TestCoordinator() {
    coordinator_->Shutdown(absl::ZeroDuration());
    // The actors die after the loop's threads, never under a running task.
    loop_.Stop();
    loop_.Join();
    coordinator_.reset();
  }

  Coordinator& coordinator() { return *coordinator_; }

  // Adds the admin token to an Admin call's context.
  static void Authorize(grpc::ClientContext& context) {
    context.AddMetadata("authorization", std::string("Bearer ") + kAdminToken);
  }
  const std::string& address() const { return address_; }

  // Registers a worker; returns its id (0 on failure).
  uint32_t Register(cluster::Role role, const std::string& grpc_address) {
    cluster::RegisterRequest request;
    request.mutable_info()->set_role(role);
    request.mutable_info()->set_grpc_address(grpc_address);
    request.mutable_info()->set_data_plane_address("test-data-plane-address");
    request.mutable_info()->set_host("test-host");
    request.mutable_info()->set_pid(1234);
    cluster::RegisterResponse response;
    grpc::ClientContext context;
    const grpc::Status status = cluster->Register(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.worker_id();
  }

  void Heartbeat(uint32_t id, int64_t queued_tokens) {
    cluster::HeartbeatRequest request;
    request.set_worker_id(id);
    request.set_queued_tokens(queued_tokens);
    cluster::HeartbeatResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(cluster->Heartbeat(&context, request, &response).ok());
    EXPECT_TRUE(response.known());
  }

  std::unique_ptr<generation::Generation::Stub> generation;
  std::unique_ptr<cluster::Cluster::Stub> cluster;
  std::unique_ptr<admin::Admin::Stub> admin;

 private:
  RealClock clock_;
  actor::EventLoop loop_;
  std::unique_ptr<Coordinator> coordinator_;
  std::string address_;
};

// An AttentionWorker that streams `steps` for every Run (the last should carry a
// finish_reason), or, with hold_after_first, sends the first step and then waits for
// Cancel (or the call's cancellation).
class FakeAttentionWorker final : public cluster::AttentionWorker::Service {
 public:
  explicit FakeAttentionWorker(std::vector<cluster::RunResponse> steps,
                               bool hold_after_first = false)
      : steps_(std::move(steps)), hold_after_first_(hold_after_first) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    EXPECT_GT(port, 0);
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~FakeAttentionWorker() override {
    {
      absl::MutexLock lock(&mu_);
      released_ = true;
    }
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  grpc::Status Run(grpc::ServerContext* context, const cluster::RunRequest* request,
                   grpc::ServerWriter<cluster::RunResponse>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      runs_.push_back(*request);
      auto auth = context->client_metadata().find("authorization");
      authorizations_.emplace_back(
          auth == context->client_metadata().end()
              ? ""
              : std::string(auth->second.data(), auth->second.size()));
    }
    for (size_t i = 0; i < steps_.size(); ++i) {
      if (!writer->Write(steps_[i])) return grpc::Status::CANCELLED;
      if (hold_after_first_) {
        // Released by Cancel or by the fixture's destructor, never by a timer.
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(&released_));
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Cancel(grpc::ServerContext*, const cluster::CancelRequest* request,
                      cluster::CancelResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_.push_back(request->request_id());
      released_ = true;
    }
    return grpc::Status::OK;
  }

  const std::string& address() const { return address_; }
  std::vector<cluster::RunRequest> runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }
  // Each Run's `authorization` metadata ("" when absent).
  std::vector<std::string> authorizations() {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }
  std::vector<uint64_t> cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  bool WaitForCancel(absl::Duration limit) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(+[](std::vector<uint64_t>* ids) { return !ids->empty(); }, &cancelled_),
        limit);
  }

 private:
  const std::vector<cluster::RunResponse> steps_;
  const bool hold_after_first_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  absl::Mutex mu_;
  std::vector<cluster::RunRequest> runs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

inline cluster::RunResponse Step(std::vector<int32_t> tokens, std::string text,
                                 std::string finish_reason = "") {
  cluster::RunResponse response;
  for (int32_t token : tokens) response.add_token_ids(token);
  response.set_text(std::move(text));
  response.set_finish_reason(std::move(finish_reason));
  return response;
}

}  // namespace yard::coordinator::testing

#endif  // SWITCHYARD_TESTS_UNIT_COORDINATOR_TEST_CLUSTER_H_
