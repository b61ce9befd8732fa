// Random-weight checkpoints of any DeepSeek-V2/V3 config, in the exact Hugging Face
// layout of the released models (config.json, safetensors shards + index, FP8 block
// scales), for tests and benchmarks that need real shapes but no real weights.
#ifndef SWITCHYARD_TOOLS_MAKE_MODEL_RANDOM_CHECKPOINT_H_
#define SWITCHYARD_TOOLS_MAKE_MODEL_RANDOM_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/checkpoint/progress.h"
#include "model/config.h"
#include "model/weight_layout.h"

namespace yard::model {

enum class RandomWeightDType {
  kBF16,  // every weight BF16 (e_score_correction_bias F32)
  kFP8,   // linear weights F8_E4M3 + F32 128x128 block scale_inv, the rest as kBF16
};

inline constexpr uint64_t kDefaultRandomSeed = 0x5EED5EED;

struct RandomCheckpointOptions {
  RandomWeightDType dtype = RandomWeightDType::kBF16;
  // Same seed, config and dtype: byte-identical files, however they are sharded.
  uint64_t seed = kDefaultRandomSeed;
  // A checkpoint larger than this is split into model-0000i-of-0000N.safetensors
  // shards plus model.safetensors.index.json; otherwise one model.safetensors. A
  // tensor (with its scale) is never split, so a shard may exceed this by one tensor.
  uint64_t max_shard_bytes = 5'000'000'000;
  // Directory whose tokenizer.json and tokenizer_config.json are copied next to the
  // weights, so the checkpoint is self-contained; empty: no tokenizer.
  std::string tokenizer_dir;
  // An existing non-empty `dir` is refused unless this is set; then the checkpoint
  // files a previous run may have left (config.json, model*.safetensors, the index,
  // tokenizer files) are removed first and nothing else is touched.
  bool overwrite = false;
  ProgressMode progress = ProgressMode::kAuto;
};

// Writes config.json (ModelConfigToJson, with quantization_config for kFP8) and every
// tensor of ExpectedWeights(config) into `dir` (created if missing), streaming the data
// so memory stays small whatever the model size. Values: RandomWeightValues below;
// FP8 weights are quantized per block as in DeepSeek-V3: scale = amax / 448,
// fp8 = round(w / scale), and `<name>_scale_inv` stores scale (value = fp8 * scale).
absl::Status WriteRandomCheckpoint(const ModelConfig& config, const std::string& dir,
                                   const RandomCheckpointOptions& options);

// The FP32 values tensor `spec` gets before conversion to its stored dtype: row-major,
// NumElements(spec.shape) of them, from a generator seeded by (seed, spec.name) only.
// Linear weights and embeddings ~ N(0, 0.02); 1-D norm weights ~ 1 + N(0, 0.02);
// always_fp32 tensors (e_score_correction_bias) ~ N(0, 0.1).
std::vector<float> RandomWeightValues(const WeightSpec& spec, uint64_t seed);

}  // namespace yard::model

#endif  // SWITCHYARD_TOOLS_MAKE_MODEL_RANDOM_CHECKPOINT_H_
