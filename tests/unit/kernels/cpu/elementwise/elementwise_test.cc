#include "kernels/cpu/elementwise/elementwise.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/numerics.h"
#include "kernels/cpu/thread_pool.h"
#include "model/reference/ops.h"

namespace yard::kernels::cpu {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Lengths around every vector width and unroll (1, 8, 16, 64 lanes), plus real ones.
const int64_t kLengths[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 512, 2048, 7168};

class ElementwiseTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { isa_ = std::make_unique<ScopedIsa>(GetParam()); }
  std::unique_ptr<ScopedIsa> isa_;
};

TEST_P(ElementwiseTest, RmsNormMatchesReference) {
  for (int64_t n : kLengths) {
    const int64_t rows = 3;
    const int64_t stride = n + 5;
    const std::vector<float> x = Random(rows * stride, 1, 3.0f);
    const std::vector<float> w_fp32 = Random(n, 2);
    std::vector<uint16_t> w_bf16(n);
    std::vector<float> w_widened(n);
    for (int64_t i = 0; i < n; ++i) {
      w_bf16[i] = FloatToBf16(w_fp32[i]);
      w_widened[i] = Bf16ToFloat(w_bf16[i]);
    }
    for (bool bf16 : {false, true}) {
      std::vector<float> y(rows * stride, NAN);
      RmsNorm(x.data(), rows, n, stride,
              bf16 ? NormWeight::Bf16(w_bf16.data()) : NormWeight::Fp32(w_fp32.data()), 1e-6f,
              y.data(), stride);
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<float> want = model::reference::RmsNorm(
            absl::MakeConstSpan(x.data() + r * stride, n), bf16 ? w_widened : w_fp32, 1e-6);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_NEAR(want[i], y[r * stride + i], 4e-6 * (std::fabs(want[i]) + 1e-3))
              << "n " << n << " row " << r << " i " << i << " bf16 " << bf16;
        }
        EXPECT_TRUE(std::isnan(y[r * stride + n])) << "wrote past the row";
      }
    }
  }
}

TEST_P(ElementwiseTest, RmsNormInPlaceAndFusedAddGiveTheSameBits) {
  for (int64_t n : kLengths) {
    const int64_t rows = 4;
    const std::vector<float> residual = Random(rows * n, 3);
    const std::vector<float> delta = Random(rows * n, 4);
    const std::vector<float> w = Random(n, 5);
    // Unfused: add, then norm in place.
    std::vector<float> sum(rows * n);
    for (int64_t i = 0; i < rows * n; ++i) sum[i] = residual[i] + delta[i];
    std::vector<float> normed = sum;
    RmsNorm(normed.data(), rows, n, n, NormWeight::Fp32(w.data()), 1e-5f, normed.data(), n);
    // Fused.
    std::vector<float> fused_residual = residual;
    std::vector<float> y(rows * n);
    AddRmsNorm(fused_residual.data(), n, delta.data(), n, rows, n, NormWeight::Fp32(w.data()),
               1e-5f, y.data(), n);
    EXPECT_EQ(0, std::memcmp(sum.data(), fused_residual.data(), sum.size() * sizeof(float))) << n;
    EXPECT_EQ(0, std::memcmp(normed.data(), y.data(), y.size() * sizeof(float))) << n;
  }
}

TEST_P(ElementwiseTest, SiluMulMatchesReference) {
  for (int64_t n : kLengths) {
    // Gates from -100 to 100: both tails of the exponential.
    std::vector<float> gate = Random(n, 6, 8.0f);
    gate[0] = -100.0f;
    if (n > 1) gate[1] = 95.0f;
    const std::vector<float> up = Random(n, 7);
    std::vector<float> out(n);
    SiluMul(gate.data(), n, up.data(), n, 1, n, out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = model::reference::Silu(gate[i]) * up[i];
      ASSERT_NEAR(want, out[i], 1e-6 * std::fabs(want) + 1e-30) << "n " << n << " i " << i;
    }
    // In place over gate.
    SiluMul(gate.data(), n, up.data(), n, 1, n, gate.data(), n);
    EXPECT_EQ(0, std::memcmp(out.data(), gate.data(), n * sizeof(float)));
  }
}

TEST_P(ElementwiseTest, SoftmaxMatchesDouble) {
  for (int64_t n : kLengths) {
    std::vector<float> x = Random(n, 8, 4.0f);
    x[0] = -INFINITY;  // masked entry
    std::vector<double> want(n);
    double max = -INFINITY, sum = 0.0;
    for (float v : x) max = std::max(max, static_cast<double>(v));
    for (int64_t i = 0; i < n; ++i) sum += (want[i] = std::exp(x[i] - max));
    if (n == 1) continue;  // all -inf: no softmax
    SoftmaxRows(x.data(), 1, n, n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(want[i] / sum, x[i], 5e-6 * want[i] / sum + 1e-12) << "n " << n << " i " << i;
    }
    EXPECT_EQ(x[0], 0.0f);
  }
}

TEST_P(ElementwiseTest, FloatToBf16MatchesNumerics) {
  std::vector<float> x = Random(1000, 9, 100.0f);
  x[0] = NAN;
  x[1] = INFINITY;
  x[2] = -0.0f;
  x[3] = 1.00390625f;  // exactly halfway between two BF16 values: rounds to even
  x[4] = 1.01171875f;  // halfway, rounds up to even
  x[5] = 3.4e38f;      // rounds to infinity
  x[6] = 1e-40f;       // subnormal
  for (int64_t n : {1000, 17, 3}) {
    std::vector<uint16_t> y(n, 0xDEAD);
    FloatToBf16Row(x.data(), n, y.data());
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(FloatToBf16(x[i]), y[i]) << "n " << n << " i " << i;
    }
  }
}

TEST_P(ElementwiseTest, BitwiseIndependentOfThreads) {
  const int64_t rows = 64, n = 2048;
  const std::vector<float> x = Random(rows * n, 10);
  const std::vector<float> w = Random(n, 11);
  ThreadPool one(ThreadPool::Options{.num_threads = 1});
  ThreadPool three(ThreadPool::Options{.num_threads = 3});
  std::vector<float> a(rows * n), b(rows * n);
  RmsNorm(x.data(), rows, n, n, NormWeight::Fp32(w.data()), 1e-6f, a.data(), n, &one);
  RmsNorm(x.data(), rows, n, n, NormWeight::Fp32(w.data()), 1e-6f, b.data(), n, &three);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const std::vector<float> up = Random(rows * n, 12);
  SiluMul(x.data(), n, up.data(), n, rows, n, a.data(), n, &one);
  SiluMul(x.data(), n, up.data(), n, rows, n, b.data(), n, &three);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(AllIsas, ElementwiseTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace yard::kernels::cpu
