#include "actor/task_stats.h"

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace yard::actor {
namespace {

TEST(TaskStatsTableTest, AccumulatesPerNameAndSortsByName) {
  TaskStatsTable table;
  EXPECT_TRUE(table.Snapshot().empty());
  table.Record("b.tick", absl::Microseconds(5), absl::Microseconds(10));
  table.Record("a.load", absl::Microseconds(1), absl::Milliseconds(3));
  // A different pointer with the same text is the same name.
  const std::string copy = "b.tick";
  table.Record(copy.c_str(), absl::Microseconds(7), absl::Microseconds(4));

  const std::vector<TaskStats> stats = table.Snapshot();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].name, "a.load");
  EXPECT_EQ(stats[0].count, 1);
  EXPECT_EQ(stats[0].total_run, absl::Milliseconds(3));
  EXPECT_EQ(stats[1].name, "b.tick");
  EXPECT_EQ(stats[1].count, 2);
  EXPECT_EQ(stats[1].total_queue, absl::Microseconds(12));
  EXPECT_EQ(stats[1].max_queue, absl::Microseconds(7));
  EXPECT_EQ(stats[1].total_run, absl::Microseconds(14));
  EXPECT_EQ(stats[1].max_run, absl::Microseconds(10));
}

}  // namespace
}  // namespace yard::actor
