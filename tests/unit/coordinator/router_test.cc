#include "coordinator/router.h"

#include <optional>

#include "boost/asio/io_context.hpp"
#include "gtest/gtest.h"

namespace yard::coordinator {
namespace {

WorkerRecord Attention(uint32_t id, int64_t queued, bool alive = true) {
  WorkerRecord record;
  record.id = id;
  record.alive = alive;
  record.queued_tokens = queued;
  record.info.set_role(cluster::ROLE_ATTENTION);
  record.info.set_grpc_address(absl::StrCat("127.0.0.1:", id));
  return record;
}

class RouterTest : public ::testing::Test {
 protected:
  void Step() {
    context_.restart();
    context_.poll();
  }
  absl::StatusOr<Route> Pick(int64_t cost) {
    std::optional<absl::StatusOr<Route>> result;
    router_.Pick(cost, [&](absl::StatusOr<Route> r) { result = std::move(r); });
    Step();
    EXPECT_TRUE(result.has_value());
    return *result;
  }

  boost::asio::io_context context_;
  Router router_{context_.get_executor()};
};

TEST(RouterLimitTest, BeyondMaxInFlightIsResourceExhaustedUntilOneFinishes) {
  boost::asio::io_context context;
  Router router(context.get_executor(), /*max_in_flight=*/2);
  auto step = [&] {
    context.restart();
    context.poll();
  };
  auto pick = [&] {
    std::optional<absl::StatusOr<Route>> result;
    router.Pick(10, [&](absl::StatusOr<Route> r) { result = std::move(r); });
    step();
    return *result;
  };
  router.OnWorkers({Attention(1, 0)});
  absl::StatusOr<Route> a = pick();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(pick().ok());
  absl::StatusOr<Route> refused = pick();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("--max-requests"), absl::string_view::npos);
  router.Finish(a->request_id);
  step();
  EXPECT_TRUE(pick().ok());
}

TEST_F(RouterTest, NoAttentionWorkerIsUnavailable) {
  WorkerRecord expert = Attention(1, 0);
  expert.info.set_role(cluster::ROLE_EXPERT);
  router_.OnWorkers({expert, Attention(2, 0, /*alive=*/false)});
  EXPECT_EQ(Pick(10).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RouterTest, LeastLoadedCountsHeartbeatsAndRoutedTokensTiesToLowestId) {
  router_.OnWorkers({Attention(1, 100), Attention(2, 100), Attention(3, 150)});
  absl::StatusOr<Route> a = Pick(60);  // tie 100/100: id 1
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->worker_id, 1u);
  EXPECT_EQ(a->grpc_address, "127.0.0.1:1");
  absl::StatusOr<Route> b = Pick(60);  // 160 / 100 / 150
  EXPECT_EQ(b->worker_id, 2u);
  absl::StatusOr<Route> c = Pick(10);  // 160 / 160 / 150
  EXPECT_EQ(c->worker_id, 3u);
  EXPECT_NE(a->request_id, b->request_id);
  router_.Finish(a->request_id);
  router_.Finish(a->request_id);  // idempotent
  Step();
  EXPECT_EQ(Pick(1)->worker_id, 1u);  // 100 / 160 / 160
}

TEST_F(RouterTest, DrainRejectsPicksAndReportsIdle) {
  router_.OnWorkers({Attention(1, 0)});
  absl::StatusOr<Route> route = Pick(5);
  ASSERT_TRUE(route.ok());
  bool idle = false;
  router_.BeginDrain([&] { idle = true; });
  Step();
  EXPECT_FALSE(idle);
  EXPECT_EQ(Pick(5).status().code(), absl::StatusCode::kUnavailable);
  RouterLoad load;
  router_.GetLoad([&](RouterLoad l) { load = l; });
  Step();
  EXPECT_EQ(load.requests_in_flight, 1);
  EXPECT_EQ(load.running_by_worker[1], 1);
  router_.Finish(route->request_id);
  Step();
  EXPECT_TRUE(idle);
}

}  // namespace
}  // namespace yard::coordinator
