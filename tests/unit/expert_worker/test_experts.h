// A hand-built ModelViews for expert-worker tests: kLayers decoder layers, layer 0
// dense (no routed experts) and every later layer MoE with kExperts SwiGLU experts of
// random BF16 weights ([kInner, kHidden] gate and up, [kHidden, kInner] down). No
// checkpoint: the views point into vectors the fixture owns.
#ifndef SWITCHYARD_TESTS_UNIT_EXPERT_WORKER_TEST_EXPERTS_H_
#define SWITCHYARD_TESTS_UNIT_EXPERT_WORKER_TEST_EXPERTS_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/model_weights.h"
#include "kernels/cpu/numerics.h"

namespace yard::expert_worker::fixture {

inline constexpr int64_t kHidden = 8;
inline constexpr int64_t kInner = 4;
inline constexpr int kLayers = 3;
inline constexpr int kExperts = 3;

class TestExperts {
 public:
  explicit TestExperts(uint32_t seed = 7) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 0.5f);
    auto random = [&](int64_t n) {
      std::vector<uint16_t> w(n);
      for (uint16_t& v : w) v = kernels::cpu::FloatToBf16(d(rng));
      return w;
    };
    storage_.resize(kLayers);
    views_.layers.resize(kLayers);
    for (int l = 1; l < kLayers; ++l) {
      storage_[l].resize(kExperts);
      engine::MoeViews moe;
      for (int e = 0; e < kExperts; ++e) {
        Storage& s = storage_[l][e];
        s.gate = random(kInner * kHidden);
        s.up = random(kInner * kHidden);
        s.down = random(kHidden * kInner);
        using kernels::cpu::WeightView;
        engine::SwiGluViews v;
        v.gate = WeightView{.data = s.gate.data(), .n = kInner, .k = kHidden};
        v.up = WeightView{.data = s.up.data(), .n = kInner, .k = kHidden};
        v.down = WeightView{.data = s.down.data(), .n = kHidden, .k = kInner};
        moe.experts.push_back(v);
      }
      views_.layers[l].moe = std::move(moe);
    }
  }
  TestExperts(const TestExperts&) = delete;
  TestExperts& operator=(const TestExperts&) = delete;

  const engine::ModelViews& views() const { return views_; }
  const engine::SwiGluViews& expert(int layer, int e) const {
    return views_.layers[layer].moe->experts[e];
  }

  // down(silu(gate·x) ⊙ up·x) in double, from the BF16 weights. x: [kHidden].
  std::vector<double> Reference(int layer, int e, const float* x) const {
    using kernels::cpu::Bf16ToFloat;
    const Storage& s = storage_[layer][e];
    std::vector<double> act(kInner);
    for (int64_t i = 0; i < kInner; ++i) {
      double g = 0, u = 0;
      for (int64_t c = 0; c < kHidden; ++c) {
        g += double(Bf16ToFloat(s.gate[i * kHidden + c])) * x[c];
        u += double(Bf16ToFloat(s.up[i * kHidden + c])) * x[c];
      }
      act[i] = g / (1 + std::exp(-g)) * u;
    }
    std::vector<double> out(kHidden, 0.0);
    for (int64_t o = 0; o < kHidden; ++o) {
      for (int64_t i = 0; i < kInner; ++i) {
        out[o] += double(Bf16ToFloat(s.down[o * kInner + i])) * act[i];
      }
    }
    return out;
  }

 private:
  struct Storage {
    std::vector<uint16_t> gate, up, down;
  };
  std::vector<std::vector<Storage>> storage_;  // [layer][expert]
  engine::ModelViews views_;
};

}  // namespace yard::expert_worker::fixture

#endif  // SWITCHYARD_TESTS_UNIT_EXPERT_WORKER_TEST_EXPERTS_H_
