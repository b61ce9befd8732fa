// libFuzzer target: DecodeUcxAddress must turn any bytes into an address or an
// InvalidArgument, never a crash, and what it accepts must re-encode to the input
// (up to hex case).
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "transport/ucx/ucx_address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string address(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<uint8_t>> raw = yard::transport::DecodeUcxAddress(address);
  if (raw.ok()) {
    std::string lower = address;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (yard::transport::EncodeUcxAddress(raw->data(), raw->size()) != lower) std::abort();
  } else if (raw.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }
  return 0;
}
