#include "actor/event_loop.h"

#include <csignal>
#include <set>
#include <thread>

#include "actor/actor.h"
#include "gtest/gtest.h"

namespace yard::actor {
namespace {

TEST(EventLoopTest, RunsActorsOnItsThreadsUntilStopped) {
  EventLoop loop(2);
  Actor actor("worker", loop.executor());
  std::set<std::thread::id> ran_on;
  int runs = 0;
  loop.Start();
  for (int i = 0; i < 100; ++i) {
    actor.Post("test.run", [&] {
      ran_on.insert(std::this_thread::get_id());
      if (++runs == 100) loop.Stop();
    });
  }
  loop.Join();  // returns only because the last task stopped the loop
  EXPECT_EQ(runs, 100);
  EXPECT_EQ(ran_on.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(loop.shutdown_signal(), 0);
}

TEST(EventLoopTest, SigtermStopsTheLoop) {
  EventLoop loop(1);
  loop.HandleShutdownSignals();
  loop.Start();
  std::raise(SIGTERM);  // would kill the test if the loop had not taken the signal
  loop.Join();
  EXPECT_EQ(loop.shutdown_signal(), SIGTERM);
}

TEST(EventLoopTest, ASignalHandlerMayDrainThroughAnActorBeforeStopping) {
  EventLoop loop(2);
  Actor actor("drainer", loop.executor());
  int handled = 0;
  bool drained = false;
  loop.HandleShutdownSignals([&](int signo) {
    handled = signo;
    actor.Post("test.drain", [&] {
      drained = true;
      loop.Stop();
    });
  });
  loop.Start();
  std::raise(SIGINT);
  loop.Join();
  EXPECT_EQ(handled, SIGINT);
  EXPECT_TRUE(drained);
  EXPECT_EQ(loop.shutdown_signal(), SIGINT);
}

}  // namespace
}  // namespace yard::actor
