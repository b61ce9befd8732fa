#include "transport/wire_format.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::transport {
namespace {

using ::testing::HasSubstr;

MessageHeader Header(WireDType dtype, uint32_t tokens, uint32_t hidden) {
  MessageHeader h;
  h.placement_version = 0x0102030405060708ull;
  h.step_id = 42;
  h.layer = 3;
  h.micro_batch = 1;
  h.sender = 7;
  h.token_count = tokens;
  h.hidden = hidden;
  h.dtype = dtype;
  h.prefill_rows = 9;
  return h;
}

std::vector<TokenRoute> Routes(uint32_t tokens) {
  std::vector<TokenRoute> r;
  for (uint32_t t = 0; t < tokens; ++t) r.push_back({t % 5, 100 + t});
  return r;
}

std::vector<float> RandomValues(size_t n, uint32_t seed, float spread = 4.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, spread);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

DecodeLimits Limits() {
  DecodeLimits l;
  l.max_tokens = 64;
  l.max_hidden = 4096;
  l.num_slots = 8;
  l.token_index_bound = 1000;
  return l;
}

template <typename T>
void Poke(std::vector<uint8_t>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Asserts that `bytes` decodes to kInvalidArgument whose message names `field`.
void ExpectInvalid(const std::vector<uint8_t>& bytes, const DecodeLimits& limits,
                   const std::string& field) {
  absl::StatusOr<DecodedMessage> m = Decode(bytes, limits);
  ASSERT_FALSE(m.ok()) << "expected an error mentioning " << field;
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(field));
}

TEST(WireFormatTest, HeaderIsLittleEndianAtDocumentedOffsets) {
  MessageHeader h = Header(WireDType::kBF16, 1, 2);
  const std::vector<uint8_t> bytes = EncodeDispatch(h, Routes(1), {1.0f, -2.0f});
  ASSERT_EQ(bytes.size(), kWireHeaderSize + 8 + 4);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "YDP1");
  EXPECT_EQ(bytes[4], 2);   // version
  EXPECT_EQ(bytes[6], 1);   // kind dispatch
  EXPECT_EQ(bytes[8], 0x08);  // placement version, low byte first
  EXPECT_EQ(bytes[15], 0x01);
  EXPECT_EQ(bytes[16], 42);  // step
  EXPECT_EQ(bytes[24], 3);   // layer
  EXPECT_EQ(bytes[28], 1);   // micro-batch
  EXPECT_EQ(bytes[32], 7);   // sender
  EXPECT_EQ(bytes[36], 1);   // tokens
  EXPECT_EQ(bytes[40], 2);   // hidden
  EXPECT_EQ(bytes[44], 1);   // dtype bf16
  EXPECT_EQ(bytes[48], 12);  // payload: 8 route bytes + 2 bf16
  EXPECT_EQ(bytes[56], 9);   // prefill rows
  EXPECT_EQ(bytes[60], 0);   // reserved
  EXPECT_EQ(bytes[64], 0);   // slot 0
  EXPECT_EQ(bytes[68], 100);  // token index
  EXPECT_EQ(bytes[72], 0x80);  // 1.0 bf16 = 0x3F80
  EXPECT_EQ(bytes[73], 0x3F);
  EXPECT_EQ(bytes[74], 0x00);  // -2.0 bf16 = 0xC000
  EXPECT_EQ(bytes[75], 0xC0);
}

