// Loading the reference model straight from a checkpoint directory, as the tools do.
#ifndef SWITCHYARD_MODEL_REFERENCE_LOAD_H_
#define SWITCHYARD_MODEL_REFERENCE_LOAD_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/reference/reference_model.h"

namespace yard::model {

// Reads `<dir>/config.json`, opens the checkpoint (progress on a terminal), validates
// every tensor against the config (reporting all bad tensors with their files, not
// just the first) and builds the FP32 reference model. Unused extra tensors are noted
// on stderr.
absl::StatusOr<std::unique_ptr<ReferenceModel>> LoadReferenceModel(const std::string& dir);

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_REFERENCE_LOAD_H_
