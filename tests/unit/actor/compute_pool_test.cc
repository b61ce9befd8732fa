#include "actor/compute_pool.h"

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "actor/actor.h"
#include "boost/asio/io_context.hpp"
#include "gtest/gtest.h"

namespace yard::actor {
namespace {

TEST(ComputePoolTest, RunThenPostComputesOnThePoolAndDeliversOnTheStrand) {
  boost::asio::io_context context;
  Actor actor("owner", context.get_executor());
  ComputePool pool(2);
  std::thread::id work_thread;
  bool work_on_strand = true;
  std::optional<int> result;
  bool done_on_strand = false;
  RunThenPost(
      pool, actor, "test.square",
      [&] {
        work_thread = std::this_thread::get_id();
        work_on_strand = actor.OnStrand();
        return 6 * 7;
      },
      [&](int r) {
        result = r;
        done_on_strand = actor.OnStrand();
      });
  pool.Join();                       // the work has run and posted its result
  EXPECT_FALSE(result.has_value());  // delivered only when the actor's executor runs
  context.run();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 42);
  EXPECT_TRUE(done_on_strand);
  EXPECT_FALSE(work_on_strand);
  EXPECT_NE(work_thread, std::this_thread::get_id());
}

TEST(ComputePoolTest, RunThenPostHandlesVoidAndMoveOnlyResults) {
  boost::asio::io_context context;
  Actor actor("owner", context.get_executor());
  ComputePool pool(1);
  int order = 0;
  int void_done_at = -1;
  int ptr_done_at = -1;
  int value = 0;
  RunThenPost(
      pool, actor, "test.void", [] {}, [&] { void_done_at = order++; });
  RunThenPost(
      pool, actor, "test.ptr", [] { return std::make_unique<int>(9); },
      [&](std::unique_ptr<int> p) {
        value = *p;
        ptr_done_at = order++;
      });
  pool.Join();
  context.run();
  EXPECT_EQ(void_done_at, 0);  // one pool thread: results arrive in posting order
  EXPECT_EQ(ptr_done_at, 1);
  EXPECT_EQ(value, 9);
}

TEST(ComputePoolTest, ResultForADeadActorIsDropped) {
  boost::asio::io_context context;
  auto actor = std::make_unique<Actor>("gone", context.get_executor());
  ComputePool pool(2);
  bool work_ran = false;
  bool delivered = false;
  RunThenPost(
      pool, *actor, "test.late",
      [&] {
        work_ran = true;
        return 1;
      },
      [&](int) { delivered = true; });
  actor.reset();
  pool.Join();
  context.run();
  EXPECT_TRUE(work_ran);
  EXPECT_FALSE(delivered);
}

TEST(ComputePoolTest, StatsCountWorkByName) {
  ComputePool pool(3);
  std::vector<std::thread::id> threads(10);
  for (int i = 0; i < 10; ++i) {
    pool.Post(i % 2 ? "test.odd" : "test.even",
              [&threads, i] { threads[i] = std::this_thread::get_id(); });
  }
  pool.Join();
  for (const std::thread::id& id : threads) EXPECT_NE(id, std::this_thread::get_id());
  const std::vector<TaskStats> stats = pool.Stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].name, "test.even");
  EXPECT_EQ(stats[0].count, 5);
  EXPECT_EQ(stats[1].name, "test.odd");
  EXPECT_EQ(stats[1].count, 5);
  for (const TaskStats& s : stats) {
    EXPECT_GE(s.total_run, absl::ZeroDuration());
    EXPECT_GE(s.max_run, s.total_run / 5);
    EXPECT_LE(s.max_run, s.total_run);
  }
}

}  // namespace
}  // namespace yard::actor
