// The Cluster service's authentication over real gRPC: every RPC refuses a caller
// without the cluster token, or with a wrong one, and serves one with it.
#include "coordinator/cluster_service.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/unit/coordinator/test_cluster.h"

namespace yard::coordinator {
namespace {

using testing::TestCoordinator;

// Each Cluster RPC's status when called through `stub`.
std::vector<grpc::Status> CallEveryRpc(cluster::Cluster::Stub& stub) {
  std::vector<grpc::Status> statuses;
  {
    grpc::ClientContext context;
    cluster::RegisterRequest request;
    request.mutable_info()->set_role(cluster::ROLE_ATTENTION);
    request.mutable_info()->set_grpc_address("127.0.0.1:1");
    request.mutable_info()->set_data_plane_address("ucx:00");
    cluster::RegisterResponse response;
    statuses.push_back(stub.Register(&context, request, &response));
  }
  {
    grpc::ClientContext context;
    cluster::HeartbeatRequest request;
    request.set_worker_id(1);
    cluster::HeartbeatResponse response;
    statuses.push_back(stub.Heartbeat(&context, request, &response));
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    cluster::WatchPlacementRequest request;
    request.set_worker_id(1);
    auto reader = stub.WatchPlacement(&context, request);
    cluster::Placement placement;
    while (reader->Read(&placement)) {
    }
    statuses.push_back(reader->Finish());
  }
  {
    grpc::ClientContext context;
    cluster::AckPlacementRequest request;
    request.set_worker_id(1);
    cluster::AckPlacementResponse response;
    statuses.push_back(stub.AckPlacement(&context, request, &response));
  }
  {
    grpc::ClientContext context;
    cluster::LoadReport request;
    request.set_worker_id(1);
    cluster::LoadReportResponse response;
    statuses.push_back(stub.ReportLoad(&context, request, &response));
  }
  return statuses;
}

std::unique_ptr<cluster::Cluster::Stub> StubWithToken(const TestCoordinator& cluster,
                                                      const std::string& token) {
  return cluster::Cluster::NewStub(
      transport::CreateChannel(cluster.address(), transport::ChannelSecurity{.token = token}));
}

TEST(ClusterServiceTest, EveryRpcNeedsTheClusterToken) {
  TestCoordinator cluster(testing::AttentionOnlyOptions());
  for (const std::string token : {"", "wrong", "test-admin-tokenX"}) {
    const std::vector<grpc::Status> statuses = CallEveryRpc(*StubWithToken(cluster, token));
    ASSERT_EQ(statuses.size(), 5u);
    for (size_t i = 0; i < statuses.size(); ++i) {
      EXPECT_EQ(statuses[i].error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << "rpc " << i << " with token '" << token << "'";
      EXPECT_NE(statuses[i].error_message().find("cluster token"), std::string::npos);
      EXPECT_EQ(statuses[i].error_message().find("test-admin-token"), std::string::npos)
          << "the secret leaked into the message";
    }
  }
  // With it, every call reaches its handler (the watch runs until its deadline).
  const std::vector<grpc::Status> statuses =
      CallEveryRpc(*StubWithToken(cluster, TestCoordinator::kAdminToken));
  EXPECT_TRUE(statuses[0].ok()) << statuses[0].error_message();
  EXPECT_TRUE(statuses[1].ok()) << statuses[1].error_message();
  EXPECT_EQ(statuses[2].error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // Worker 1 (just registered) acks a version never published.
  EXPECT_EQ(statuses[3].error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(statuses[4].ok()) << statuses[4].error_message();
}

}  // namespace
}  // namespace yard::coordinator
