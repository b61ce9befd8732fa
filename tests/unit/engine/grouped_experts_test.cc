#include "engine/grouped_experts.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/numerics.h"

namespace yard::engine {
namespace {

constexpr int64_t kHidden = 96;
constexpr int64_t kInner = 64;
constexpr int kExperts = 5;

struct Weights {
  std::vector<uint16_t> gate, up, down;
  SwiGluViews views;
};

std::vector<uint16_t> RandomBf16(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 0.1f);
  std::vector<uint16_t> w(n);
  for (uint16_t& v : w) v = kernels::cpu::FloatToBf16(d(rng));
  return w;
}

std::vector<Weights> MakeExperts(std::mt19937& rng) {
  std::vector<Weights> experts(kExperts);
  for (Weights& e : experts) {
    e.gate = RandomBf16(kInner * kHidden, rng);
    e.up = RandomBf16(kInner * kHidden, rng);
    e.down = RandomBf16(kHidden * kInner, rng);
    using kernels::cpu::WeightView;
    e.views.gate = WeightView{.data = e.gate.data(), .n = kInner, .k = kHidden};
    e.views.up = WeightView{.data = e.up.data(), .n = kInner, .k = kHidden};
    e.views.down = WeightView{.data = e.down.data(), .n = kHidden, .k = kInner};
  }
  return experts;
}

// Plain loops in double: down(silu(gate·x) ⊙ up·x).
std::vector<double> Expected(const Weights& e, const float* x) {
  using kernels::cpu::Bf16ToFloat;
  std::vector<double> act(kInner);
  for (int64_t i = 0; i < kInner; ++i) {
    double g = 0, u = 0;
    for (int64_t c = 0; c < kHidden; ++c) {
      g += Bf16ToFloat(e.gate[i * kHidden + c]) * double(x[c]);
      u += Bf16ToFloat(e.up[i * kHidden + c]) * double(x[c]);
    }
    act[i] = g / (1 + std::exp(-g)) * u;
  }
  std::vector<double> out(kHidden);
  for (int64_t o = 0; o < kHidden; ++o) {
    for (int64_t i = 0; i < kInner; ++i) out[o] += Bf16ToFloat(e.down[o * kInner + i]) * act[i];
  }
  return out;
}

TEST(GroupedSwiGluTest, EveryRowMatchesItsExpertAndIsBatchInvariant) {
  std::mt19937 rng(3);
  const std::vector<Weights> weights = MakeExperts(rng);
  // Expert 3 is absent (a slot-less candidate): rows never name it.
  std::vector<const SwiGluViews*> experts;
  for (int e = 0; e < kExperts; ++e) experts.push_back(e == 3 ? nullptr : &weights[e].views);

  const int64_t n = 23;
  std::vector<float> x(n * kHidden);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& v : x) v = d(rng);
  std::vector<const float*> rows;
  std::vector<int32_t> expert_of_row;
  for (int64_t i = 0; i < n; ++i) {
    rows.push_back(&x[(i * 7 % n) * kHidden]);  // rows may share inputs
    expert_of_row.push_back(static_cast<int32_t>(std::vector<int>{0, 1, 2, 4}[i % 4]));
  }

  kernels::cpu::GemmOptions gemm;
  gemm.precision = kernels::cpu::ActivationPrecision::kFp32;
  GroupedSwiGlu grouped(gemm);
  std::vector<float> out(n * kHidden);
  grouped.Run(experts, rows, expert_of_row, {}, kHidden, out.data());
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<double> want = Expected(weights[expert_of_row[i]], rows[i]);
    for (int64_t c = 0; c < kHidden; ++c) {
      ASSERT_NEAR(out[i * kHidden + c], want[c], 1e-4 + 1e-4 * std::fabs(want[c]))
          << "row " << i << " column " << c;
    }
  }

  // Each row alone gives the same bits: an expert worker may batch rows from any
  // dispatches together without changing a result.
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> alone(kHidden);
    grouped.Run(experts, absl::MakeConstSpan(&rows[i], 1), absl::MakeConstSpan(&expert_of_row[i], 1),
                {}, kHidden, alone.data());
    EXPECT_EQ(std::memcmp(alone.data(), &out[i * kHidden], kHidden * sizeof(float)), 0)
        << "row " << i;
  }
}

