#include "transport/ucx/ucx_address.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace yard::transport {
namespace {

TEST(UcxAddressTest, RoundTrips) {
  std::vector<uint8_t> raw(300);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 37);
  const std::string encoded = EncodeUcxAddress(raw.data(), raw.size());
  EXPECT_EQ(encoded.substr(0, 4), "ucx:");
  absl::StatusOr<std::vector<uint8_t>> decoded = DecodeUcxAddress(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, raw);
}

TEST(UcxAddressTest, AcceptsUpperCaseHex) {
  const std::vector<uint8_t> raw = {0xab, 0xcd, 0xef};
  std::string encoded = EncodeUcxAddress(raw.data(), raw.size());
  for (size_t i = 4; i < encoded.size(); ++i) encoded[i] = std::toupper(encoded[i]);
  absl::StatusOr<std::vector<uint8_t>> decoded = DecodeUcxAddress(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, raw);
}

TEST(UcxAddressTest, MalformedIsInvalidArgument) {
  const std::vector<uint8_t> raw = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::string good = EncodeUcxAddress(raw.data(), raw.size());
  std::string flipped = good;
  flipped[12] = flipped[12] == 'f' ? 'e' : 'f';
  const std::vector<std::string> bad = {
      "",
      "u",
      "ucx",
      "ucx:",
      "UCX:" + good.substr(4),
      "tcp:" + good.substr(4),
      good.substr(4),
      "ucx:0",
      "ucx:gg",
      "ucx:" + std::string(2 * 13, '0'),  // length 0: no address bytes
      good.substr(0, good.size() - 1),
      good.substr(0, good.size() - 2),
      good.substr(0, 12),
      good + "ab",
      flipped,
      std::string("ucx:\0\0", 6),
      "ucx:" + std::string(2 * (kMaxUcxAddressBytes + 13), 'a'),  // too long
  };
  for (const std::string& address : bad) {
    absl::StatusOr<std::vector<uint8_t>> decoded = DecodeUcxAddress(address);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << "accepted: " << address.substr(0, 40);
  }
}

}  // namespace
}  // namespace yard::transport
