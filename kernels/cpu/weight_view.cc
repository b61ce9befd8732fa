#include "kernels/cpu/weight_view.h"

#include "absl/strings/str_cat.h"

namespace yard::kernels::cpu {

absl::Status ValidateWeight(const WeightView& w) {
  if (w.data == nullptr) return absl::InvalidArgumentError("weight: null data");
  if (w.n <= 0 || w.k <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight: shape [", w.n, ", ", w.k, "], expected positive sizes"));
  }
  if (w.type == WeightType::kFp8E4m3 && w.scale_inv == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight: FP8 [", w.n, ", ", w.k, "] without scale_inv [",
        (w.n + kFp8BlockSize - 1) / kFp8BlockSize, ", ",
        (w.k + kFp8BlockSize - 1) / kFp8BlockSize, "]"));
  }
  if (w.type == WeightType::kBf16 && w.scale_inv != nullptr) {
    return absl::InvalidArgumentError("weight: BF16 with a scale_inv");
  }
  return absl::OkStatus();
}

}  // namespace yard::kernels::cpu
