// Where the reference forward gets its weights: FP32 host tensors by checkpoint
// name, whatever the stored dtype (BF16, FP16, FP32, or FP8 with block scales).
#ifndef SWITCHYARD_MODEL_WEIGHT_SOURCE_H_
#define SWITCHYARD_MODEL_WEIGHT_SOURCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace yard::model {

// A dense FP32 tensor on the host. data: row-major, shape.product() values.
struct Fp32Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Reads weights as FP32 by their Hugging Face name (model/weight_layout.h).
// Implementations: a checkpoint on disk (model/checkpoint), or a map in tests.
class WeightSourceInterface {
 public:
  virtual ~WeightSourceInterface() = default;
  // NotFound for a name the source lacks; dequantizes FP8 with its scale_inv.
  virtual absl::StatusOr<Fp32Tensor> ReadFp32(const std::string& name) const = 0;
};

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_WEIGHT_SOURCE_H_
