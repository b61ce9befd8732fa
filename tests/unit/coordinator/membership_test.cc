#include "coordinator/membership.h"

#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "coordinator/clock.h"
#include "gtest/gtest.h"

namespace yard::coordinator {
namespace {

cluster::RegisterRequest Request(cluster::Role role, const std::string& address,
                                 uint32_t previous = 0) {
  cluster::RegisterRequest request;
  request.mutable_info()->set_role(role);
  request.mutable_info()->set_grpc_address(address);
  request.mutable_info()->set_host("h");
  request.mutable_info()->set_pid(42);
  request.set_previous_worker_id(previous);
  return request;
}

class MembershipTest : public ::testing::Test {
 protected:
  MembershipTest() : membership_(Options(), clock_, context_.get_executor()) {
    membership_.Subscribe([this](const WorkerSnapshot& workers) {
      ++notifications_;
      last_ = workers;
    });
    Step();
  }

  static MembershipOptions Options() {
    MembershipOptions options;
    options.heartbeat_timeout = absl::Seconds(3);
    return options;
  }

  // Runs every ready task of the actor; nothing sleeps.
  void Step() {
    context_.restart();
    context_.poll();
  }

  absl::StatusOr<cluster::RegisterResponse> Register(const cluster::RegisterRequest& request) {
    std::optional<absl::StatusOr<cluster::RegisterResponse>> result;
    membership_.Register(request, [&](absl::StatusOr<cluster::RegisterResponse> r) {
      result = std::move(r);
    });
    Step();
    EXPECT_TRUE(result.has_value());
    return *result;
  }

  cluster::HeartbeatResponse Heartbeat(uint32_t id, int64_t queued = 0) {
    cluster::HeartbeatRequest request;
    request.set_worker_id(id);
    request.set_queued_tokens(queued);
    cluster::HeartbeatResponse response;
    membership_.Heartbeat(request, [&](cluster::HeartbeatResponse r) { response = r; });
    Step();
    return response;
  }

  const WorkerRecord* Find(uint32_t id) const {
    for (const WorkerRecord& record : last_) {
      if (record.id == id) return &record;
    }
    return nullptr;
  }

  boost::asio::io_context context_;
  FakeClock clock_;
  Membership membership_;
  int notifications_ = 0;
  WorkerSnapshot last_;
};

TEST_F(MembershipTest, RegisterAssignsIncreasingIdsAndRecordsInfo) {
  auto first = Register(Request(cluster::ROLE_ATTENTION, "127.0.0.1:1"));
  auto second = Register(Request(cluster::ROLE_EXPERT, "127.0.0.1:2"));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->worker_id(), 1u);
  EXPECT_EQ(second->worker_id(), 2u);
  EXPECT_EQ(first->heartbeat_interval_ms(), 1000);
  ASSERT_EQ(last_.size(), 2u);
  EXPECT_EQ(last_[1].info.role(), cluster::ROLE_EXPERT);
  EXPECT_EQ(last_[1].info.grpc_address(), "127.0.0.1:2");
  EXPECT_EQ(last_[0].info.pid(), 42);
  EXPECT_TRUE(last_[0].alive);
}

TEST_F(MembershipTest, RegisterRejectsMissingRoleAndAddress) {
  auto no_role = Register(Request(cluster::ROLE_UNSPECIFIED, "127.0.0.1:1"));
  EXPECT_EQ(no_role.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_role.status().message().find("role"), absl::string_view::npos);
  auto no_address = Register(Request(cluster::ROLE_EXPERT, ""));
  EXPECT_EQ(no_address.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_address.status().message().find("grpc_address"), absl::string_view::npos);
  EXPECT_TRUE(last_.empty());
}

TEST_F(MembershipTest, ReRegisterKeepsAFreeIdButNotATakenOne) {
  // After a coordinator restart the table is empty: the old id is free.
  auto back = Register(Request(cluster::ROLE_EXPERT, "127.0.0.1:9", /*previous=*/7));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->worker_id(), 7u);
  // New workers never collide with it.
  auto fresh = Register(Request(cluster::ROLE_ATTENTION, "127.0.0.1:10"));
  EXPECT_EQ(fresh->worker_id(), 8u);
  // Another live worker claiming id 7 gets a new id.
  auto thief = Register(Request(cluster::ROLE_ATTENTION, "127.0.0.1:11", /*previous=*/7));
  EXPECT_EQ(thief->worker_id(), 9u);
  // The same worker (same address) re-registering keeps it.
  auto same = Register(Request(cluster::ROLE_EXPERT, "127.0.0.1:9", /*previous=*/7));
  EXPECT_EQ(same->worker_id(), 7u);
}

TEST_F(MembershipTest, HeartbeatTimeoutMarksDeadAndReRegisterRevives) {
  const uint32_t id = Register(Request(cluster::ROLE_ATTENTION, "127.0.0.1:1"))->worker_id();
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(Heartbeat(id, /*queued=*/55).known());
  EXPECT_EQ(Find(id)->queued_tokens, 55);
  clock_.Advance(absl::Seconds(3));  // exactly the timeout since the heartbeat: alive
  membership_.Tick();
  Step();
  EXPECT_TRUE(Find(id)->alive);
  clock_.Advance(absl::Milliseconds(1));
  membership_.Tick();
  Step();
  ASSERT_NE(Find(id), nullptr);
  EXPECT_FALSE(Find(id)->alive);
  // A dead worker is told to register again, and gets its id back.
  EXPECT_FALSE(Heartbeat(id).known());
  auto again = Register(Request(cluster::ROLE_ATTENTION, "127.0.0.1:1", id));
  EXPECT_EQ(again->worker_id(), id);
  EXPECT_TRUE(Find(id)->alive);
}

TEST_F(MembershipTest, HeartbeatForUnknownWorkerIsNotKnown) {
  const cluster::HeartbeatResponse response = Heartbeat(99);
  EXPECT_FALSE(response.known());
  EXPECT_TRUE(last_.empty());
}

TEST_F(MembershipTest, HeartbeatReportsPlacementVersion) {
  const uint32_t id = Register(Request(cluster::ROLE_EXPERT, "127.0.0.1:1"))->worker_id();
  membership_.SetPlacementVersion(3);
  EXPECT_EQ(Heartbeat(id).placement_version(), 3u);
}

}  // namespace
}  // namespace yard::coordinator
