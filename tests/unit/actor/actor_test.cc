#include "actor/actor.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::actor {
namespace {

using ::testing::ElementsAre;

// Busy-waits (never sleeps) until at least `d` has passed, so a task has a known
// minimum run or queueing time.
void SpinFor(std::chrono::microseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

// Stats must be read on the strand: ask for them with a task and step the context.
std::vector<TaskStats> ReadStats(boost::asio::io_context& context, Actor& actor) {
  std::vector<TaskStats> stats;
  actor.Post("test.read_stats", [&] { stats = actor.Stats(); });
  context.restart();
  context.run();
  return stats;
}

TEST(ActorTest, TasksRunOneAtATimeInPostOrder) {
  boost::asio::io_context context;
  Actor actor("order", context.get_executor());
  std::vector<int> ran;
  for (int i = 0; i < 5; ++i) {
    actor.Post("test.append", [&ran, i] { ran.push_back(i); });
  }
  // A task posted by a task goes behind the ones already queued.
  actor.Post("test.repost", [&] { actor.Post("test.append", [&ran] { ran.push_back(99); }); });
  actor.Post("test.append", [&ran] { ran.push_back(5); });
  EXPECT_TRUE(ran.empty());  // nothing runs until the executor is stepped
  EXPECT_EQ(context.run_one(), 1u);
  EXPECT_THAT(ran, ElementsAre(0));
  context.run();
  EXPECT_THAT(ran, ElementsAre(0, 1, 2, 3, 4, 5, 99));
}

TEST(ActorTest, OnStrandOnlyInsideItsOwnTasks) {
  boost::asio::io_context context;
  Actor actor("a", context.get_executor());
  Actor other("b", context.get_executor());
  EXPECT_FALSE(actor.OnStrand());
  std::vector<bool> seen;
  actor.Post("test.probe", [&] {
    seen.push_back(actor.OnStrand());
    seen.push_back(other.OnStrand());
  });
  other.Post("test.probe", [&] { seen.push_back(actor.OnStrand()); });
  context.run();
  EXPECT_THAT(seen, ElementsAre(true, false, false));
  EXPECT_FALSE(actor.OnStrand());
}

TEST(ActorTest, BindFromAnotherThreadRunsOnTheStrand) {
  boost::asio::io_context context;
  Actor actor("bound", context.get_executor());
  std::vector<int> values;
  std::vector<bool> on_strand;
  std::vector<std::thread::id> threads;
  auto bound = actor.Bind("test.add", [&](int v, const std::string& s) {
    values.push_back(v + static_cast<int>(s.size()));
    on_strand.push_back(actor.OnStrand());
    threads.push_back(std::this_thread::get_id());
  });
  std::thread caller([&bound] {
    std::string text = "abc";
    bound(7, text);
    text = "abcdef";  // the message holds its own copy
    bound(10, std::string("x"));
  });
  caller.join();
  EXPECT_TRUE(values.empty());  // posted, not run on the caller
  context.run();
  EXPECT_THAT(values, ElementsAre(10, 11));
  EXPECT_THAT(on_strand, ElementsAre(true, true));
  EXPECT_THAT(threads, ElementsAre(std::this_thread::get_id(), std::this_thread::get_id()));
}

TEST(ActorTest, BindTakesMoveOnlyCallablesAndArguments) {
  boost::asio::io_context context;
  Actor actor("move", context.get_executor());
  int got = 0;
  auto owned = std::make_unique<int>(3);
  auto bound = actor.Bind(
      "test.take", [&got, owned = std::move(owned)](std::unique_ptr<int> p) { got = *owned * *p; });
  bound(std::make_unique<int>(5));
  context.run();
  EXPECT_EQ(got, 15);
}

TEST(ActorTest, BoundCallsAndPostsAfterTheActorDiesAreDropped) {
  boost::asio::io_context context;
  auto actor = std::make_unique<Actor>("doomed", context.get_executor());
  int calls = 0;
  auto bound = actor->Bind("test.count", [&calls] { ++calls; });
  bound();
  context.run();
  ASSERT_EQ(calls, 1);  // the callable works while the actor lives

  bound();                                           // queued, then the actor dies
  actor->Post("test.count", [&calls] { ++calls; });  // likewise
  actor.reset();
  bound();  // invoked after death
  context.restart();
  context.run();
  EXPECT_EQ(calls, 1);
}

TEST(ActorTest, AnActorMayBeDestroyedByItsOwnTask) {
  boost::asio::io_context context;
  auto actor = std::make_unique<Actor>("suicidal", context.get_executor());
  bool after = false;
  actor->Post("test.die", [&actor] { actor.reset(); });
  actor->Post("test.after", [&after] { after = true; });
  context.run();
  EXPECT_EQ(actor, nullptr);
  EXPECT_FALSE(after);
}

TEST(ActorTest, StatsCountTasksAndMeasureQueueingAndRunTime) {
  constexpr auto kRun = std::chrono::microseconds(300);
  constexpr auto kQueue = std::chrono::microseconds(1000);
  boost::asio::io_context context;
  Actor actor("stats", context.get_executor());
  for (int i = 0; i < 3; ++i) actor.Post("test.spin", [&] { SpinFor(kRun); });
  for (int i = 0; i < 2; ++i) actor.Post("test.noop", [] {});
  SpinFor(kQueue);  // every task above waits at least this long
  context.run();

  const std::vector<TaskStats> stats = ReadStats(context, actor);
  ASSERT_EQ(stats.size(), 2u);  // the reading task is not counted until it ends
  const TaskStats& noop = stats[0];
  const TaskStats& spin = stats[1];
  EXPECT_EQ(noop.name, "test.noop");
  EXPECT_EQ(noop.count, 2);
  EXPECT_GE(noop.total_run, absl::ZeroDuration());
  EXPECT_GE(noop.total_queue, 2 * absl::FromChrono(kQueue));
  EXPECT_EQ(spin.name, "test.spin");
  EXPECT_EQ(spin.count, 3);
  EXPECT_GE(spin.total_run, 3 * absl::FromChrono(kRun));
  EXPECT_GE(spin.max_run, absl::FromChrono(kRun));
  EXPECT_GE(spin.max_run, spin.total_run / 3);
  EXPECT_LE(spin.max_run, spin.total_run);
  EXPECT_GE(spin.total_queue, 3 * absl::FromChrono(kQueue));
  EXPECT_GE(spin.max_queue, spin.total_queue / 3);
  EXPECT_LE(spin.max_queue, spin.total_queue);

  const std::vector<TaskStats> again = ReadStats(context, actor);
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].name, "test.noop");
  EXPECT_EQ(again[1].name, "test.read_stats");
  EXPECT_EQ(again[1].count, 1);
  EXPECT_EQ(again[2].count, 3);
}

