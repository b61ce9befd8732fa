#include "transport/nccl/nccl_control.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace yard::transport {
namespace {

void Put(uint64_t value, size_t bytes, std::string& out) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t Get(const uint8_t* data, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(data[i]) << (8 * i);
  return value;
}

}  // namespace

void AppendControlFrame(const ControlFrame& frame, std::string& out) {
  Put(kNcclControlMagic, 4, out);
  Put(kNcclControlVersion, 2, out);
  Put(static_cast<uint16_t>(frame.type), 2, out);
  Put(frame.value, 8, out);
}

void AppendHello(const HelloBody& hello, std::string& out) {
  AppendControlFrame(
      ControlFrame{ControlType::kHello, static_cast<uint64_t>(hello.from) << 32 | hello.to}, out);
  out.append(reinterpret_cast<const char*>(hello.unique_id.data()), hello.unique_id.size());
}

absl::StatusOr<ControlFrame> DecodeControlHeader(const uint8_t* data) {
  const uint64_t magic = Get(data, 4);
  if (magic != kNcclControlMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL control frame: bad magic 0x", absl::Hex(magic)));
  }
  const uint64_t version = Get(data + 4, 2);
  if (version != kNcclControlVersion) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL control frame: version ", version,
                                                   ", this build speaks ", kNcclControlVersion));
  }
  const uint64_t type = Get(data + 6, 2);
  if (type < static_cast<uint16_t>(ControlType::kHello) ||
      type > static_cast<uint16_t>(ControlType::kGo)) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL control frame: unknown type ", type));
  }
  ControlFrame frame{static_cast<ControlType>(type), Get(data + 8, 8)};
  if (frame.type == ControlType::kGo && frame.value != 0) {
    return absl::InvalidArgumentError("NCCL control frame: kGo carries a value");
  }
  return frame;
}

size_t ControlBodyBytes(ControlType type) {
  return type == ControlType::kHello ? kNcclUniqueIdBytes : 0;
}

HelloBody DecodeHello(const ControlFrame& header, const uint8_t* body) {
  HelloBody hello;
  hello.from = static_cast<PeerId>(header.value >> 32);
  hello.to = static_cast<PeerId>(header.value & 0xffffffffu);
  std::memcpy(hello.unique_id.data(), body, kNcclUniqueIdBytes);
  return hello;
}

}  // namespace yard::transport
