// ClusterClient against an in-process Cluster service that forgets the worker (as a
// restarted coordinator does): the heartbeat thread registers again under the same
// id with the worker's current registration, or reports the identity lost when the
// coordinator hands out another id.
#include "transport/grpc/cluster_client.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/cluster.grpc.pb.h"

namespace yard::transport {
namespace {

using namespace std::chrono_literals;

// Registers workers (keeping a previous id unless told to give `next_id`), and
// answers heartbeats known=false once after Forget().
class FakeCluster final : public cluster::Cluster::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const cluster::RegisterRequest* request,
                        cluster::RegisterResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    registrations_.push_back(*request);
    const uint32_t previous = request->previous_worker_id();
    response->set_worker_id(previous != 0 && !reassign_ ? previous : next_id_++);
    changed_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const cluster::HeartbeatRequest*,
                         cluster::HeartbeatResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    response->set_known(!forgotten_);
    forgotten_ = false;
    ++heartbeats_;
    changed_.notify_all();
    return grpc::Status::OK;
  }

  void Forget(bool reassign) {
    std::lock_guard<std::mutex> lock(mu_);
    forgotten_ = true;
    reassign_ = reassign;
  }
  // Waits until `n` registrations have arrived; false after 10 s.
  bool WaitForRegistrations(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, 10s, [&] { return registrations_.size() >= n; });
  }
  std::vector<cluster::RegisterRequest> registrations() {
    std::lock_guard<std::mutex> lock(mu_);
    return registrations_;
  }
  int heartbeats() {
    std::lock_guard<std::mutex> lock(mu_);
    return heartbeats_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<cluster::RegisterRequest> registrations_;
  uint32_t next_id_ = 7;
  bool forgotten_ = false;
  bool reassign_ = false;
  int heartbeats_ = 0;
};

class ClusterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<ClusterClient>("127.0.0.1:" + std::to_string(port_),
                                              ChannelSecurity{});
  }
  void TearDown() override {
    client_.reset();
    server_->Shutdown();
  }

  // Registers, then heartbeats every 10 ms; the registration sent again carries
  // placement version `version`.
  uint32_t Start(uint64_t version) {
    cluster::RegisterRequest request;
    request.mutable_info()->set_role(cluster::ROLE_EXPERT);
    request.mutable_info()->set_grpc_address("127.0.0.1:1");
    absl::StatusOr<cluster::RegisterResponse> registered = client_->Register(request, 5s);
    EXPECT_TRUE(registered.ok()) << registered.status();
    const uint32_t id = registered->worker_id();
    client_->StartHeartbeats(
        id, 10ms,
        ClusterClient::HeartbeatHandlers{
            .fill =
                [id] {
                  cluster::HeartbeatRequest beat;
                  beat.set_worker_id(id);
                  return beat;
                },
            .registration =
                [request, version](const cluster::HeartbeatResponse&) {
                  cluster::RegisterRequest again = request;
                  again.mutable_info()->set_placement_version(version);
                  return again;
                },
            .on_registered_again =
                [this] {
                  std::lock_guard<std::mutex> lock(mu_);
                  ++registered_again_;
                },
            .on_identity_lost =
                [this](absl::Status why) {
                  std::lock_guard<std::mutex> lock(mu_);
                  lost_ = why;
                }});
    return id;
  }

  FakeCluster fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ClusterClient> client_;
  std::mutex mu_;
  int registered_again_ = 0;
  absl::Status lost_;
};

TEST_F(ClusterClientTest, AForgottenWorkerRegistersAgainUnderItsIdWithItsCurrentState) {
  const uint32_t id = Start(/*version=*/12);
  EXPECT_EQ(id, 7u);
  fake_.Forget(/*reassign=*/false);
  ASSERT_TRUE(fake_.WaitForRegistrations(2));
  const cluster::RegisterRequest again = fake_.registrations()[1];
  EXPECT_EQ(again.previous_worker_id(), 7u);
  EXPECT_EQ(again.info().placement_version(), 12u);
  EXPECT_EQ(again.info().grpc_address(), "127.0.0.1:1");
  // Heartbeats go on under the same id, with no further registration.
  const int beats = fake_.heartbeats();
  while (fake_.heartbeats() < beats + 3) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(fake_.registrations().size(), 2u);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(registered_again_, 1);
  EXPECT_TRUE(lost_.ok());
}

TEST_F(ClusterClientTest, AnotherIdOnReRegistrationIsALostIdentityAndStopsTheHeartbeats) {
  Start(/*version=*/0);
  fake_.Forget(/*reassign=*/true);
  ASSERT_TRUE(fake_.WaitForRegistrations(2));
  absl::Status lost;
  for (int i = 0; i < 1000 && lost.ok(); ++i) {
    std::this_thread::sleep_for(5ms);
    std::lock_guard<std::mutex> lock(mu_);
    lost = lost_;
  }
  EXPECT_EQ(lost.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(lost.message().find("worker 7 as 8"), std::string::npos) << lost;
  const int beats = fake_.heartbeats();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(fake_.heartbeats(), beats);
}

}  // namespace
}  // namespace yard::transport
