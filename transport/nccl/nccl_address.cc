#include "transport/nccl/nccl_address.h"

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::transport {
namespace {

constexpr char kPrefix[] = "nccl:";
constexpr size_t kPrefixSize = sizeof(kPrefix) - 1;
constexpr size_t kMaxHostSize = 253;
constexpr size_t kMaxAddressSize = kPrefixSize + kMaxHostSize + 2 + 1 + 5 + 1 + 4;

bool IsDnsChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-';
}

bool IsIpv6Char(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.';
}

bool ValidDnsHost(const std::string& host) {
  if (host.empty() || host.size() > kMaxHostSize) return false;
  for (char c : host) {
    if (!IsDnsChar(c)) return false;
  }
  return true;
}

bool ValidIpv6Host(const std::string& host) {
  if (host.size() < 2 || host.size() > 45) return false;
  bool has_colon = false;
  for (char c : host) {
    if (!IsIpv6Char(c)) return false;
    has_colon |= c == ':';
  }
  return has_colon;
}

// A decimal in [min, max] with at most `max_digits` digits and no sign; -1 if not.
int64_t ParseDecimal(const std::string& text, size_t max_digits, int64_t min, int64_t max) {
  if (text.empty() || text.size() > max_digits) return -1;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  return value < min || value > max ? -1 : value;
}

}  // namespace

std::string EncodeNcclAddress(const NcclAddress& address) {
  const bool ipv6 = address.host.find(':') != std::string::npos;
  YARD_CHECK(ipv6 ? ValidIpv6Host(address.host) : ValidDnsHost(address.host),
             "NCCL address host must be an IP literal or DNS name");
  YARD_CHECK(address.port != 0, "NCCL address port must be set");
  YARD_CHECK(address.device >= 0 && address.device <= kMaxNcclDevice,
             "NCCL address device out of range");
  return absl::StrCat(kPrefix, ipv6 ? "[" : "", address.host, ipv6 ? "]" : "", ":", address.port,
                      "/", address.device);
}

absl::StatusOr<NcclAddress> DecodeNcclAddress(const std::string& address) {
  if (address.compare(0, kPrefixSize, kPrefix) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL address must start with \"nccl:\" (got ",
                                                   address.size(), " bytes starting \"",
                                                   address.substr(0, 8), "\")"));
  }
  if (address.size() > kMaxAddressSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL address: ", address.size(), " bytes, more than ", kMaxAddressSize));
  }
  const std::string rest = address.substr(kPrefixSize);
  const size_t slash = rest.rfind('/');
  if (slash == std::string::npos) {
    return absl::InvalidArgumentError("NCCL address: no \"/device\" after the port");
  }
  const int64_t device = ParseDecimal(rest.substr(slash + 1), 4, 0, kMaxNcclDevice);
  if (device < 0) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL address: device must be a decimal 0..",
                                                   kMaxNcclDevice, " (got \"",
                                                   rest.substr(slash + 1, 8), "\")"));
  }
  const std::string host_port = rest.substr(0, slash);
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("NCCL address: no \":port\" after the host");
  }
  const int64_t port = ParseDecimal(host_port.substr(colon + 1), 5, 1, 65535);
  if (port < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL address: port must be a decimal 1..65535 (got \"",
                     host_port.substr(colon + 1, 8), "\")"));
  }
  std::string host = host_port.substr(0, colon);
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 2 || host.back() != ']' || !ValidIpv6Host(host.substr(1, host.size() - 2))) {
      return absl::InvalidArgumentError("NCCL address: malformed bracketed IPv6 host");
    }
    host = host.substr(1, host.size() - 2);
  } else if (!ValidDnsHost(host)) {
    return absl::InvalidArgumentError(
        "NCCL address: host must be an IPv4 literal, a DNS name or a bracketed IPv6 literal");
  }
  return NcclAddress{std::move(host), static_cast<uint16_t>(port), static_cast<int>(device)};
}

}  // namespace yard::transport
