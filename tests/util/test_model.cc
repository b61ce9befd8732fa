#include "tests/util/test_model.h"

#include "absl/status/statusor.h"
#include "model/presets.h"
#include "tools/make_model/random_checkpoint.h"

namespace yard::testing {

absl::Status WriteTestModel(const std::string& preset, const std::string& dir) {
  absl::StatusOr<model::ModelConfig> config = model::PresetConfig(preset);
  if (!config.ok()) return config.status();
  model::RandomCheckpointOptions write;
  write.progress = model::ProgressMode::kNever;
  write.overwrite = true;
  write.tokenizer_dir = kTestTokenizerDir;
  return model::WriteRandomCheckpoint(*config, dir, write);
}

}  // namespace yard::testing
