// make_model: writes a random-weight checkpoint of a preset DeepSeek config, in the
// Hugging Face layout of the released models (see random_checkpoint.h).
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cli.h"
#include "model/checkpoint/checkpoint.h"
#include "model/presets.h"
#include "tools/common/paths.h"
#include "tools/make_model/random_checkpoint.h"

namespace {
constexpr char kDefaultTokenizer[] = "data/tokenizers/deepseek-v3";
}  // namespace

ABSL_FLAG(std::string, preset, "",
          "model config to write: tiny-v3, tiny-v2 or v2-lite-layers=N (required)");
ABSL_FLAG(std::string, out, "", "output checkpoint directory (required)");
ABSL_FLAG(std::string, dtype, "bf16",
          "bf16, or fp8: linear weights F8_E4M3 with 128x128 F32 block scale_inv, as "
          "in the released DeepSeek-V3");
ABSL_FLAG(uint64_t, seed, yard::model::kDefaultRandomSeed,
          "random seed; the same seed gives byte-identical files");
ABSL_FLAG(int64_t, max_shard_mb, 5000,
          "split into model-0000i-of-0000N.safetensors shards + index when the "
          "weights exceed this many MB (10^6 bytes)");
ABSL_FLAG(std::string, tokenizer, kDefaultTokenizer,
          "directory whose tokenizer.json and tokenizer_config.json are copied into "
          "the checkpoint; the default is skipped when absent; empty: none");
ABSL_FLAG(bool, force, false,
          "write into an existing non-empty --out, replacing an earlier checkpoint");

int main(int argc, char** argv) {
  yard::ParseCommandLine(
      argc, argv,
      absl::StrCat(
          "Writes a random-weight DeepSeek checkpoint (config.json, safetensors, "
          "tokenizer).\nusage: make_model --preset=",
          absl::StrJoin(yard::model::PresetNames(), "|"),
          " --out=DIR [--dtype=bf16|fp8] [--seed=S] [--max-shard-mb=M] "
          "[--tokenizer=DIR] [--force]"));
  const std::string preset = absl::GetFlag(FLAGS_preset);
  const std::string out = yard::tools::ResolveUserPath(absl::GetFlag(FLAGS_out));
  if (preset.empty()) return yard::Fail("--preset is required (see --help)");
  if (out.empty()) return yard::Fail("--out is required (see --help)");
  absl::StatusOr<yard::model::ModelConfig> config = yard::model::PresetConfig(preset);
  if (!config.ok()) return yard::Fail(config.status().message());

  yard::model::RandomCheckpointOptions options;
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype == "bf16") {
    options.dtype = yard::model::RandomWeightDType::kBF16;
  } else if (dtype == "fp8") {
    options.dtype = yard::model::RandomWeightDType::kFP8;
  } else {
    return yard::Fail(absl::StrCat("--dtype must be bf16 or fp8, not '", dtype, "'"));
  }
  options.seed = absl::GetFlag(FLAGS_seed);
  const int64_t shard_mb = absl::GetFlag(FLAGS_max_shard_mb);
  if (shard_mb < 1) return yard::Fail("--max_shard_mb must be at least 1");
  options.max_shard_bytes = static_cast<uint64_t>(shard_mb) * 1'000'000;
  options.overwrite = absl::GetFlag(FLAGS_force);

  const std::string tokenizer_flag = absl::GetFlag(FLAGS_tokenizer);
  options.tokenizer_dir = yard::tools::ResolveUserPath(tokenizer_flag);
  if (tokenizer_flag == kDefaultTokenizer &&
      !std::filesystem::exists(std::filesystem::path(options.tokenizer_dir) /
                               "tokenizer.json")) {
    std::cerr << "note: no tokenizer at " << options.tokenizer_dir
              << " (run ./yard setup); writing the checkpoint without one\n";
    options.tokenizer_dir.clear();
  }

  const absl::Time start = absl::Now();
  const absl::Status status = yard::model::WriteRandomCheckpoint(*config, out, options);
  if (!status.ok()) return yard::Fail(status.message());
  // Read back what was written (headers only, so cheap even for large models): the
  // same checks every loader applies, run before anyone else trusts the directory.
  absl::StatusOr<yard::model::ValidatedCheckpoint> written =
      yard::model::OpenValidatedCheckpoint(out);
  if (!written.ok()) return yard::Fail(written.status().message());
  std::cerr << "make_model: wrote " << preset << " (" << dtype << ") to " << out << " in "
            << absl::FormatDuration(
                   absl::Trunc(absl::Now() - start, absl::Milliseconds(100)))
            << "; validated " << written->checkpoint->TensorNames().size() << " tensors\n";
  return 0;
}
