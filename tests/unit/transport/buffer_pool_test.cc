#include "transport/buffer_pool.h"

#include <vector>

#include "gtest/gtest.h"

namespace yard::transport {
namespace {

TEST(BufferPoolTest, TakeReusesTheSmallestKeptBufferThatIsLargeEnough) {
  BufferPool pool;
  std::vector<uint8_t> fresh = pool.Take(100);
  EXPECT_EQ(fresh.size(), 100u);
  std::vector<uint8_t> big(1000, 7), medium(300, 8);
  const uint8_t* big_data = big.data();
  const uint8_t* medium_data = medium.data();
  pool.Give(std::move(big));
  pool.Give(std::move(medium));
  EXPECT_EQ(pool.kept(), 2u);
  std::vector<uint8_t> a = pool.Take(200);  // medium is the best fit
  EXPECT_EQ(a.size(), 200u);
  EXPECT_EQ(a.data(), medium_data);
  EXPECT_EQ(a[199], 8);  // truncated, not refilled
  std::vector<uint8_t> b = pool.Take(1000);
  EXPECT_EQ(b.data(), big_data);
  EXPECT_EQ(pool.kept(), 0u);
  std::vector<uint8_t> c = pool.Take(5000);  // nothing large enough: a new one
  EXPECT_EQ(c.size(), 5000u);
}

TEST(BufferPoolTest, LimitsDropTheSmallestBuffers) {
  BufferPool pool(/*max_buffers=*/2, /*max_bytes=*/1000);
  pool.Give(std::vector<uint8_t>(100));
  pool.Give(std::vector<uint8_t>(400));
  pool.Give(std::vector<uint8_t>(500));  // three buffers: the 100 goes
  EXPECT_EQ(pool.kept(), 2u);
  EXPECT_EQ(pool.Take(450).size(), 450u);  // the 500
  EXPECT_EQ(pool.kept(), 1u);
  pool.Give(std::vector<uint8_t>(800));  // 400 + 800 > 1000 bytes: the 400 goes
  EXPECT_EQ(pool.kept(), 1u);
  pool.Give(std::vector<uint8_t>(2000));  // larger than the whole budget: not kept
  pool.Give({});                          // empty: not kept
  EXPECT_EQ(pool.kept(), 1u);
}

}  // namespace
}  // namespace yard::transport
