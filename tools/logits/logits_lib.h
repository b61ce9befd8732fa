// The pieces of the `logits` tool, as a library so tests can drive them: parse a
// token list, run the FP32 reference forward over a checkpoint, write float32 files.
#ifndef SWITCHYARD_TOOLS_LOGITS_LOGITS_LIB_H_
#define SWITCHYARD_TOOLS_LOGITS_LOGITS_LIB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace yard::tools {

// "0,17,42" -> {0, 17, 42}. Spaces around an id are allowed; an empty list, an empty
// item, a non-integer or a value outside [0, 2^31) is InvalidArgument naming the item.
absl::StatusOr<std::vector<int32_t>> ParseTokenList(absl::string_view text);

// Opens the checkpoint in `model_dir` (config.json + safetensors), validates it,
// loads the reference model and returns the logits of the last token of `tokens`.
// result: [vocab_size] fp32.
absl::StatusOr<std::vector<float>> ReferenceLastLogits(const std::string& model_dir,
                                                       absl::Span<const int32_t> tokens);

// The same with the fast CPU engine (engine/fast_model.h): the prompt in one prefill
// chunk; `deterministic` as FastModelOptions::deterministic.
absl::StatusOr<std::vector<float>> FastLastLogits(const std::string& model_dir,
                                                  absl::Span<const int32_t> tokens,
                                                  bool deterministic);

// Writes `values` as raw little-endian IEEE float32, nothing else, replacing `path`.
absl::Status WriteFloat32File(const std::string& path, absl::Span<const float> values);

}  // namespace yard::tools

#endif  // SWITCHYARD_TOOLS_LOGITS_LOGITS_LIB_H_
