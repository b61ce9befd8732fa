// The printable form of a UCP worker address, so that it can travel in a protobuf
// string field through the coordinator (cluster.proto) and be logged.
//
//   "ucx:" + lowercase hex of [length: u32 LE][worker address bytes][FNV-1a 64: u64 LE]
//
// The length and checksum exist because UCX itself trusts the bytes it unpacks: a
// truncated or corrupted address must be rejected here, as kInvalidArgument, before it
// reaches ucp_ep_create. Pure functions, no UCX dependency (so they can be fuzzed).
#ifndef SWITCHYARD_TRANSPORT_UCX_UCX_ADDRESS_H_
#define SWITCHYARD_TRANSPORT_UCX_UCX_ADDRESS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace yard::transport {

// Worker addresses above this size are refused by the decoder (real ones are a few
// hundred bytes; this bounds what a malformed address can make us allocate).
inline constexpr size_t kMaxUcxAddressBytes = 64 * 1024;

// raw: the bytes ucp_worker_get_address returned.
std::string EncodeUcxAddress(const void* raw, size_t size);

// The raw worker address inside `address`, or kInvalidArgument saying what is wrong
// (prefix, hex, length, checksum). Never crashes, whatever the input.
absl::StatusOr<std::vector<uint8_t>> DecodeUcxAddress(const std::string& address);

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_UCX_UCX_ADDRESS_H_
