#include "coordinator/expert_load_window.h"

#include <vector>

#include "gtest/gtest.h"

namespace yard::coordinator {
namespace {

constexpr int64_t kExperts = 4;

cluster::LoadReport Report(uint64_t version, std::vector<uint64_t> layer1,
                           std::vector<uint64_t> slots1 = {}) {
  cluster::LoadReport r;
  r.set_worker_id(1);
  r.set_placement_version(version);
  r.set_window_ms(1000);
  cluster::LayerLoad* l = r.add_layers();
  l->set_layer(1);
  for (uint64_t n : layer1) l->add_tokens_per_expert(n);
  for (uint64_t n : slots1) l->add_tokens_per_slot(n);
  return r;
}

TEST(ExpertLoadWindowTest, SumsReportsWithinTheWindowAndDropsOlderOnes) {
  FakeClock clock;
  ExpertLoadWindow window({1, 3}, kExperts, absl::Seconds(10), clock);
  EXPECT_EQ(window.Totals().reports, 0);
  ASSERT_TRUE(window.Add(Report(1, {5, 0, 1, 0}, {5, 0, 1, 0})).ok());
  clock.Advance(absl::Seconds(6));
  ASSERT_TRUE(window.Add(Report(1, {1, 2, 0, 0}, {1, 2, 0, 0})).ok());
  ExpertLoadTotals t = window.Totals();
  EXPECT_EQ(t.reports, 2);
  EXPECT_EQ(t.covered, absl::Seconds(6));
  EXPECT_EQ(t.layers, (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(t.tokens_per_expert[0], (std::vector<uint64_t>{6, 2, 1, 0}));
  EXPECT_EQ(t.tokens_per_expert[1], (std::vector<uint64_t>(kExperts, 0)));
  EXPECT_EQ(t.slot_version, 1u);
  EXPECT_EQ(t.tokens_per_slot[0], (std::vector<uint64_t>{6, 2, 1, 0}));
  clock.Advance(absl::Seconds(5));  // the first report is 11 s old
  t = window.Totals();
  EXPECT_EQ(t.reports, 1);
  EXPECT_EQ(t.tokens_per_expert[0], (std::vector<uint64_t>{1, 2, 0, 0}));
}

TEST(ExpertLoadWindowTest, SlotCountsAreThoseOfTheNewestVersion) {
  FakeClock clock;
  ExpertLoadWindow window({1}, kExperts, absl::Seconds(60), clock);
  ASSERT_TRUE(window.Add(Report(1, {1, 1, 1, 1}, {1, 1, 1, 1})).ok());
  ASSERT_TRUE(window.Add(Report(2, {2, 0, 0, 0}, {1, 0, 0, 0, 1})).ok());
  const ExpertLoadTotals t = window.Totals();
  EXPECT_EQ(t.tokens_per_expert[0], (std::vector<uint64_t>{3, 1, 1, 1}));  // all versions
  EXPECT_EQ(t.slot_version, 2u);
  EXPECT_EQ(t.tokens_per_slot[0], (std::vector<uint64_t>{1, 0, 0, 0, 1}));
}

TEST(ExpertLoadWindowTest, MalformedReportsAreInvalidArgumentAndKeepNothing) {
  FakeClock clock;
  ExpertLoadWindow window({1, 3}, kExperts, absl::Seconds(60), clock);
  cluster::LoadReport dense = Report(1, {1, 1, 1, 1});
  dense.mutable_layers(0)->set_layer(2);
  cluster::LoadReport beyond = Report(1, {1, 1, 1, 1});
  beyond.mutable_layers(0)->set_layer(4000000000u);
  cluster::LoadReport twice = Report(1, {1, 1, 1, 1});
  *twice.add_layers() = twice.layers(0);
  cluster::LoadReport negative = Report(1, {1, 1, 1, 1});
  negative.set_window_ms(-5);
  for (const cluster::LoadReport& bad :
       {dense, beyond, twice, negative, Report(1, {1, 1, 1}), Report(1, {1, 1, 1, 1, 1})}) {
    EXPECT_EQ(window.Add(bad).code(), absl::StatusCode::kInvalidArgument) << bad.DebugString();
  }
  EXPECT_EQ(window.Totals().reports, 0);
  cluster::LoadReport empty;  // no layers: no tokens, accepted
  EXPECT_TRUE(window.Add(empty).ok());
}

}  // namespace
}  // namespace yard::coordinator
