// Named model configurations that make_model writes and tests use.
#ifndef SWITCHYARD_MODEL_PRESETS_H_
#define SWITCHYARD_MODEL_PRESETS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/config.h"

namespace yard::model {

// Presets:
//   tiny-v2          V2-style (no q_lora, group_limited_greedy, softmax), 3 layers
//   tiny-v3          V3-style (q_lora, noaux_tc, sigmoid, MTP), 3 layers + 1 MTP
//   v2-lite-layers=N DeepSeek-V2-Lite shapes with N decoder layers (benchmarks)
// Both tiny presets use the DeepSeek-V3 tokenizer's vocabulary (129280), and their
// sizes are not multiples of 128 so FP8 block scales have partial blocks.
absl::StatusOr<ModelConfig> PresetConfig(absl::string_view name);

// The preset names, for --help texts.
std::vector<std::string> PresetNames();

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_PRESETS_H_