TEST(WireFormatTest, RoundTripsEveryKindAndDType) {
  struct Case {
    MessageKind kind;
    WireDType dtype;
  };
  for (Case c : {Case{MessageKind::kDispatch, WireDType::kBF16},
                 Case{MessageKind::kDispatch, WireDType::kFP8E4M3},
                 Case{MessageKind::kDispatch, WireDType::kFP32},
                 Case{MessageKind::kCombine, WireDType::kBF16},
                 Case{MessageKind::kCombine, WireDType::kFP32}}) {
    SCOPED_TRACE(std::string(MessageKindName(c.kind)) + " " + WireDTypeName(c.dtype));
    const uint32_t tokens = 5;
    const uint32_t hidden = 300;  // not a multiple of 128: a short last fp8 group
    const MessageHeader h = Header(c.dtype, tokens, hidden);
    const std::vector<float> x = RandomValues(tokens * hidden, 1);
    const std::vector<uint8_t> bytes = c.kind == MessageKind::kDispatch
                                           ? EncodeDispatch(h, Routes(tokens), x)
                                           : EncodeCombine(h, Routes(tokens), x);
    absl::StatusOr<DecodedMessage> m = Decode(bytes, Limits());
    ASSERT_TRUE(m.ok()) << m.status();
    MessageHeader expected = h;
    expected.kind = c.kind;
    EXPECT_EQ(m->header, expected);
    for (uint32_t t = 0; t < tokens; ++t) EXPECT_EQ(m->route(t), Routes(tokens)[t]);
    std::vector<float> back(x.size());
    m->ValuesToF32(absl::MakeSpan(back));
    for (size_t i = 0; i < x.size(); ++i) {
      switch (c.dtype) {
        case WireDType::kFP32:
          ASSERT_EQ(std::bit_cast<uint32_t>(back[i]), std::bit_cast<uint32_t>(x[i]));
          break;
        case WireDType::kBF16:
          ASSERT_EQ(back[i], Bf16ToF32(F32ToBf16(x[i])));
          break;
        case WireDType::kFP8E4M3:
          ASSERT_NEAR(back[i], x[i], std::fabs(x[i]) / 16 + 1e-3f);
          break;
      }
    }
    // Re-encoding the decoded sections gives the same bytes.
    EXPECT_EQ(EncodeRaw(m->header, m->routes, m->values, m->scales), bytes);
  }
}

TEST(WireFormatTest, EmptyMessageRoundTrips) {
  const std::vector<uint8_t> bytes =
      EncodeCombine(Header(WireDType::kFP32, 0, 64), {}, {});
  absl::StatusOr<DecodedMessage> m = Decode(bytes, Limits());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.token_count, 0u);
  EXPECT_TRUE(m->routes.empty());
}

TEST(WireFormatTest, Bf16ExactForRepresentableValues) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const float f = Bf16ToF32(static_cast<uint16_t>(code));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(f))));
    } else {
      ASSERT_EQ(F32ToBf16(f), code);
    }
  }
}

