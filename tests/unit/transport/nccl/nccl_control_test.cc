#include "transport/nccl/nccl_control.h"

#include <string>

#include "gtest/gtest.h"

namespace yard::transport {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST(NcclControlTest, FramesRoundTrip) {
  for (const ControlFrame& frame :
       {ControlFrame{ControlType::kData, 0}, ControlFrame{ControlType::kData, 1ull << 40},
        ControlFrame{ControlType::kRequest, 12345}, ControlFrame{ControlType::kGo, 0}}) {
    std::string out;
    AppendControlFrame(frame, out);
    ASSERT_EQ(out.size(), kNcclControlHeaderBytes);
    absl::StatusOr<ControlFrame> decoded = DecodeControlHeader(Bytes(out));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->type, frame.type);
    EXPECT_EQ(decoded->value, frame.value);
    EXPECT_EQ(ControlBodyBytes(frame.type), 0u);
  }
}

TEST(NcclControlTest, HelloCarriesIdsAndUniqueId) {
  HelloBody hello;
  hello.from = 7;
  hello.to = 0xfffffffe;
  for (size_t i = 0; i < hello.unique_id.size(); ++i) hello.unique_id[i] = uint8_t(i * 3 + 1);
  std::string out;
  AppendHello(hello, out);
  ASSERT_EQ(out.size(), kNcclControlHeaderBytes + kNcclUniqueIdBytes);
  absl::StatusOr<ControlFrame> header = DecodeControlHeader(Bytes(out));
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->type, ControlType::kHello);
  ASSERT_EQ(ControlBodyBytes(header->type), kNcclUniqueIdBytes);
  const HelloBody decoded = DecodeHello(*header, Bytes(out) + kNcclControlHeaderBytes);
  EXPECT_EQ(decoded.from, 7u);
  EXPECT_EQ(decoded.to, 0xfffffffeu);
  EXPECT_EQ(decoded.unique_id, hello.unique_id);
}

TEST(NcclControlTest, MalformedHeadersAreInvalidArgument) {
  std::string good;
  AppendControlFrame(ControlFrame{ControlType::kData, 5}, good);
  auto corrupt = [&](size_t offset, uint8_t value) {
    std::string bad = good;
    bad[offset] = static_cast<char>(value);
    return DecodeControlHeader(Bytes(bad)).status().code();
  };
  EXPECT_EQ(corrupt(0, 'X'), absl::StatusCode::kInvalidArgument);  // magic
  EXPECT_EQ(corrupt(4, 2), absl::StatusCode::kInvalidArgument);    // version
  EXPECT_EQ(corrupt(6, 0), absl::StatusCode::kInvalidArgument);    // type 0
  EXPECT_EQ(corrupt(6, 5), absl::StatusCode::kInvalidArgument);    // type 5
  EXPECT_EQ(corrupt(7, 1), absl::StatusCode::kInvalidArgument);    // type 0x102

  std::string go;
  AppendControlFrame(ControlFrame{ControlType::kGo, 0}, go);
  go[8] = 1;  // a kGo with a value
  EXPECT_EQ(DecodeControlHeader(Bytes(go)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace yard::transport
