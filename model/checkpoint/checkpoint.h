// A Hugging Face checkpoint directory: `model.safetensors`, or shards listed by
// `model.safetensors.index.json`, memory-mapped and checked against a ModelConfig.
#ifndef SWITCHYARD_MODEL_CHECKPOINT_CHECKPOINT_H_
#define SWITCHYARD_MODEL_CHECKPOINT_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/checkpoint/progress.h"
#include "model/checkpoint/safetensors.h"
#include "model/config.h"
#include "model/weight_source.h"

namespace yard::model {

inline constexpr absl::string_view kSingleFileName = "model.safetensors";
inline constexpr absl::string_view kIndexFileName = "model.safetensors.index.json";

struct CheckpointOptions {
  // Progress line on stderr while opening shards and validating; kAuto shows it only
  // when stderr is a terminal.
  ProgressMode progress = ProgressMode::kAuto;
  // Block size of FP8 weight scales, used by ReadFp32 to dequantize. Defaults to the
  // released DeepSeek-V3's 128x128; pass `*config.quantization` when it is set.
  Fp8Quantization fp8_blocks;
};

// What Validate found that is allowed but worth a warning.
struct ValidationReport {
  // Tensors in the files that ExpectedWeights() does not name (with their scales).
  // Released DeepSeek checkpoints have none; an engine simply never reads them.
  std::vector<std::string> unexpected_tensors;
  int64_t tensors_checked = 0;
};

// An opened checkpoint. Every file stays memory-mapped for the lifetime of this
// object, which owns the mappings: TensorViews and their data pointers borrow from it
// and must not outlive it. Immutable after Open, so every const method is safe to
// call concurrently from any thread.
class Checkpoint : public WeightSourceInterface {
 public:
  // Opens `<dir>/model.safetensors` if present (as Hugging Face prefers it), else the
  // shards listed by `<dir>/model.safetensors.index.json`
  //   {"metadata": {"total_size": N}, "weight_map": {"<tensor>": "<shard file>"}}.
  // Errors name the file and tensor: NotFound when neither file exists or a shard is
  // missing; InvalidArgument for a malformed header or index, a shard file name that
  // is not a plain name in `dir`, a tensor the index maps to a shard that lacks it, a
  // tensor stored in more than one shard, or a tensor in a shard the index omits.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(
      const std::string& dir, const CheckpointOptions& options = {});

  // Checks the tensors against ExpectedWeights(config): each present, with the
  // expected shape and an allowed dtype —
  //   - BF16, F16 or F32 for every weight;
  //   - F8_E4M3 also for fp8_when_quantized weights when config.quantization is set,
  //     with an F32 `<name>_scale_inv` of ScaleShape(shape, *config.quantization);
  //   - only F32 for always_fp32 weights (e_score_correction_bias), since routing
  //     choices are sensitive to its precision and released checkpoints store F32.
  // InvalidArgument listing the first problems (and how many in all), each as
  // "<file>: tensor <name>: shape [64,2048], expected [256,7168]" or
  // "tensor <name>: missing (expected BF16 [256,7168])".
  absl::StatusOr<ValidationReport> Validate(const ModelConfig& config) const;

  // WeightSourceInterface: the tensor as FP32, row-major, same shape. BF16/F16/F32 are
  // converted; F8_E4M3 is dequantized as value = fp8 * scale_inv[r / block_rows]
  // [c / block_cols] using `<name>_scale_inv` (2-D weights only). NotFound when absent.
  absl::StatusOr<Fp32Tensor> ReadFp32(const std::string& name) const override;

  // The raw bytes of a tensor, no copy; nullptr when absent.
  const TensorView* Find(absl::string_view name) const;
  // The file that holds a tensor (for messages), or "" when absent.
  absl::string_view FileOf(absl::string_view name) const;
  // All tensor names, sorted.
  std::vector<std::string> TensorNames() const;

  const std::string& dir() const { return dir_; }
  int num_files() const { return static_cast<int>(files_.size()); }
  // Sum of the files' sizes.
  uint64_t total_file_bytes() const { return total_file_bytes_; }

 private:
  struct Location {
    const TensorView* view;  // owned by files_[file]
    int file;
  };

  Checkpoint(std::string dir, const CheckpointOptions& options)
      : dir_(std::move(dir)), options_(options) {}
  absl::Status AddFile(std::unique_ptr<SafetensorsFile> file);

  std::string dir_;
  CheckpointOptions options_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::string> file_names_;  // base names, for messages
  absl::flat_hash_map<std::string, Location> tensors_;
  uint64_t total_file_bytes_ = 0;
};

// A checkpoint directory opened the way every tool and engine opens it.
struct ValidatedCheckpoint {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
};

// Reads `<dir>/config.json`, opens the checkpoint with the config's FP8 block size
// (progress on a terminal per `progress`), and validates every tensor against the
// config; unused extra tensors are noted on stderr.
absl::StatusOr<ValidatedCheckpoint> OpenValidatedCheckpoint(
    const std::string& dir, ProgressMode progress = ProgressMode::kAuto);

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_CHECKPOINT_CHECKPOINT_H_
