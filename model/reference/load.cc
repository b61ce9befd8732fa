#include "model/reference/load.h"

#include <iostream>

#include "common/status_macros.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"

namespace yard::model {

absl::StatusOr<std::unique_ptr<ReferenceModel>> LoadReferenceModel(const std::string& dir) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  CheckpointOptions options;
  if (config.quantization) options.fp8_blocks = *config.quantization;
  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(dir, options));
  ASSIGN_OR_RETURN(ValidationReport report, checkpoint->Validate(config));
  if (!report.unexpected_tensors.empty()) {
    std::cerr << "note: " << report.unexpected_tensors.size()
              << " tensors in the checkpoint are not used (e.g. "
              << report.unexpected_tensors.front() << ")\n";
  }
  // The reference copies every weight as FP32, so the mapping can go after this.
  return ReferenceModel::Create(config, *checkpoint);
}

}  // namespace yard::model
