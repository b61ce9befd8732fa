#include "transport/ucx/ucx_address.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace yard::transport {
namespace {

constexpr char kPrefix[] = "ucx:";
constexpr size_t kPrefixSize = sizeof(kPrefix) - 1;
constexpr size_t kLengthBytes = 4;
constexpr size_t kChecksumBytes = 8;

uint64_t Fnv1a64(const uint8_t* data, size_t size) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 1099511628211ull;
  }
  return h;
}

void PutLittleEndian(uint64_t value, size_t bytes, std::vector<uint8_t>& out) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint64_t GetLittleEndian(const uint8_t* data, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(data[i]) << (8 * i);
  return value;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string EncodeUcxAddress(const void* raw, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(raw);
  std::vector<uint8_t> framed;
  framed.reserve(kLengthBytes + size + kChecksumBytes);
  PutLittleEndian(size, kLengthBytes, framed);
  framed.insert(framed.end(), bytes, bytes + size);
  PutLittleEndian(Fnv1a64(bytes, size), kChecksumBytes, framed);

  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(kPrefix);
  out.reserve(kPrefixSize + 2 * framed.size());
  for (uint8_t b : framed) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> DecodeUcxAddress(const std::string& address) {
  if (address.compare(0, kPrefixSize, kPrefix) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("UCX address must start with \"ucx:\" (got ", address.size(),
                     " bytes starting \"", address.substr(0, 8), "\")"));
  }
  const size_t hex_size = address.size() - kPrefixSize;
  if (hex_size % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("UCX address: odd number of hex digits (", hex_size, ")"));
  }
  const size_t framed_size = hex_size / 2;
  if (framed_size < kLengthBytes + 1 + kChecksumBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("UCX address: ", framed_size, " bytes is too short to hold a worker address"));
  }
  if (framed_size > kLengthBytes + kMaxUcxAddressBytes + kChecksumBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("UCX address: ", framed_size, " bytes, more than the ",
                     kMaxUcxAddressBytes, " allowed"));
  }
  std::vector<uint8_t> framed(framed_size);
  for (size_t i = 0; i < framed_size; ++i) {
    const int hi = HexValue(address[kPrefixSize + 2 * i]);
    const int lo = HexValue(address[kPrefixSize + 2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("UCX address: not a hex digit at offset ", kPrefixSize + 2 * i));
    }
    framed[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  const uint64_t length = GetLittleEndian(framed.data(), kLengthBytes);
  if (length != framed_size - kLengthBytes - kChecksumBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("UCX address: says ", length, " address bytes but carries ",
                     framed_size - kLengthBytes - kChecksumBytes, " (truncated?)"));
  }
  const uint8_t* body = framed.data() + kLengthBytes;
  const uint64_t checksum = GetLittleEndian(body + length, kChecksumBytes);
  if (checksum != Fnv1a64(body, length)) {
    return absl::InvalidArgumentError("UCX address: checksum mismatch (corrupted)");
  }
  return std::vector<uint8_t>(body, body + length);
}

}  // namespace yard::transport
