// The printable address of an NCCL data-plane endpoint, published through the
// coordinator (cluster.proto) like every data-plane address:
//
//   "nccl:" host ":" port "/" device
//
//   host:   an IPv4 literal, a DNS name ([A-Za-z0-9.-], at most 253 characters) or a
//           bracketed IPv6 literal ("[fe80::1]")
//   port:   decimal 1..65535, the endpoint's TCP control port (see nccl_data_plane.h
//           for why an NCCL endpoint needs one)
//   device: decimal 0..kMaxNcclDevice, the CUDA device its communicators use
//
// e.g. "nccl:10.0.0.7:40123/3". An ncclUniqueId is deliberately not part of the
// address: one id bootstraps exactly one communicator, and an address is static.
// Pure functions, no CUDA or NCCL dependency (tested and fuzzable on any machine).
#ifndef SWITCHYARD_TRANSPORT_NCCL_NCCL_ADDRESS_H_
#define SWITCHYARD_TRANSPORT_NCCL_NCCL_ADDRESS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace yard::transport {

inline constexpr int kMaxNcclDevice = 1023;

struct NcclAddress {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  int device = 0;

  bool operator==(const NcclAddress&) const = default;
};

// `address` must be valid (a host Decode accepts, port > 0, device in range);
// YARD_CHECKs that it is.
std::string EncodeNcclAddress(const NcclAddress& address);

// kInvalidArgument saying what is wrong (prefix, host, port, device). Never crashes,
// whatever the input.
absl::StatusOr<NcclAddress> DecodeNcclAddress(const std::string& address);

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_NCCL_NCCL_ADDRESS_H_
