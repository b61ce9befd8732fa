// Frames on the TCP control connection that each NCCL peer pair keeps beside its
// communicator (nccl_data_plane.h says why). All integers little-endian; every frame
// starts with a 16-byte header:
//
//   [magic u32 "YNCL"][version u16][type u16][value u64]
//
//   kHello    rank 0 -> rank 1, first frame, followed by the 128-byte ncclUniqueId of
//             the pair's communicator; value = sender PeerId << 32 | receiver PeerId
//   kData     rank 0 -> rank 1: "my next NCCL op is ncclSend of `value` bytes; post the
//             matching ncclRecv next"
//   kRequest  rank 1 -> rank 0: "I have a message of `value` bytes for you"
//   kGo       rank 0 -> rank 1, value 0: "I posted the ncclRecv for your oldest
//             kRequest; post your ncclSend next"
//
// Pure functions, no CUDA or NCCL dependency.
#ifndef SWITCHYARD_TRANSPORT_NCCL_NCCL_CONTROL_H_
#define SWITCHYARD_TRANSPORT_NCCL_NCCL_CONTROL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "transport/data_plane.h"

namespace yard::transport {

inline constexpr uint32_t kNcclControlMagic = 0x4C434E59;  // "YNCL" in memory
inline constexpr uint16_t kNcclControlVersion = 1;
inline constexpr size_t kNcclControlHeaderBytes = 16;
// NCCL_UNIQUE_ID_BYTES; nccl_data_plane.cc static_asserts that they agree.
inline constexpr size_t kNcclUniqueIdBytes = 128;

enum class ControlType : uint16_t { kHello = 1, kData = 2, kRequest = 3, kGo = 4 };

struct ControlFrame {
  ControlType type = ControlType::kGo;
  uint64_t value = 0;
};

struct HelloBody {
  PeerId from = 0;
  PeerId to = 0;
  std::array<uint8_t, kNcclUniqueIdBytes> unique_id{};
};

// Appends one header (a kHello also needs AppendHello's body; use AppendHello).
void AppendControlFrame(const ControlFrame& frame, std::string& out);
// Appends a whole kHello frame: header and unique id.
void AppendHello(const HelloBody& hello, std::string& out);

// Decodes the header at `data` (kNcclControlHeaderBytes readable bytes).
// kInvalidArgument for a wrong magic, version or type, or a kGo with a value.
absl::StatusOr<ControlFrame> DecodeControlHeader(const uint8_t* data);
// The bytes that follow a header of `type` (kNcclUniqueIdBytes for kHello, else 0).
size_t ControlBodyBytes(ControlType type);
// The hello carried by `header` (a decoded kHello) and the body bytes after it.
HelloBody DecodeHello(const ControlFrame& header, const uint8_t* body);

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_NCCL_NCCL_CONTROL_H_
