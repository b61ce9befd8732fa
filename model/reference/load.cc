#include "model/reference/load.h"

#include "common/status_macros.h"
#include "model/checkpoint/checkpoint.h"

namespace yard::model {

absl::StatusOr<std::unique_ptr<ReferenceModel>> LoadReferenceModel(const std::string& dir) {
  ASSIGN_OR_RETURN(ValidatedCheckpoint opened, OpenValidatedCheckpoint(dir));
  // The reference copies every weight as FP32, so the mapping can go after this.
  return ReferenceModel::Create(opened.config, *opened.checkpoint);
}

}  // namespace yard::model
