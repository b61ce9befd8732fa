// libFuzzer target: ParseSafetensorsHeader on arbitrary bytes must return a status,
// never crash, and every header it accepts must describe tensors inside the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "model/checkpoint/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<yard::model::SafetensorsHeader> header =
      yard::model::ParseSafetensorsHeader(bytes, size);
  if (!header.ok()) return 0;
  if (header->data_start > size) std::abort();
  const uint64_t data_size = size - header->data_start;
  for (const yard::model::SafetensorsEntry& t : header->tensors) {
    if (t.begin > t.end || t.end > data_size) std::abort();
    const uint64_t n = static_cast<uint64_t>(yard::model::NumElements(t.shape)) *
                       static_cast<uint64_t>(yard::model::DTypeSize(t.dtype));
    if (n != t.end - t.begin) std::abort();
  }
  // The same header with a file size claiming more data must still parse.
  (void)yard::model::ParseSafetensorsHeader(bytes, size + 1024);
  return 0;
}
