#include "transport/wire_format.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::transport {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the wire is little-endian and this code reads it in place");

// Field offsets of the header; see the table in wire_format.h.
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 4;
constexpr size_t kOffKind = 6;
constexpr size_t kOffPlacement = 8;
constexpr size_t kOffStep = 16;
constexpr size_t kOffLayer = 24;
constexpr size_t kOffMicroBatch = 28;
constexpr size_t kOffSender = 32;
constexpr size_t kOffTokens = 36;
constexpr size_t kOffHidden = 40;
constexpr size_t kOffDType = 44;
constexpr size_t kOffReserved = 46;
constexpr size_t kOffPayload = 48;
constexpr size_t kOffPrefillRows = 56;
constexpr size_t kOffReserved2 = 60;
static_assert(kOffReserved2 + 4 == kWireHeaderSize);

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

bool KnownDType(uint16_t d) { return d >= 1 && d <= 3; }

uint64_t ScaleGroups(uint32_t hidden) {
  return (static_cast<uint64_t>(hidden) + kFp8GroupSize - 1) / kFp8GroupSize;
}

// Bytes of the values section (without scales) per element.
uint64_t ElementSize(WireDType dtype) {
  switch (dtype) {
    case WireDType::kBF16:
      return 2;
    case WireDType::kFP8E4M3:
      return 1;
    case WireDType::kFP32:
      return 4;
  }
  return 0;
}

bool DTypeAllowed(MessageKind kind, WireDType dtype) {
  return kind == MessageKind::kDispatch || dtype != WireDType::kFP8E4M3;
}

absl::Status Invalid(const char* what, const std::string& detail) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", detail));
}

}  // namespace

const char* MessageKindName(MessageKind kind) {
  switch (kind) {
    case MessageKind::kDispatch:
      return "dispatch";
    case MessageKind::kCombine:
      return "combine";
  }
  return "unknown kind";
}

absl::StatusOr<WireDType> ParseWireDType(const std::string& name) {
  if (name == "bf16") return WireDType::kBF16;
  if (name == "fp8") return WireDType::kFP8E4M3;
  if (name == "fp32") return WireDType::kFP32;
  return absl::InvalidArgumentError("dispatch dtype '" + name + "': expected bf16, fp8 or fp32");
}

const char* WireDTypeName(WireDType dtype) {
  switch (dtype) {
    case WireDType::kBF16:
      return "bf16";
    case WireDType::kFP8E4M3:
      return "fp8_e4m3";
    case WireDType::kFP32:
      return "fp32";
  }
  return "unknown dtype";
}

// --- Scalar conversions ---

float Bf16ToF32(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t F32ToBf16(float value) {
  const uint32_t b = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((b >> 16) | 0x0040);
  // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; a carry
  // into the exponent is the correct next binade (or infinity).
  const uint32_t rounded = b + 0x7FFF + ((b >> 16) & 1);
  return static_cast<uint16_t>(rounded >> 16);
}

float Fp8E4M3ToF32(uint8_t bits) {
  const bool negative = (bits & 0x80) != 0;
  const int exponent = (bits >> 3) & 0xF;
  const int mantissa = bits & 0x7;
  float magnitude;
  if (exponent == 0xF && mantissa == 0x7) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  }
  return negative ? -magnitude : magnitude;
}

uint8_t F32ToFp8E4M3(float value) {
  const uint32_t b = std::bit_cast<uint32_t>(value);
  const uint8_t sign = static_cast<uint8_t>((b >> 24) & 0x80);
  if (std::isnan(value)) return sign | 0x7F;
  const uint32_t abs_bits = b & 0x7FFFFFFF;
  const float abs = std::bit_cast<float>(abs_bits);
  if (abs >= kFp8E4M3Max) return sign | 0x7E;  // saturate (infinity included)
  const int f32_exponent = static_cast<int>(abs_bits >> 23) - 127;
  if (f32_exponent >= -6) {
    // Normal e4m3: keep the top 3 of 23 mantissa bits, round the other 20.
    uint32_t exponent = static_cast<uint32_t>(f32_exponent + 7);
    uint32_t kept = (abs_bits & 0x7FFFFF) >> 20;
    const uint32_t rest = abs_bits & 0xFFFFF;
    if (rest > 0x80000 || (rest == 0x80000 && (kept & 1) != 0)) ++kept;
    if (kept == 8) {
      kept = 0;
      ++exponent;
    }
    const uint32_t code = (exponent << 3) | kept;
    return sign | static_cast<uint8_t>(code > 0x7E ? 0x7E : code);
  }
  // Subnormal e4m3: multiples of 2^-9. abs * 512 is exact and < 8, so the integer
  // and fractional parts are exact too. k == 8 is the code of 2^-6, the smallest
  // normal, so it needs no special case.
  const float scaled = abs * 512.0f;
  uint32_t k = static_cast<uint32_t>(scaled);
  const float fraction = scaled - static_cast<float>(k);
  if (fraction > 0.5f || (fraction == 0.5f && (k & 1) != 0)) ++k;
  return sign | static_cast<uint8_t>(k);
}

