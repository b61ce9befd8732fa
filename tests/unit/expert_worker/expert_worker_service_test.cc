// The ExpertWorker gRPC service on a loopback port over a real ExpertServer (no data
// plane: slot calls need none).
#include "expert_worker/expert_worker_service.h"

#include <array>
#include <initializer_list>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "expert_worker/expert_server.h"
#include "gtest/gtest.h"
#include "tests/unit/expert_worker/test_experts.h"
#include "transport/grpc/auth.h"

namespace yard::expert_worker {
namespace {

using fixture::kExperts;
using fixture::kHidden;
using fixture::kLayers;
using fixture::TestExperts;

constexpr uint32_t kCapacity = 3;

class ExpertWorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ExpertServerOptions options;
    options.hidden = kHidden;
    options.capacity = kCapacity;
    server_ = std::make_unique<ExpertServer>(experts_.views(), options);
    service_ = std::make_unique<ExpertWorkerService>(*server_, kToken);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    grpc_server_ = builder.BuildAndStart();
    ASSERT_NE(grpc_server_, nullptr);
    ASSERT_GT(port, 0);
    address_ = "127.0.0.1:" + std::to_string(port);
    stub_ = cluster::ExpertWorker::NewStub(
        transport::CreateChannel(address_, transport::ChannelSecurity{.token = kToken}));
  }
  void TearDown() override {
    if (grpc_server_ != nullptr) grpc_server_->Shutdown();
  }

  grpc::Status Load(std::initializer_list<std::array<uint32_t, 3>> slots,
                    cluster::LoadSlotsResponse* response) {
    cluster::LoadSlotsRequest request;
    request.set_placement_version(1);
    for (const auto& [slot, layer, expert] : slots) {
      cluster::SlotLoad* s = request.add_slots();
      s->set_slot(slot);
      s->set_layer(layer);
      s->set_logical_expert(expert);
    }
    grpc::ClientContext context;
    return stub_->LoadSlots(&context, request, response);
  }
  grpc::Status Release(std::initializer_list<uint32_t> slots) {
    cluster::ReleaseSlotsRequest request;
    for (uint32_t s : slots) request.add_slots(s);
    grpc::ClientContext context;
    cluster::ReleaseSlotsResponse response;
    return stub_->ReleaseSlots(&context, request, &response);
  }

  static constexpr const char* kToken = "worker-cluster-token";
  std::string address_;
  TestExperts experts_;
  std::unique_ptr<ExpertServer> server_;
  std::unique_ptr<ExpertWorkerService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<cluster::ExpertWorker::Stub> stub_;
};

TEST_F(ExpertWorkerServiceTest, LoadSlotsLoadsAndListsTheSlots) {
  cluster::LoadSlotsResponse response;
  const grpc::Status status = Load({{2, 1, 0}, {0, 2, kExperts - 1}}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.loaded_slots_size(), 2);
  EXPECT_EQ(response.loaded_slots(0), 2u);
  EXPECT_EQ(response.loaded_slots(1), 0u);
  EXPECT_EQ(server_->SlotsUsed(), 2u);

  // Loading the same again is fine (idempotent), and release frees them.
  cluster::LoadSlotsResponse again;
  EXPECT_TRUE(Load({{2, 1, 0}}, &again).ok());
  EXPECT_EQ(server_->SlotsUsed(), 2u);
  EXPECT_TRUE(Release({2, 0}).ok());
  EXPECT_EQ(server_->SlotsUsed(), 0u);
}

TEST_F(ExpertWorkerServiceTest, CallsWithoutTheClusterTokenAreUnauthenticated) {
  for (const std::string token : {"", "wrong"}) {
    auto stub = cluster::ExpertWorker::NewStub(
        transport::CreateChannel(address_, transport::ChannelSecurity{.token = token}));
    grpc::ClientContext load_context;
    cluster::LoadSlotsRequest load;
    cluster::SlotLoad* s = load.add_slots();
    s->set_slot(0);
    s->set_layer(1);
    cluster::LoadSlotsResponse loaded;
    EXPECT_EQ(stub->LoadSlots(&load_context, load, &loaded).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext release_context;
    cluster::ReleaseSlotsRequest release;
    cluster::ReleaseSlotsResponse released;
    EXPECT_EQ(stub->ReleaseSlots(&release_context, release, &released).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_F(ExpertWorkerServiceTest, LoadSlotsBeyondCapacityIsInvalidArgument) {
  cluster::LoadSlotsResponse response;
  const grpc::Status status = Load({{kCapacity, 1, 0}}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(response.loaded_slots_size(), 0);
  EXPECT_EQ(server_->SlotsUsed(), 0u);
}

TEST_F(ExpertWorkerServiceTest, LoadSlotsOfALayerWithoutExpertsIsInvalidArgument) {
  cluster::LoadSlotsResponse response;
  EXPECT_EQ(Load({{0, 0, 0}}, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Load({{0, kLayers, 0}}, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(server_->SlotsUsed(), 0u);
}

TEST_F(ExpertWorkerServiceTest, LoadSlotsOfAnExpertOutOfRangeIsInvalidArgument) {
  cluster::LoadSlotsResponse response;
  EXPECT_EQ(Load({{0, 1, kExperts}}, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(server_->SlotsUsed(), 0u);
}

TEST_F(ExpertWorkerServiceTest, LoadingAnotherExpertIntoAnOccupiedSlotIsFailedPrecondition) {
  cluster::LoadSlotsResponse response;
  ASSERT_TRUE(Load({{1, 1, 0}}, &response).ok());
  cluster::LoadSlotsResponse second;
  EXPECT_EQ(Load({{1, 1, 1}}, &second).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(second.loaded_slots_size(), 0);
}

TEST_F(ExpertWorkerServiceTest, ReleaseSlotsBeyondCapacityIsInvalidArgument) {
  cluster::LoadSlotsResponse response;
  ASSERT_TRUE(Load({{0, 1, 0}}, &response).ok());
  EXPECT_EQ(Release({kCapacity + 5}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(server_->SlotsUsed(), 1u);
  EXPECT_TRUE(Release({1}).ok());  // a free slot: no-op
  EXPECT_EQ(server_->SlotsUsed(), 1u);
}

}  // namespace
}  // namespace yard::expert_worker