TEST(WireFormatTest, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even mantissa (1.0).
  EXPECT_EQ(F32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: rounds up.
  EXPECT_EQ(F32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  // Just above the halfway point rounds up.
  EXPECT_EQ(F32ToBf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7F80);  // overflow: inf
  EXPECT_EQ(F32ToBf16(-std::numeric_limits<float>::infinity()), 0xFF80);
}

TEST(WireFormatTest, Fp8AllCodesRoundTrip) {
  for (uint32_t code = 0; code < 256; ++code) {
    const float f = Fp8E4M3ToF32(static_cast<uint8_t>(code));
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(f)) << code;
      EXPECT_EQ(F32ToFp8E4M3(f), code);  // NaN keeps its sign
    } else {
      EXPECT_EQ(F32ToFp8E4M3(f), code) << code << " " << f;
    }
  }
  EXPECT_EQ(Fp8E4M3ToF32(0x7E), 448.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(Fp8E4M3ToF32(0x08), std::ldexp(1.0f, -6));
}

TEST(WireFormatTest, Fp8RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(F32ToFp8E4M3(1.0625f), 0x38);  // halfway 1 and 1.125: even (1.0)
  EXPECT_EQ(F32ToFp8E4M3(1.1875f), 0x3A);  // halfway 1.125 and 1.25: even (1.25)
  EXPECT_EQ(F32ToFp8E4M3(1.07f), 0x39);
  EXPECT_EQ(F32ToFp8E4M3(15.5f), 0x58);    // 15 and 16: even mantissa is 16 (2^4)
  EXPECT_EQ(F32ToFp8E4M3(460.0f), 0x7E);   // saturates, never NaN
  EXPECT_EQ(F32ToFp8E4M3(1e30f), 0x7E);
  EXPECT_EQ(F32ToFp8E4M3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(F32ToFp8E4M3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest: even 0
  EXPECT_EQ(F32ToFp8E4M3(3 * std::ldexp(1.0f, -10)), 0x02);  // 1.5 steps: even 2
  EXPECT_EQ(F32ToFp8E4M3(-0.0f), 0x80);
}

// The bound stated in wire_format.h: |x - x'| <= 2^-4 |x| + 2^-10 s, s = m / 448,
// with a little slack for FP32 rounding of x / s and q * s.
TEST(WireFormatTest, Fp8QuantizationErrorWithinBound) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const float spread = std::ldexp(1.0f, static_cast<int>(seed) - 10);
    std::vector<float> x = RandomValues(1000, seed, spread);
    if (seed % 3 == 0) x[5] = 0.0f;
    const size_t groups = (x.size() + 127) / 128;
    std::vector<uint8_t> q(x.size());
    std::vector<float> scales(groups);
    std::vector<float> back(x.size());
    QuantizeFp8Row(x, absl::MakeSpan(q), absl::MakeSpan(scales));
    DequantizeFp8Row(q, scales, absl::MakeSpan(back));
    for (size_t g = 0; g < groups; ++g) {
      float m = 0.0f;
      for (size_t i = g * 128; i < std::min(x.size(), g * 128 + 128); ++i) {
        m = std::max(m, std::fabs(x[i]));
      }
      EXPECT_EQ(scales[g], m > 0 ? m / 448.0f : 1.0f);
      for (size_t i = g * 128; i < std::min(x.size(), g * 128 + 128); ++i) {
        const float bound =
            (std::ldexp(std::fabs(x[i]), -4) + std::ldexp(scales[g], -10)) *
                (1.0f + std::ldexp(1.0f, -18)) +
            std::ldexp(std::fabs(x[i]), -20);
        ASSERT_LE(std::fabs(back[i] - x[i]), bound) << "seed " << seed << " i " << i;
        ASSERT_LE(std::fabs(back[i] - x[i]), std::ldexp(m, -4) * 1.0001f);
      }
    }
  }
}

TEST(WireFormatTest, Fp8GroupMaxIsExactAndNonFiniteValuesAreVisible) {
  std::vector<float> x(130, 1.0f);
  x[0] = -3.0f;  // group max
  x[1] = std::numeric_limits<float>::quiet_NaN();
  x[2] = std::numeric_limits<float>::infinity();
  x[129] = 0.0f;
  std::vector<uint8_t> q(x.size());
  std::vector<float> scales(2);
  QuantizeFp8Row(x, absl::MakeSpan(q), absl::MakeSpan(scales));
  std::vector<float> back(x.size());
  DequantizeFp8Row(q, scales, absl::MakeSpan(back));
  EXPECT_EQ(scales[0], 3.0f / 448.0f);
  EXPECT_FLOAT_EQ(back[0], -3.0f);
  EXPECT_TRUE(std::isnan(back[1]));
  EXPECT_FLOAT_EQ(back[2], 3.0f);  // +inf saturates to the group max
  EXPECT_FLOAT_EQ(back[128], 1.0f);  // second group: its own max, 1
  EXPECT_EQ(back[129], 0.0f);
  // A group of zeros gets scale 1 (as the single-process engine rounds) and stays 0.
  std::vector<float> zeros(3, 0.0f);
  zeros[1] = -0.0f;
  std::vector<uint8_t> qz(3);
  std::vector<float> sz(1);
  QuantizeFp8Row(zeros, absl::MakeSpan(qz), absl::MakeSpan(sz));
  EXPECT_EQ(sz[0], 1.0f);
  EXPECT_EQ(qz, (std::vector<uint8_t>{0x00, 0x80, 0x00}));
}

// --- Malformed messages: each names the offending field. ---

class MalformedTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> Bf16Dispatch(uint32_t tokens = 2, uint32_t hidden = 16) {
    return EncodeDispatch(Header(WireDType::kBF16, tokens, hidden), Routes(tokens),
                          RandomValues(tokens * hidden, 3));
  }
  std::vector<uint8_t> Fp8Dispatch() {
    return EncodeDispatch(Header(WireDType::kFP8E4M3, 2, 200), Routes(2),
                          RandomValues(400, 4));
  }
};