void QuantizeFp8Row(absl::Span<const float> x, absl::Span<uint8_t> q,
                    absl::Span<float> scales) {
  const size_t n = x.size();
  YARD_CHECK(q.size() == n, "q must have one byte per value");
  YARD_CHECK(scales.size() == (n + kFp8GroupSize - 1) / kFp8GroupSize,
             "one scale per 128 values");
  for (size_t g = 0; g < scales.size(); ++g) {
    const size_t begin = g * kFp8GroupSize;
    const size_t end = std::min(n, begin + kFp8GroupSize);
    float max_abs = 0.0f;
    for (size_t i = begin; i < end; ++i) {
      if (std::isfinite(x[i])) max_abs = std::max(max_abs, std::fabs(x[i]));
    }
    // 1 for a group of zeros, as engine/dispatch_precision.cc rounds, so that both
    // give the same bits.
    const float scale = max_abs > 0.0f ? max_abs / kFp8E4M3Max : 1.0f;
    scales[g] = scale;
    for (size_t i = begin; i < end; ++i) {
      // NaN stays NaN; ±inf (and anything past ±448 by rounding) saturates.
      q[i] = F32ToFp8E4M3(x[i] / scale);
    }
  }
}

void DequantizeFp8Row(absl::Span<const uint8_t> q, absl::Span<const float> scales,
                      absl::Span<float> out) {
  const size_t n = q.size();
  YARD_CHECK(out.size() == n, "out must have one float per value");
  YARD_CHECK(scales.size() == (n + kFp8GroupSize - 1) / kFp8GroupSize,
             "one scale per 128 values");
  for (size_t i = 0; i < n; ++i) {
    out[i] = Fp8E4M3ToF32(q[i]) * scales[i / kFp8GroupSize];
  }
}

// --- Sizes ---

absl::StatusOr<uint64_t> PayloadLength(uint32_t token_count, uint32_t hidden,
                                       WireDType dtype) {
  if (!KnownDType(static_cast<uint16_t>(dtype))) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown dtype ", static_cast<uint16_t>(dtype)));
  }
  // T * H < 2^64 always (both are u32); the byte counts may not be.
  const uint64_t elements = static_cast<uint64_t>(token_count) * hidden;
  uint64_t values = 0;
  uint64_t scales = 0;
  uint64_t total = 0;
  bool overflow = __builtin_mul_overflow(elements, ElementSize(dtype), &values);
  if (dtype == WireDType::kFP8E4M3) {
    overflow |= __builtin_mul_overflow(static_cast<uint64_t>(token_count),
                                       ScaleGroups(hidden) * 4, &scales);
  }
  overflow |= __builtin_add_overflow(values, scales, &total);
  overflow |= __builtin_add_overflow(
      total, static_cast<uint64_t>(token_count) * kWireRouteSize, &total);
  if (overflow) {
    return absl::InvalidArgumentError(
                   absl::StrCat("payload size of ", token_count, " tokens × ", hidden,
                                " hidden ", WireDTypeName(dtype),
                                " overflows 64 bits"));
  }
  return total;
}

// --- Decoding ---

TokenRoute DecodedMessage::route(size_t token) const {
  YARD_CHECK(token < header.token_count, "token out of range");
  const uint8_t* p = routes.data() + token * kWireRouteSize;
  return TokenRoute{Load<uint32_t>(p), Load<uint32_t>(p + 4)};
}

