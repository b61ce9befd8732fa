// libFuzzer target: Decode on arbitrary bytes must return a status, never crash or
// read out of bounds, and every message it accepts must re-encode to the same bytes
// (so no header bit is ignored and no section is mis-sized).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "transport/wire_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> bytes(data, size);
  yard::transport::DecodeLimits limits;
  limits.max_tokens = 1 << 12;
  limits.max_hidden = 1 << 14;
  limits.num_slots = 256;
  absl::StatusOr<yard::transport::DecodedMessage> m =
      yard::transport::Decode(bytes, limits);
  if (!m.ok()) {
    if (m.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const std::vector<uint8_t> again =
      yard::transport::EncodeRaw(m->header, m->routes, m->values, m->scales);
  if (again.size() != size) std::abort();
  for (size_t i = 0; i < size; ++i) {
    if (again[i] != data[i]) std::abort();
  }
  std::vector<float> values(static_cast<size_t>(m->header.token_count) * m->header.hidden);
  m->ValuesToF32(absl::MakeSpan(values));
  return 0;
}