TEST(ActorDeathTest, CheckOnStrandAbortsOffTheStrand) {
  boost::asio::io_context context;
  Actor actor("guarded", context.get_executor());
  bool checked = false;
  actor.Post("test.check", [&] {
    YARD_CHECK_ON_STRAND(actor);  // passes here
    YARD_DCHECK_ON_STRAND(actor);
    checked = true;
  });
  context.run();
  EXPECT_TRUE(checked);
  EXPECT_DEATH(YARD_CHECK_ON_STRAND(actor), "actor 'guarded' touched off its strand");
#ifdef NDEBUG
  YARD_DCHECK_ON_STRAND(actor);  // compiled out: returns
#else
  EXPECT_DEATH(YARD_DCHECK_ON_STRAND(actor), "actor 'guarded' touched off its strand");
#endif
}

// Per actor: tasks check that none of the same actor is running (the flag is atomic
// only so the compiler keeps the check; the strand is what must make it pass), and
// record their index in a plain vector that only a serialized run fills correctly.
struct Probe {
  std::atomic<int> inside{0};
  int overlaps = 0;
  std::vector<int> order;
};

TEST(ActorTest, TwoActorsOnAThreadPoolNeverRunOneActorsTasksConcurrently) {
  constexpr int kTasks = 20000;
  constexpr int kThreads = 4;
  boost::asio::io_context context;
  Actor a("a", context.get_executor());
  Actor b("b", context.get_executor());
  Probe probe_a;
  Probe probe_b;
  // Reserved so that an unserialized run shows up as a wrong order, not a crash.
  probe_a.order.reserve(kTasks);
  probe_b.order.reserve(kTasks);
  auto post = [](Actor& actor, Probe& probe, int i) {
    actor.Post("test.step", [&probe, i] {
      if (probe.inside.fetch_add(1) != 0) ++probe.overlaps;
      SpinFor(std::chrono::microseconds(1));  // widens the window for an overlap
      probe.order.push_back(i);
      probe.inside.fetch_sub(1);
    });
  };
  for (int i = 0; i < kTasks; ++i) {
    post(a, probe_a, i);
    post(b, probe_b, i);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&context] { context.run(); });
  for (std::thread& t : threads) t.join();

  for (const Probe* probe : {&probe_a, &probe_b}) {
    EXPECT_EQ(probe->overlaps, 0);
    ASSERT_EQ(probe->order.size(), static_cast<size_t>(kTasks));
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(probe->order[i], i);
  }
}

}  // namespace
}  // namespace yard::actor
