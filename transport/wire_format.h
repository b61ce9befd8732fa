// The bytes of the two data-plane messages (DESIGN.md "Data-plane messages"): a
// dispatch (attention worker -> expert worker: token activations for expert slots)
// and a combine (expert worker -> attention worker: the unweighted expert outputs of
// one dispatch). Pure functions; no state, safe from any thread.
//
// Layout, all integers and floats little-endian, no padding:
//
//   offset size field
//        0    4 magic              kWireMagic: the bytes "YDP1"
//        4    2 format version     kWireFormatVersion
//        6    2 kind               1 dispatch, 2 combine
//        8    8 placement version
//       16    8 request step id
//       24    4 layer
//       28    4 micro-batch
//       32    4 sender id          the sender's PeerId
//       36    4 token count        T
//       40    4 hidden size        H
//       44    2 dtype              1 bf16, 2 fp8 e4m3, 3 fp32
//       46    2 reserved           must be 0
//       48    8 payload length     bytes after the header, exactly
//       56    4 prefill rows       routes whose token index is below it carry tokens
//                                  of prefill chunks (the sender places those rows
//                                  first); the expert may compute them with BF16
//                                  activations, the rest (decode) in FP32. 0 if none
//       60    4 reserved           must be 0
//       64      routes             [T] x {u32 slot id, u32 token index}
//                                  (the token index is the attention worker's row,
//                                  echoed back unchanged in the combine)
//                                  values, by dtype:
//                                    bf16: [T, H] u16 bf16 bits, row-major
//                                    fp32: [T, H] f32, row-major
//                                    fp8:  [T, H] e4m3 bytes, row-major, then
//                                          [T, ceil(H/128)] f32 scales, row-major
//
// FP8 groups are 128 consecutive values of one token's row (the last group of a row
// may be shorter); value = fp8 x scale, scale = max|x| / 448 over the group (see
// QuantizeFp8Row). Scales must be finite and >= 0.
//
// Which dtypes a kind may carry: a dispatch bf16, fp8 or fp32; a combine bf16 or
// fp32 (fp32 so that a distributed step can equal the single-process FP32 reference
// bit for bit; fp8 is never used for expert outputs).
#ifndef SWITCHYARD_TRANSPORT_WIRE_FORMAT_H_
#define SWITCHYARD_TRANSPORT_WIRE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace yard::transport {

inline constexpr uint32_t kWireMagic = 0x31504459;  // "YDP1" in memory order
inline constexpr uint16_t kWireFormatVersion = 2;
inline constexpr size_t kWireHeaderSize = 64;
inline constexpr size_t kWireRouteSize = 8;  // u32 slot id + u32 token index
// Values per FP8 scale.
inline constexpr uint32_t kFp8GroupSize = 128;
// The largest finite e4m3 value; a group's max |x| maps to it.
inline constexpr float kFp8E4M3Max = 448.0f;

enum class MessageKind : uint16_t { kDispatch = 1, kCombine = 2 };

enum class WireDType : uint16_t { kBF16 = 1, kFP8E4M3 = 2, kFP32 = 3 };

// "dispatch" / "combine"; "unknown kind" for any other value.
const char* MessageKindName(MessageKind kind);
// "bf16" / "fp8_e4m3" / "fp32"; "unknown dtype" for any other value.
const char* WireDTypeName(WireDType dtype);
// A dispatch dtype as the workers' --dispatch-dtype flag spells it: "bf16", "fp8" or
// "fp32"; InvalidArgument otherwise.
absl::StatusOr<WireDType> ParseWireDType(const std::string& name);

// The header fields a sender chooses. Magic, format version, reserved and payload
// length are not here: the encoder writes them and the decoder checks them.
struct MessageHeader {
  MessageKind kind = MessageKind::kDispatch;
  uint64_t placement_version = 0;
  uint64_t step_id = 0;
  uint32_t layer = 0;
  uint32_t micro_batch = 0;
  uint32_t sender = 0;
  uint32_t token_count = 0;
  uint32_t hidden = 0;
  WireDType dtype = WireDType::kBF16;
  // Token indices below this are rows of prefill-chunk tokens (see the layout).
  uint32_t prefill_rows = 0;

  bool operator==(const MessageHeader&) const = default;
};

// One token of a message: the expert slot it goes to and the row it came from.
struct TokenRoute {
  uint32_t slot = 0;
  uint32_t token_index = 0;

  bool operator==(const TokenRoute&) const = default;
};

// What a receiver accepts. Zero bounds mean "no bound" where stated.
struct DecodeLimits {
  // Token count must be <= this.
  uint32_t max_tokens = 1 << 16;
  // Hidden size must be in [1, max_hidden].
  uint32_t max_hidden = 1 << 16;
  // If nonzero, hidden size must equal it (the model's hidden_size).
  uint32_t expected_hidden = 0;
  // If nonzero, every slot id must be < it (the receiver's slot count). Zero only
  // for tools and fuzzers that check no slots.
  uint32_t num_slots = 0;
  // If nonzero, every token index must be < it (e.g. the sender's batch rows).
  uint32_t token_index_bound = 0;
};

