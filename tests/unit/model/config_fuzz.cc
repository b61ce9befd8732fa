// libFuzzer target: ParseModelConfig must turn any bytes into a config or an
// InvalidArgument, never a crash, and what it accepts must survive a JSON round trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<yard::model::ModelConfig> config = yard::model::ParseModelConfig(text);
  if (config.ok()) {
    absl::StatusOr<yard::model::ModelConfig> again =
        yard::model::ParseModelConfig(yard::model::ModelConfigToJson(*config));
    if (!again.ok()) std::abort();
  }
  return 0;
}