// kAuto: the rows of prefill chunks take BF16 activations once the call holds
// bf16_min_rows distinct prefill tokens, whatever rows each expert gets; every other
// row (decode tokens, or prefill tokens too few for BF16) keeps FP32.
TEST(GroupedSwiGluTest, AutoPrecisionFollowsThePrefillTokens) {
  std::mt19937 rng(5);
  const std::vector<Weights> weights = MakeExperts(rng);
  std::vector<const SwiGluViews*> experts;
  for (const Weights& w : weights) experts.push_back(&w.views);
  std::vector<float> x(16 * kHidden);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& v : x) v = d(rng);

  // Row i: token i % distinct, expert i % kExperts (≤ 3 rows per expert for n = 12);
  // prefill(i) says whether its token belongs to a prefill chunk.
  auto run = [&](kernels::cpu::ActivationPrecision precision, int distinct, int64_t n,
                 const std::function<bool(int64_t)>& prefill) {
    kernels::cpu::GemmOptions gemm;
    gemm.precision = precision;
    gemm.bf16_min_rows = 6;
    std::vector<const float*> rows;
    std::vector<int32_t> expert_of_row;
    std::vector<uint8_t> from_prefill;
    for (int64_t i = 0; i < n; ++i) {
      rows.push_back(&x[(i % distinct) * kHidden]);
      expert_of_row.push_back(static_cast<int32_t>(i % kExperts));
      from_prefill.push_back(prefill(i));
    }
    GroupedSwiGlu grouped(gemm);
    std::vector<float> out(n * kHidden);
    grouped.Run(experts, rows, expert_of_row, from_prefill, kHidden, out.data());
    return out;
  };
  using kernels::cpu::ActivationPrecision;
  auto all = [](int64_t) { return true; };
  auto none = [](int64_t) { return false; };
  // 12 prefill rows over 3 distinct tokens: too few for BF16.
  EXPECT_EQ(run(ActivationPrecision::kAuto, 3, 12, all), run(ActivationPrecision::kFp32, 3, 12, all));
  // 12 prefill rows over 12 tokens: BF16 (which differs from FP32 here).
  const std::vector<float> bf16 = run(ActivationPrecision::kBf16, 12, 12, all);
  const std::vector<float> fp32 = run(ActivationPrecision::kFp32, 12, 12, all);
  EXPECT_EQ(run(ActivationPrecision::kAuto, 12, 12, all), bf16);
  if (kernels::cpu::ActiveIsa() == kernels::cpu::Isa::kAvx512) {
    EXPECT_NE(bf16, fp32);
  }
  // The same 12 tokens decoding: FP32.
  EXPECT_EQ(run(ActivationPrecision::kAuto, 12, 12, none), fp32);
  // 16 rows: tokens 0-7 decode, 8-15 a prefill chunk. Both precisions are
  // batch-invariant, so each row must equal its precision's row in a single-precision
  // run of the same rows.
  auto late = [](int64_t i) { return i >= 8; };
  const std::vector<float> mixed = run(ActivationPrecision::kAuto, 16, 16, late);
  const std::vector<float> mixed_bf16 = run(ActivationPrecision::kBf16, 16, 16, late);
  const std::vector<float> mixed_fp32 = run(ActivationPrecision::kFp32, 16, 16, late);
  for (int64_t i = 0; i < 16; ++i) {
    const std::vector<float>& want = late(i) ? mixed_bf16 : mixed_fp32;
    EXPECT_EQ(std::memcmp(&mixed[i * kHidden], &want[i * kHidden], kHidden * sizeof(float)), 0)
        << "row " << i;
  }
}

TEST(GroupedSwiGluTest, NoRowsIsANoOp) {
  GroupedSwiGlu grouped(kernels::cpu::GemmOptions{});
  grouped.Run({}, {}, {}, {}, kHidden, nullptr);
}

}  // namespace
}  // namespace yard::engine
