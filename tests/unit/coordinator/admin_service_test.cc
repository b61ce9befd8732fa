// The Admin service over real gRPC: the token check on every call, Experts from the
// load reports workers send, and the pure helpers behind it.
#include "coordinator/admin_service.h"

#include <vector>

#include "coordinator/placement_plan.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/test_cluster.h"

namespace yard::coordinator {
namespace {

using testing::TestCoordinator;

CoordinatorOptions Options() { return testing::AttentionOnlyOptions(); }

grpc::Status CallStatus(TestCoordinator& cluster, const char* authorization) {
  grpc::ClientContext context;
  if (authorization != nullptr) context.AddMetadata("authorization", authorization);
  admin::StatusResponse response;
  return cluster.admin->Status(&context, admin::StatusRequest(), &response);
}

TEST(AdminServiceTest, EveryCallNeedsTheToken) {
  TestCoordinator cluster(Options());
  EXPECT_EQ(CallStatus(cluster, nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallStatus(cluster, "Bearer wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallStatus(cluster, "test-admin-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);  // no "Bearer "
  EXPECT_EQ(CallStatus(cluster, "Bearer test-admin-tokenX").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallStatus(cluster, "Bearer ").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(CallStatus(cluster, "Bearer test-admin-token").ok());
  grpc::ClientContext context;  // Experts too
  admin::ExpertsResponse experts;
  EXPECT_EQ(cluster.admin->Experts(&context, admin::ExpertsRequest(), &experts).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(AdminServiceTest, OnlyAnExplicitInsecureModeLeavesAdminOpen) {
  actor::EventLoop loop(1);
  RealClock clock;
  CoordinatorOptions options = Options();
  options.model_dir = testing::TinyModelDir("model");
  auto refused = Coordinator::Create(options, clock, loop.executor());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("--cluster-token-file"), std::string::npos);

  TestCoordinator cluster(Options(), /*insecure=*/true);
  EXPECT_TRUE(CallStatus(cluster, nullptr).ok());
}

TEST(AdminServiceTest, ExpertsSumsTheReportedLoadAndRejectsBadInput) {
  TestCoordinator cluster(Options());
  const model::ModelConfig& config = cluster.coordinator().config();
  const std::vector<uint32_t> moe = MoeLayers(config);
  ASSERT_GE(moe.size(), 1u);
  const int64_t experts = config.n_routed_experts;

  cluster::LoadReport report;
  report.set_worker_id(cluster.Register(cluster::ROLE_ATTENTION, "127.0.0.1:1"));
  report.set_window_ms(500);
  cluster::LayerLoad* layer = report.add_layers();
  layer->set_layer(moe[0]);
  for (int64_t e = 0; e < experts; ++e) layer->add_tokens_per_expert(e == 3 ? 7 : 1);
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    cluster::LoadReportResponse ignored;
    ASSERT_TRUE(cluster.cluster->ReportLoad(&context, report, &ignored).ok());
  }
  // A malformed report is refused and changes nothing.
  cluster::LoadReport bad = report;
  bad.mutable_layers(0)->add_tokens_per_expert(1);
  grpc::ClientContext bad_context;
  cluster::LoadReportResponse ignored;
  EXPECT_EQ(cluster.cluster->ReportLoad(&bad_context, bad, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  admin::ExpertsRequest request;
  request.set_layer(moe[0]);
  admin::ExpertsResponse response;
  grpc::ClientContext context;
  TestCoordinator::Authorize(context);
  const grpc::Status status = cluster.admin->Experts(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reports(), 2);
  ASSERT_EQ(response.layers_size(), 1);
  EXPECT_EQ(response.layers(0).layer(), moe[0]);
  ASSERT_EQ(response.layers(0).tokens_per_expert_size(), experts);
  EXPECT_EQ(response.layers(0).tokens_per_expert(3), 14u);
  EXPECT_EQ(response.layers(0).tokens_per_expert(0), 2u);

  admin::ExpertsRequest all;
  grpc::ClientContext all_context;
  TestCoordinator::Authorize(all_context);
  ASSERT_TRUE(cluster.admin->Experts(&all_context, all, &response).ok());
  EXPECT_EQ(response.layers_size(), static_cast<int>(moe.size()));

  admin::ExpertsRequest dense;
  dense.set_layer(0);  // tiny-v3's first layer is dense
  ASSERT_FALSE(config.IsMoeLayer(0));
  grpc::ClientContext dense_context;
  TestCoordinator::Authorize(dense_context);
  EXPECT_EQ(cluster.admin->Experts(&dense_context, dense, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

cluster::LayerPlacement Layer(std::vector<std::pair<uint32_t, uint32_t>> worker_expert) {
  cluster::LayerPlacement layer;
  layer.set_layer(1);
  uint32_t slot = 0;
  for (auto [worker, expert] : worker_expert) {
    cluster::Slot* s = layer.add_slots();
    s->set_worker_id(worker);
    s->set_slot(slot++);
    s->set_logical_expert(expert);
  }
  return layer;
}

TEST(LayerImbalanceTest, MaxOverMeanWithReplicasSharingTheirExpertsLoad) {
  // Workers 1, 2: experts 0, 1 on worker 1; 2 on worker 2.
  const cluster::LayerPlacement placement = Layer({{1, 0}, {1, 1}, {2, 2}});
  EXPECT_DOUBLE_EQ(LayerImbalance(placement, {3, 3, 6}, {1, 2}), 1.0);
  EXPECT_DOUBLE_EQ(LayerImbalance(placement, {9, 3, 0}, {1, 2}), 2.0);  // 12 vs 0
  EXPECT_DOUBLE_EQ(LayerImbalance(placement, {0, 0, 0}, {1, 2}), 0.0);
  // Expert 0 replicated onto worker 2: its 8 tokens split 4 + 4.
  const cluster::LayerPlacement replicated = Layer({{1, 0}, {1, 1}, {2, 2}, {2, 0}});
  EXPECT_DOUBLE_EQ(LayerImbalance(replicated, {8, 2, 2}, {1, 2}), 1.0);
  // A worker with no slot of this layer counts as 0: 3 workers, all load on worker 1.
  EXPECT_DOUBLE_EQ(LayerImbalance(Layer({{1, 0}}), {5}, {1, 2, 3}), 3.0);
}

}  // namespace
}  // namespace yard::coordinator
