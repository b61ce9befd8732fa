// An in-memory WeightSourceInterface for tests: tensors set by hand, or every tensor
// of a config filled with seeded random values.
#ifndef SWITCHYARD_TESTS_UNIT_MODEL_REFERENCE_FAKE_WEIGHT_SOURCE_H_
#define SWITCHYARD_TESTS_UNIT_MODEL_REFERENCE_FAKE_WEIGHT_SOURCE_H_

#include <cstdint>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "model/config.h"
#include "model/weight_layout.h"
#include "model/weight_source.h"

namespace yard::model {

class FakeWeightSource : public WeightSourceInterface {
 public:
  // data: row-major, product(shape) values (not checked: tests may break it on purpose).
  void Set(const std::string& name, std::vector<int64_t> shape, std::vector<float> data) {
    tensors_[name] = Fp32Tensor{std::move(shape), std::move(data)};
  }
  void Erase(const std::string& name) { tensors_.erase(name); }
  bool Has(const std::string& name) const { return tensors_.count(name) > 0; }
  Fp32Tensor& Mutable(const std::string& name) { return tensors_.at(name); }

  // Every tensor of ExpectedWeights(config): norms near 1, linear weights uniform in
  // ±1/sqrt(in) so activations stay O(1), biases small.
  void FillRandom(const ModelConfig& config, uint32_t seed) {
    std::mt19937 rng(seed);
    for (const WeightSpec& spec : ExpectedWeights(config)) {
      Fp32Tensor t{spec.shape, {}};
      t.data.resize(t.size());
      const bool is_norm = spec.shape.size() == 1 && !spec.always_fp32;
      const double range =
          spec.shape.size() == 2 ? 1.0 / std::sqrt(static_cast<double>(spec.shape[1])) : 0.1;
      std::uniform_real_distribution<float> dist(-range, range);
      for (float& v : t.data) v = is_norm ? 1.0f + dist(rng) : dist(rng);
      tensors_[spec.name] = std::move(t);
    }
  }

  absl::StatusOr<Fp32Tensor> ReadFp32(const std::string& name) const override {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      return absl::NotFoundError(absl::StrCat("tensor ", name, ": not found"));
    }
    return it->second;
  }

 private:
  std::map<std::string, Fp32Tensor> tensors_;
};

}  // namespace yard::model

#endif  // SWITCHYARD_TESTS_UNIT_MODEL_REFERENCE_FAKE_WEIGHT_SOURCE_H_