// A decoded message: the header and views into the buffer passed to Decode, which
// must outlive this. The sections are bytes because the buffer has no alignment
// guarantee; the accessors read them with the right width and byte order.
struct DecodedMessage {
  MessageHeader header;
  // [T] x {u32 slot, u32 token index}, little-endian.
  absl::Span<const uint8_t> routes;
  // [T, H] elements of header.dtype, row-major, little-endian.
  absl::Span<const uint8_t> values;
  // fp8 only: [T, ceil(H/128)] f32 scales, row-major, little-endian; else empty.
  absl::Span<const uint8_t> scales;

  TokenRoute route(size_t token) const;
  // Writes the values as FP32 (fp8 dequantized with its scales).
  // out: [T, H] f32, row-major.
  void ValuesToF32(absl::Span<float> out) const;
};

// A decoded dispatch or combine; the kind is in header.kind. Both kinds share one
// layout, so one view type serves both.
using DispatchView = DecodedMessage;
using CombineView = DecodedMessage;

// Checks every field of `bytes` (one whole message) against the format and `limits`.
// kInvalidArgument, naming the field and the values, for anything malformed; never
// reads outside `bytes`.
absl::StatusOr<DecodedMessage> Decode(absl::Span<const uint8_t> bytes,
                                      const DecodeLimits& limits);

// Payload bytes (after the header) a message with these fields must have; fails
// (kInvalidArgument) when the size does not fit in 64 bits or the dtype is unknown.
absl::StatusOr<uint64_t> PayloadLength(uint32_t token_count, uint32_t hidden,
                                       WireDType dtype);

// Encodes a dispatch (header.kind is set to kDispatch) converting `x` to
// header.dtype (bf16 RNE, fp8 with per-128 scales, or fp32 as is).
// routes: [T]. x: [T, H] f32, row-major. The sizes must match the header (a
// programmer error otherwise).
std::vector<uint8_t> EncodeDispatch(const MessageHeader& header,
                                    absl::Span<const TokenRoute> routes,
                                    absl::Span<const float> x);

// Encodes a combine answering a dispatch (header.kind is set to kCombine);
// header.dtype must be bf16 or fp32. routes: [T], the dispatch's, in its order.
// y: [T, H] f32 unweighted expert outputs, row-major.
std::vector<uint8_t> EncodeCombine(const MessageHeader& header,
                                   absl::Span<const TokenRoute> routes,
                                   absl::Span<const float> y);

// Encodes already-converted sections as they appear on the wire (what Decode
// returned reproduces the same bytes). routes: [T] x 8 bytes as in DecodedMessage;
// values, scales: as in DecodedMessage for header.dtype.
std::vector<uint8_t> EncodeRaw(const MessageHeader& header,
                               absl::Span<const uint8_t> routes,
                               absl::Span<const uint8_t> values,
                               absl::Span<const uint8_t> scales);

// --- Scalar conversions (exact, independent of the FPU rounding mode) ---

// bfloat16: the upper half of an IEEE binary32.
float Bf16ToF32(uint16_t bits);
// Round to nearest, ties to even; overflow becomes infinity; NaN stays a quiet NaN
// with its sign.
uint16_t F32ToBf16(float value);

// FP8 e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities; 0x7F
// and 0xFF are NaN; max finite 448; smallest subnormal 2^-9.
float Fp8E4M3ToF32(uint8_t bits);
// Round to nearest, ties to even. Finite values beyond ±448 and ±infinity saturate
// to ±448; NaN becomes 0x7F / 0xFF by sign.
uint8_t F32ToFp8E4M3(float value);

// Quantizes one row with one scale per 128 values. The scale of a group is
// max|x| / 448 over its finite values (1 for a group with no nonzero finite value,
// as engine/dispatch_precision.cc rounds, so both give the same bits for finite
// input); each value becomes F32ToFp8E4M3(x / scale), so ±inf saturates to ±448 x
// scale and NaN stays NaN (0x7F / 0xFF) and reads back as NaN: garbage is visible,
// not silently zero.
//
// Error bound, for a group with max |x| = m among finite values and s = m / 448,
// when s is a normal float: |x - dequant(x)| <= 2^-4 |x| + 2^-10 s (RNE keeps 3
// mantissa bits in the normal range, relative half-ulp 2^-4; the subnormal e4m3
// step is 2^-9, so half of it times s), plus FP32 rounding of the division and
// product (a few ulp of x). In particular the error is at most about 2^-4 m.
// x: [n] f32. q: [n] e4m3 bytes. scales: [ceil(n/128)] f32.
void QuantizeFp8Row(absl::Span<const float> x, absl::Span<uint8_t> q,
                    absl::Span<float> scales);
// value = fp8 x scale. q: [n] e4m3 bytes. scales: [ceil(n/128)]. out: [n] f32.
void DequantizeFp8Row(absl::Span<const uint8_t> q, absl::Span<const float> scales,
                      absl::Span<float> out);

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_WIRE_FORMAT_H_