void DecodedMessage::ValuesToF32(absl::Span<float> out) const {
  const size_t hidden = header.hidden;
  const size_t count = static_cast<size_t>(header.token_count) * hidden;
  YARD_CHECK(out.size() == count, "out must be [tokens, hidden]");
  switch (header.dtype) {
    case WireDType::kBF16:
      for (size_t i = 0; i < count; ++i) {
        out[i] = Bf16ToF32(Load<uint16_t>(values.data() + 2 * i));
      }
      return;
    case WireDType::kFP32:
      if (count > 0) std::memcpy(out.data(), values.data(), count * 4);
      return;
    case WireDType::kFP8E4M3: {
      const size_t groups = ScaleGroups(header.hidden);
      std::vector<float> row_scales(groups);
      for (size_t t = 0; t < header.token_count; ++t) {
        std::memcpy(row_scales.data(), scales.data() + t * groups * 4, groups * 4);
        DequantizeFp8Row(values.subspan(t * hidden, hidden), row_scales,
                         out.subspan(t * hidden, hidden));
      }
      return;
    }
  }
}

absl::StatusOr<DecodedMessage> Decode(absl::Span<const uint8_t> bytes,
                                      const DecodeLimits& limits) {
  if (bytes.size() < kWireHeaderSize) {
    return Invalid("message", absl::StrCat("truncated header: ", bytes.size(),
                                           " bytes, a header is ", kWireHeaderSize));
  }
  const uint8_t* h = bytes.data();
  const uint32_t magic = Load<uint32_t>(h + kOffMagic);
  if (magic != kWireMagic) {
    return Invalid("message", absl::StrCat("bad magic 0x", absl::Hex(magic),
                                           ", expected 0x", absl::Hex(kWireMagic),
                                           " (\"YDP1\")"));
  }
  const uint16_t version = Load<uint16_t>(h + kOffVersion);
  if (version != kWireFormatVersion) {
    return Invalid("message", absl::StrCat("format version ", version,
                                           ", this build reads version ",
                                           kWireFormatVersion));
  }
  const uint16_t kind = Load<uint16_t>(h + kOffKind);
  if (kind != static_cast<uint16_t>(MessageKind::kDispatch) &&
      kind != static_cast<uint16_t>(MessageKind::kCombine)) {
    return Invalid("message",
                   absl::StrCat("kind ", kind, ", expected 1 (dispatch) or 2 (combine)"));
  }
  DecodedMessage m;
  MessageHeader& hd = m.header;
  hd.kind = static_cast<MessageKind>(kind);
  const char* what = MessageKindName(hd.kind);
  hd.placement_version = Load<uint64_t>(h + kOffPlacement);
  hd.step_id = Load<uint64_t>(h + kOffStep);
  hd.layer = Load<uint32_t>(h + kOffLayer);
  hd.micro_batch = Load<uint32_t>(h + kOffMicroBatch);
  hd.sender = Load<uint32_t>(h + kOffSender);
  hd.token_count = Load<uint32_t>(h + kOffTokens);
  hd.hidden = Load<uint32_t>(h + kOffHidden);
  const uint16_t dtype = Load<uint16_t>(h + kOffDType);
  const uint16_t reserved = Load<uint16_t>(h + kOffReserved);
  const uint64_t payload_length = Load<uint64_t>(h + kOffPayload);
  hd.prefill_rows = Load<uint32_t>(h + kOffPrefillRows);
  const uint32_t reserved2 = Load<uint32_t>(h + kOffReserved2);

  if (!KnownDType(dtype)) {
    return Invalid(what, absl::StrCat("dtype ", dtype,
                                      ", expected 1 (bf16), 2 (fp8_e4m3) or 3 (fp32)"));
  }
  hd.dtype = static_cast<WireDType>(dtype);
  if (!DTypeAllowed(hd.kind, hd.dtype)) {
    return Invalid(what, absl::StrCat("dtype ", WireDTypeName(hd.dtype),
                                      " is not allowed (bf16 or fp32 only)"));
  }
  if (reserved != 0 || reserved2 != 0) {
    return Invalid(what, absl::StrCat("reserved field is ", reserved != 0 ? reserved : reserved2,
                                      ", must be 0"));
  }
  if (hd.token_count > limits.max_tokens) {
    return Invalid(what, absl::StrCat("token count ", hd.token_count,
                                      " exceeds the limit ", limits.max_tokens));
  }
  if (hd.hidden == 0 || hd.hidden > limits.max_hidden) {
    return Invalid(what, absl::StrCat("hidden size ", hd.hidden, " outside [1, ",
                                      limits.max_hidden, "]"));
  }
  if (limits.expected_hidden != 0 && hd.hidden != limits.expected_hidden) {
    return Invalid(what, absl::StrCat("hidden size ", hd.hidden, ", expected ",
                                      limits.expected_hidden));
  }
  absl::StatusOr<uint64_t> expected = PayloadLength(hd.token_count, hd.hidden, hd.dtype);
  if (!expected.ok()) {
    return Invalid(what, std::string(expected.status().message()));
  }
  if (payload_length != *expected) {
    return Invalid(what, absl::StrCat("payload length ", payload_length, ", expected ",
                                      *expected, " for ", hd.token_count, " tokens × ",
                                      hd.hidden, " hidden ", WireDTypeName(hd.dtype)));
  }
  const uint64_t after_header = bytes.size() - kWireHeaderSize;
  if (after_header < payload_length) {
    return Invalid(what, absl::StrCat("truncated payload: ", after_header,
                                      " bytes after the header, payload length ",
                                      payload_length));
  }
  if (after_header > payload_length) {
    return Invalid(what, absl::StrCat(after_header - payload_length,
                                      " trailing bytes after the payload length ",
                                      payload_length));
  }

  // From here every size is bounded by the buffer, so size_t arithmetic is safe.
  const size_t tokens = hd.token_count;
  const size_t route_bytes = tokens * kWireRouteSize;
  const size_t value_bytes = tokens * hd.hidden * ElementSize(hd.dtype);
  m.routes = bytes.subspan(kWireHeaderSize, route_bytes);
  m.values = bytes.subspan(kWireHeaderSize + route_bytes, value_bytes);
  m.scales = bytes.subspan(kWireHeaderSize + route_bytes + value_bytes);

  for (size_t t = 0; t < tokens; ++t) {
    const TokenRoute r = m.route(t);
    if (limits.num_slots != 0 && r.slot >= limits.num_slots) {
      return Invalid(what, absl::StrCat("token ", t, ": slot id ", r.slot,
                                        " out of range, this worker has ",
                                        limits.num_slots, " slots"));
    }
    if (limits.token_index_bound != 0 && r.token_index >= limits.token_index_bound) {
      return Invalid(what, absl::StrCat("token ", t, ": token index ", r.token_index,
                                        " out of range [0, ", limits.token_index_bound,
                                        ")"));
    }
  }
  if (hd.dtype == WireDType::kFP8E4M3) {
    const size_t groups = ScaleGroups(hd.hidden);
    for (size_t i = 0; i < tokens * groups; ++i) {
      const float s = Load<float>(m.scales.data() + 4 * i);
      if (!std::isfinite(s) || s < 0.0f) {
        return Invalid(what, absl::StrCat("token ", i / groups, " group ", i % groups,
                                          ": fp8 scale ", s,
                                          " is not finite and >= 0"));
      }
    }
  }
  return m;
}