TEST_F(MalformedTest, Empty) { ExpectInvalid({}, Limits(), "truncated header"); }

TEST_F(MalformedTest, TruncatedHeader) {
  std::vector<uint8_t> b = Bf16Dispatch();
  b.resize(kWireHeaderSize - 1);
  ExpectInvalid(b, Limits(), "truncated header: 63 bytes");
}

TEST_F(MalformedTest, BadMagic) {
  std::vector<uint8_t> b = Bf16Dispatch();
  b[3] = 'X';
  ExpectInvalid(b, Limits(), "bad magic");
}

TEST_F(MalformedTest, BadVersion) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint16_t>(b, 4, 1);  // the 56-byte header without prefill rows
  ExpectInvalid(b, Limits(), "format version 1");
}

TEST_F(MalformedTest, BadKind) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint16_t>(b, 6, 3);
  ExpectInvalid(b, Limits(), "kind 3");
  Poke<uint16_t>(b, 6, 0);
  ExpectInvalid(b, Limits(), "kind 0");
}

TEST_F(MalformedTest, BadDType) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint16_t>(b, 44, 4);
  ExpectInvalid(b, Limits(), "dispatch: dtype 4");
  Poke<uint16_t>(b, 44, 0);
  ExpectInvalid(b, Limits(), "dispatch: dtype 0");
}

TEST_F(MalformedTest, Fp8CombineNotAllowed) {
  std::vector<uint8_t> b = Fp8Dispatch();
  Poke<uint16_t>(b, 6, static_cast<uint16_t>(MessageKind::kCombine));
  ExpectInvalid(b, Limits(), "combine: dtype fp8_e4m3 is not allowed");
}

TEST_F(MalformedTest, ReservedNotZero) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint16_t>(b, 46, 1);
  ExpectInvalid(b, Limits(), "reserved field is 1");
  b = Bf16Dispatch();
  Poke<uint32_t>(b, 60, 3);
  ExpectInvalid(b, Limits(), "reserved field is 3");
}

TEST_F(MalformedTest, TokenCountOverLimit) {
  DecodeLimits l = Limits();
  l.max_tokens = 1;
  ExpectInvalid(Bf16Dispatch(), l, "token count 2 exceeds the limit 1");
}

TEST_F(MalformedTest, HiddenZero) {
  std::vector<uint8_t> b = EncodeDispatch(Header(WireDType::kBF16, 0, 0), {}, {});
  ExpectInvalid(b, Limits(), "hidden size 0 outside");
}

TEST_F(MalformedTest, HiddenOverMax) {
  DecodeLimits l = Limits();
  l.max_hidden = 8;
  ExpectInvalid(Bf16Dispatch(), l, "hidden size 16 outside [1, 8]");
}

TEST_F(MalformedTest, HiddenMismatch) {
  DecodeLimits l = Limits();
  l.expected_hidden = 7168;
  ExpectInvalid(Bf16Dispatch(), l, "hidden size 16, expected 7168");
}

TEST_F(MalformedTest, PayloadLengthMismatch) {
  std::vector<uint8_t> b = Bf16Dispatch(2, 1152);
  Poke<uint64_t>(b, 48, 1000);
  ExpectInvalid(b, Limits(),
                "dispatch: payload length 1000, expected 4624 for 2 tokens × 1152 "
                "hidden bf16");
}

TEST_F(MalformedTest, TokenCountDisagreesWithPayload) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint32_t>(b, 36, 3);  // header claims 3 tokens, payload holds 2
  ExpectInvalid(b, Limits(), "payload length");
}

TEST_F(MalformedTest, TruncatedPayload) {
  std::vector<uint8_t> b = Bf16Dispatch();
  b.pop_back();
  ExpectInvalid(b, Limits(), "truncated payload");
}

