#include "expert_worker/expert_slots.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/unit/expert_worker/test_experts.h"

namespace yard::expert_worker {
namespace {

using fixture::kExperts;
using fixture::kLayers;
using fixture::TestExperts;

TEST(ExpertSlotsTest, StartsEmpty) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 4);
  EXPECT_EQ(slots.capacity(), 4u);
  EXPECT_EQ(slots.used(), 0u);
  for (uint32_t s = 0; s < 4; ++s) EXPECT_FALSE(slots.Find(s).has_value()) << s;
}

TEST(ExpertSlotsTest, LoadFindAndReleasePointAtTheExpertsWeights) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 3);
  ASSERT_TRUE(slots.Load(0, 1, 2).ok());
  ASSERT_TRUE(slots.Load(2, 2, 0).ok());
  EXPECT_EQ(slots.used(), 2u);

  std::optional<SlotContents> s0 = slots.Find(0);
  ASSERT_TRUE(s0.has_value());
  EXPECT_EQ(s0->layer, 1u);
  EXPECT_EQ(s0->logical_expert, 2u);
  EXPECT_EQ(s0->weights, &experts.expert(1, 2));
  std::optional<SlotContents> s2 = slots.Find(2);
  ASSERT_TRUE(s2.has_value());
  EXPECT_EQ(s2->layer, 2u);
  EXPECT_EQ(s2->logical_expert, 0u);
  EXPECT_EQ(s2->weights, &experts.expert(2, 0));
  EXPECT_FALSE(slots.Find(1).has_value());

  ASSERT_TRUE(slots.Release(0).ok());
  EXPECT_FALSE(slots.Find(0).has_value());
  EXPECT_EQ(slots.used(), 1u);
  // Releasing a free slot is a no-op.
  EXPECT_TRUE(slots.Release(0).ok());
  EXPECT_TRUE(slots.Release(1).ok());
  EXPECT_EQ(slots.used(), 1u);

  // A released slot takes another expert.
  ASSERT_TRUE(slots.Load(0, 2, 1).ok());
  EXPECT_EQ(slots.Find(0)->weights, &experts.expert(2, 1));
  EXPECT_EQ(slots.used(), 2u);
}

TEST(ExpertSlotsTest, SlotBeyondCapacityIsInvalidArgument) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 2);
  EXPECT_EQ(slots.Load(2, 1, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.Load(1000, 1, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.Release(2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(slots.Find(2).has_value());
  EXPECT_EQ(slots.used(), 0u);
}

TEST(ExpertSlotsTest, ZeroCapacityHoldsNothing) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 0);
  EXPECT_EQ(slots.Load(0, 1, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.used(), 0u);
}

TEST(ExpertSlotsTest, LayerWithoutExpertsIsInvalidArgument) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 2);
  EXPECT_EQ(slots.Load(0, 0, 0).code(), absl::StatusCode::kInvalidArgument);  // dense layer
  EXPECT_EQ(slots.Load(0, kLayers, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.Load(0, 1u << 31, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(slots.Find(0).has_value());
}

TEST(ExpertSlotsTest, ExpertIdOutOfRangeIsInvalidArgument) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 2);
  EXPECT_EQ(slots.Load(0, 1, kExperts).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.Load(0, 1, 0xffffffffu).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(slots.Find(0).has_value());
  EXPECT_TRUE(slots.Load(0, 1, kExperts - 1).ok());
}

TEST(ExpertSlotsTest, PrefetchChecksTheExpertAndChangesNoSlot) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 2);
  EXPECT_TRUE(slots.Prefetch(1, kExperts - 1).ok());
  EXPECT_EQ(slots.Prefetch(0, 0).code(), absl::StatusCode::kInvalidArgument);  // dense layer
  EXPECT_EQ(slots.Prefetch(kLayers, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.Prefetch(1, kExperts).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.used(), 0u);
}

TEST(ExpertSlotsTest, ReloadingTheSameExpertIsOk) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 2);
  ASSERT_TRUE(slots.Load(1, 2, 1).ok());
  EXPECT_TRUE(slots.Load(1, 2, 1).ok());
  EXPECT_EQ(slots.used(), 1u);
  EXPECT_EQ(slots.Find(1)->weights, &experts.expert(2, 1));
}

TEST(ExpertSlotsTest, AnotherExpertIntoAnOccupiedSlotIsFailedPrecondition) {
  TestExperts experts;
  ExpertSlots slots(experts.views(), 2);
  ASSERT_TRUE(slots.Load(1, 2, 1).ok());
  EXPECT_EQ(slots.Load(1, 2, 0).code(), absl::StatusCode::kFailedPrecondition);  // other expert
  EXPECT_EQ(slots.Load(1, 1, 1).code(), absl::StatusCode::kFailedPrecondition);  // other layer
  // The slot still holds what it held.
  std::optional<SlotContents> s = slots.Find(1);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->layer, 2u);
  EXPECT_EQ(s->logical_expert, 1u);
  EXPECT_EQ(slots.used(), 1u);
}

}  // namespace
}  // namespace yard::expert_worker