// --- Encoding ---

std::vector<uint8_t> EncodeRaw(const MessageHeader& header,
                               absl::Span<const uint8_t> routes,
                               absl::Span<const uint8_t> values,
                               absl::Span<const uint8_t> scales) {
  absl::StatusOr<uint64_t> payload =
      PayloadLength(header.token_count, header.hidden, header.dtype);
  YARD_CHECK(payload.ok(), "message size overflows");
  const uint64_t tokens = header.token_count;
  YARD_CHECK(routes.size() == tokens * kWireRouteSize, "routes must be [tokens] x 8");
  YARD_CHECK(values.size() == tokens * header.hidden * ElementSize(header.dtype),
             "values must be [tokens, hidden] of the dtype");
  YARD_CHECK(scales.size() == (header.dtype == WireDType::kFP8E4M3
                                   ? tokens * ScaleGroups(header.hidden) * 4
                                   : 0),
             "scales must be [tokens, ceil(hidden/128)] f32 for fp8, else empty");
  YARD_CHECK(routes.size() + values.size() + scales.size() == *payload,
             "sections must add up to the payload length");

  std::vector<uint8_t> out(kWireHeaderSize + *payload);
  uint8_t* h = out.data();
  Store<uint32_t>(h + kOffMagic, kWireMagic);
  Store<uint16_t>(h + kOffVersion, kWireFormatVersion);
  Store<uint16_t>(h + kOffKind, static_cast<uint16_t>(header.kind));
  Store<uint64_t>(h + kOffPlacement, header.placement_version);
  Store<uint64_t>(h + kOffStep, header.step_id);
  Store<uint32_t>(h + kOffLayer, header.layer);
  Store<uint32_t>(h + kOffMicroBatch, header.micro_batch);
  Store<uint32_t>(h + kOffSender, header.sender);
  Store<uint32_t>(h + kOffTokens, header.token_count);
  Store<uint32_t>(h + kOffHidden, header.hidden);
  Store<uint16_t>(h + kOffDType, static_cast<uint16_t>(header.dtype));
  Store<uint16_t>(h + kOffReserved, 0);
  Store<uint64_t>(h + kOffPayload, *payload);
  Store<uint32_t>(h + kOffPrefillRows, header.prefill_rows);
  Store<uint32_t>(h + kOffReserved2, 0);
  uint8_t* p = h + kWireHeaderSize;
  if (!routes.empty()) std::memcpy(p, routes.data(), routes.size());
  p += routes.size();
  if (!values.empty()) std::memcpy(p, values.data(), values.size());
  p += values.size();
  if (!scales.empty()) std::memcpy(p, scales.data(), scales.size());
  return out;
}