TEST_F(MalformedTest, TrailingBytes) {
  std::vector<uint8_t> b = Bf16Dispatch();
  b.push_back(0);
  ExpectInvalid(b, Limits(), "1 trailing bytes");
}

TEST_F(MalformedTest, SlotOutOfRange) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint32_t>(b, kWireHeaderSize + 8, 8);  // token 1's slot; 8 slots
  ExpectInvalid(b, Limits(), "token 1: slot id 8 out of range");
}

TEST_F(MalformedTest, TokenIndexOutOfRange) {
  std::vector<uint8_t> b = Bf16Dispatch();
  Poke<uint32_t>(b, kWireHeaderSize + 4, 1000);
  ExpectInvalid(b, Limits(), "token 0: token index 1000 out of range");
}

TEST_F(MalformedTest, NaNScale) {
  std::vector<uint8_t> b = Fp8Dispatch();
  const size_t scales = kWireHeaderSize + 2 * 8 + 2 * 200;
  Poke<float>(b, scales + 4, std::numeric_limits<float>::quiet_NaN());
  ExpectInvalid(b, Limits(), "token 0 group 1: fp8 scale nan");
}

TEST_F(MalformedTest, NegativeScale) {
  std::vector<uint8_t> b = Fp8Dispatch();
  const size_t scales = kWireHeaderSize + 2 * 8 + 2 * 200;
  Poke<float>(b, scales + 8, -1.0f);
  ExpectInvalid(b, Limits(), "token 1 group 0: fp8 scale -1");
}

TEST_F(MalformedTest, InfiniteScale) {
  std::vector<uint8_t> b = Fp8Dispatch();
  const size_t scales = kWireHeaderSize + 2 * 8 + 2 * 200;
  Poke<float>(b, scales + 12, std::numeric_limits<float>::infinity());
  ExpectInvalid(b, Limits(), "token 1 group 1: fp8 scale inf");
}

TEST_F(MalformedTest, SizeArithmeticOverflow) {
  std::vector<uint8_t> b = EncodeDispatch(Header(WireDType::kFP32, 0, 1), {}, {});
  Poke<uint32_t>(b, 36, 0xFFFFFFFFu);
  Poke<uint32_t>(b, 40, 0xFFFFFFFFu);
  DecodeLimits l;
  l.max_tokens = 0xFFFFFFFFu;
  l.max_hidden = 0xFFFFFFFFu;
  ExpectInvalid(b, l, "overflows 64 bits");
}

TEST_F(MalformedTest, HugeButRepresentablePayloadIsTruncated) {
  // 2^32-1 tokens × 2^32-1 hidden fp8 fits 64 bits (about 2^64 - 2^33 bytes): the
  // header's payload length must equal it and then the buffer is far too short.
  std::vector<uint8_t> b = EncodeDispatch(Header(WireDType::kFP8E4M3, 0, 1), {}, {});
  Poke<uint32_t>(b, 36, 0xFFFFFFFFu);
  Poke<uint32_t>(b, 40, 0xFFFFFFFFu);
  DecodeLimits l;
  l.max_tokens = 0xFFFFFFFFu;
  l.max_hidden = 0xFFFFFFFFu;
  ExpectInvalid(b, l, "overflows 64 bits");  // the scales push it over
  Poke<uint32_t>(b, 40, 1u << 20);
  absl::StatusOr<uint64_t> n = PayloadLength(0xFFFFFFFFu, 1u << 20, WireDType::kFP8E4M3);
  ASSERT_TRUE(n.ok());
  Poke<uint64_t>(b, 48, *n);
  ExpectInvalid(b, l, "truncated payload");
}

TEST_F(MalformedTest, EveryTruncationIsAnErrorNeverACrash) {
  const std::vector<uint8_t> full = Fp8Dispatch();
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> b(full.begin(), full.begin() + n);
    absl::StatusOr<DecodedMessage> m = Decode(b, Limits());
    ASSERT_FALSE(m.ok()) << n;
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace yard::transport
