#include "coordinator/worker_streams.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::coordinator {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

WorkerRecord Worker(uint32_t id, bool alive) {
  WorkerRecord record;
  record.id = id;
  record.alive = alive;
  return record;
}

TEST(WorkerStreamsTest, OnlyTheStreamsOfWorkersNotAliveAreCancelledAndOnce) {
  WorkerStreams streams;
  grpc::ClientContext on_3, on_4a, on_4b, on_5, unwatched;
  streams.Watch(3, &on_3);
  streams.Watch(4, &on_4a);
  streams.Watch(4, &on_4b);
  streams.Watch(5, &on_5);
  streams.Watch(5, &unwatched);
  streams.Unwatch(5, &unwatched);
  // 3 alive, 4 dead, 5 missing from the snapshot (never registered here): both lost.
  EXPECT_THAT(streams.CancelLost({Worker(3, true), Worker(4, false)}),
              UnorderedElementsAre(Pair(4u, 2), Pair(5u, 1)));
  EXPECT_TRUE(streams.CancelLost({Worker(3, true)}).empty()) << "cancelled once";
  EXPECT_THAT(streams.CancelLost({}), UnorderedElementsAre(Pair(3u, 1)));
  streams.Unwatch(3, &on_3);  // after its cancellation: harmless
}

}  // namespace
}  // namespace yard::coordinator