namespace {

std::vector<uint8_t> EncodeFromF32(const MessageHeader& header,
                                   absl::Span<const TokenRoute> routes,
                                   absl::Span<const float> x) {
  const size_t tokens = header.token_count;
  const size_t hidden = header.hidden;
  YARD_CHECK(routes.size() == tokens, "one route per token");
  YARD_CHECK(x.size() == tokens * hidden, "x must be [tokens, hidden]");
  std::vector<uint8_t> route_bytes(tokens * kWireRouteSize);
  for (size_t t = 0; t < tokens; ++t) {
    Store<uint32_t>(route_bytes.data() + t * kWireRouteSize, routes[t].slot);
    Store<uint32_t>(route_bytes.data() + t * kWireRouteSize + 4, routes[t].token_index);
  }
  std::vector<uint8_t> values(tokens * hidden * ElementSize(header.dtype));
  std::vector<uint8_t> scale_bytes;
  switch (header.dtype) {
    case WireDType::kBF16:
      for (size_t i = 0; i < x.size(); ++i) {
        Store<uint16_t>(values.data() + 2 * i, F32ToBf16(x[i]));
      }
      break;
    case WireDType::kFP32:
      if (!x.empty()) std::memcpy(values.data(), x.data(), x.size() * 4);
      break;
    case WireDType::kFP8E4M3: {
      const size_t groups = ScaleGroups(header.hidden);
      std::vector<float> scales(tokens * groups);
      for (size_t t = 0; t < tokens; ++t) {
        QuantizeFp8Row(x.subspan(t * hidden, hidden),
                       absl::MakeSpan(values).subspan(t * hidden, hidden),
                       absl::MakeSpan(scales).subspan(t * groups, groups));
      }
      scale_bytes.resize(scales.size() * 4);
      if (!scales.empty()) std::memcpy(scale_bytes.data(), scales.data(), scale_bytes.size());
      break;
    }
  }
  return EncodeRaw(header, route_bytes, values, scale_bytes);
}

}  // namespace

std::vector<uint8_t> EncodeDispatch(const MessageHeader& header,
                                    absl::Span<const TokenRoute> routes,
                                    absl::Span<const float> x) {
  MessageHeader h = header;
  h.kind = MessageKind::kDispatch;
  return EncodeFromF32(h, routes, x);
}

std::vector<uint8_t> EncodeCombine(const MessageHeader& header,
                                   absl::Span<const TokenRoute> routes,
                                   absl::Span<const float> y) {
  MessageHeader h = header;
  h.kind = MessageKind::kCombine;
  YARD_CHECK(DTypeAllowed(h.kind, h.dtype), "a combine carries bf16 or fp32");
  return EncodeFromF32(h, routes, y);
}

}  // namespace yard::transport
