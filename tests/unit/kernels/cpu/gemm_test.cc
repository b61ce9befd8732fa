#include "kernels/cpu/gemm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_reference.h"
#include "kernels/cpu/numerics.h"

namespace yard::kernels::cpu {
namespace {

// Owns the bytes a WeightView points at.
struct TestWeight {
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> fp8;
  std::vector<float> scales;
  WeightView view;
};

TestWeight MakeWeight(WeightType type, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  TestWeight w;
  w.view.type = type;
  w.view.n = n;
  w.view.k = k;
  if (type == WeightType::kBf16) {
    std::normal_distribution<float> normal(0.0f, 0.05f);
    w.bf16.resize(n * k);
    for (uint16_t& v : w.bf16) v = FloatToBf16(normal(rng));
    w.view.data = w.bf16.data();
  } else {
    // Every finite code (NaN codes 0x7F/0xFF have their own test).
    std::uniform_int_distribution<int> code(0, 253);
    w.fp8.resize(n * k);
    for (uint8_t& v : w.fp8) {
      const int c = code(rng);
      v = static_cast<uint8_t>(c < 127 ? c : c + 1);
    }
    const int64_t rows = (n + kFp8BlockSize - 1) / kFp8BlockSize;
    const int64_t cols = (k + kFp8BlockSize - 1) / kFp8BlockSize;
    std::uniform_real_distribution<float> scale(1e-4f, 1e-3f);
    w.scales.resize(rows * cols);
    for (float& s : w.scales) s = scale(rng);
    w.view.data = w.fp8.data();
    w.view.scale_inv = w.scales.data();
  }
  return w;
}

std::vector<float> RandomX(int64_t m, int64_t stride, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(m * stride);
  for (float& v : x) v = normal(rng);
  return x;
}

// Σ_k |x[i, k] · w[j, k]|: the scale of the rounding error of element (i, j).
std::vector<double> AbsSums(const float* x, int64_t m, int64_t x_stride,
                            const WeightView& w) {
  std::vector<double> sums(m * w.n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < w.n; ++j) {
      double s = 0.0;
      for (int64_t c = 0; c < w.k; ++c) {
        s += std::fabs(static_cast<double>(x[i * x_stride + c]) * ReferenceWeight(w, j, c));
      }
      sums[i * w.n + j] = s;
    }
  }
  return sums;
}

// FP32 summation of k terms in 16 lanes then a tree: the error is a few ulps of
// Σ|terms| per lane-sum step; `slack` covers the rest (FP8's scaled x, BF16 x).
double Tolerance(int64_t k, double abs_sum, double slack = 4.0) {
  return slack * (static_cast<double>(k) / 8.0 + 16.0) * std::ldexp(1.0, -24) * abs_sum +
         1e-30;
}

std::string Describe(WeightType type, ActivationPrecision precision, int64_t m,
                     int64_t n, int64_t k) {
  return absl::StrCat(IsaName(ActiveIsa()), type == WeightType::kBf16 ? " bf16" : " fp8",
                      precision == ActivationPrecision::kFp32 ? " fp32-act" : " bf16-act",
                      " m=", m, " n=", n, " k=", k);
}

// Whether the kernel really rounds activations to BF16 under `precision`.
bool RoundsActivations(ActivationPrecision precision) {
  return precision == ActivationPrecision::kBf16 && ActiveIsa() == Isa::kAvx512;
}

void CheckAgainstReference(WeightType type, ActivationPrecision precision, int64_t m,
                           int64_t n, int64_t k, int64_t x_pad = 0, int64_t y_pad = 0) {
  SCOPED_TRACE(Describe(type, precision, m, n, k));
  const TestWeight w = MakeWeight(type, n, k, static_cast<uint32_t>(n * 7919 + k));
  const int64_t x_stride = k + x_pad;
  const int64_t y_stride = n + y_pad;
  const std::vector<float> x = RandomX(m, x_stride, static_cast<uint32_t>(m + 17 * k));
  std::vector<float> y(m * y_stride, -12345.0f);
  Gemm(x.data(), m, x_stride, w.view, y.data(), y_stride,
       GemmOptions{.precision = precision});

  const bool rounded = RoundsActivations(precision);
  std::vector<float> ref(m * n);
  GemmReference(x.data(), m, x_stride, w.view, ref.data(), n, rounded);
  std::vector<float> exact(m * n);
  GemmReference(x.data(), m, x_stride, w.view, exact.data(), n, false);
  const std::vector<double> abs_sums = AbsSums(x.data(), m, x_stride, w.view);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double got = y[i * y_stride + j];
      const double sum = abs_sums[i * n + j];
      // Against a reference that sees the same operands: only FP32 summation differs.
      ASSERT_NEAR(got, ref[i * n + j], Tolerance(k, sum)) << "at " << i << ", " << j;
      // Against exact FP32 activations: BF16 rounding adds ≤ 2^-9 of Σ|terms|.
      ASSERT_NEAR(got, exact[i * n + j], (rounded ? std::ldexp(1.0, -8) * sum : 0.0) +
                                             Tolerance(k, sum))
          << "at " << i << ", " << j;
    }
    // Padding between rows of y is left alone.
    for (int64_t j = n; j < y_stride; ++j) ASSERT_EQ(y[i * y_stride + j], -12345.0f);
  }
}

class GemmTest : public ::testing::TestWithParam<std::tuple<Isa, WeightType, ActivationPrecision>> {
 protected:
  void SetUp() override {
    if (!IsaSupported(isa())) GTEST_SKIP() << IsaName(isa()) << " not supported here";
    scoped_.emplace(isa());
  }
  Isa isa() const { return std::get<0>(GetParam()); }
  WeightType type() const { return std::get<1>(GetParam()); }
  ActivationPrecision precision() const { return std::get<2>(GetParam()); }

 private:
  std::optional<ScopedIsa> scoped_;
};

TEST_P(GemmTest, OddShapes) {
  const int64_t shapes[][3] = {
      {1, 1, 1},    {1, 1, 129},  {1, 300, 129}, {2, 5, 31},    {1, 3, 16},
      {1, 2, 17},   {1, 17, 2048}, {4, 64, 1408}, {7, 300, 257}, {65, 33, 96},
      {3, 130, 300}, {13, 129, 2100}, {6, 4, 33}, {1, 256, 48},
      // More rows of x than one prepared chunk of either path (64 / 256).
      {300, 20, 70},
  };
  for (const auto& s : shapes) CheckAgainstReference(type(), precision(), s[0], s[1], s[2]);
}

TEST_P(GemmTest, EveryBatchSizeUpTo65) {
  for (int64_t m = 1; m <= 65; ++m) CheckAgainstReference(type(), precision(), m, 37, 160);
}

TEST_P(GemmTest, StridedRows) {
  CheckAgainstReference(type(), precision(), 5, 70, 200, /*x_pad=*/13, /*y_pad=*/3);
  CheckAgainstReference(type(), precision(), 1, 9, 40, /*x_pad=*/1, /*y_pad=*/1);
}

TEST_P(GemmTest, ThreadCountDoesNotChangeBits) {
  // Shapes for the split over weight rows, and over tokens (few rows, many tokens).
  const int64_t shapes[][3] = {{1, 300, 1000}, {5, 515, 257}, {70, 20, 300}, {200, 8, 130}};
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    SCOPED_TRACE(Describe(type(), precision(), m, n, k));
    const TestWeight w = MakeWeight(type(), n, k, 99);
    const std::vector<float> x = RandomX(m, k, 5);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(ThreadPool::Options{.num_threads = threads});
      std::vector<float> y(m * n);
      Gemm(x.data(), m, w.view, y.data(),
           GemmOptions{.precision = precision(), .pool = &pool});
      results.push_back(std::move(y));
    }
    for (size_t r = 1; r < results.size(); ++r) {
      ASSERT_EQ(std::memcmp(results[0].data(), results[r].data(), m * n * sizeof(float)),
                0);
    }
  }
}

// A batch of matmuls of different shapes (one empty) gives exactly the bits of
// separate Gemm calls, with 1, 2 and 3 threads.
TEST_P(GemmTest, GemmBatchEqualsSeparateCalls) {
  const int64_t shapes[][3] = {{1, 300, 1000}, {3, 17, 129}, {0, 64, 64}, {9, 515, 257},
                               {1, 1, 1},      {40, 130, 300}};
  std::vector<TestWeight> weights;
  std::vector<std::vector<float>> xs, expected;
  for (size_t i = 0; i < std::size(shapes); ++i) {
    const int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
    weights.push_back(MakeWeight(type(), n, k, 11 + static_cast<uint32_t>(i)));
    xs.push_back(RandomX(std::max<int64_t>(m, 1), k, 21 + static_cast<uint32_t>(i)));
    std::vector<float> y(m * n);
    Gemm(xs.back().data(), m, weights.back().view, y.data(),
         GemmOptions{.precision = precision()});
    expected.push_back(std::move(y));
  }
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(ThreadPool::Options{.num_threads = threads});
    std::vector<std::vector<float>> ys;
    std::vector<GemmProblem> problems;
    for (size_t i = 0; i < std::size(shapes); ++i) {
      ys.emplace_back(shapes[i][0] * shapes[i][1], -1.0f);
    }
    for (size_t i = 0; i < std::size(shapes); ++i) {
      const int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
      problems.push_back({xs[i].data(), m, k, weights[i].view, ys[i].data(), n});
    }
    GemmBatch(problems, GemmOptions{.precision = precision(), .pool = &pool});
    for (size_t i = 0; i < std::size(shapes); ++i) {
      SCOPED_TRACE(Describe(type(), precision(), shapes[i][0], shapes[i][1], shapes[i][2]));
      ASSERT_EQ(ys[i], expected[i]) << threads << " threads";
    }
  }
}

TEST_P(GemmTest, RowResultDoesNotDependOnTheBatch) {
  // kFp32 and kBf16 each fix the order per element; only kAuto switches with m. The
  // row counts reach every tile kind: sequential (1-2), side by side (3), tall (4-6,
  // FP8), decoded panel (37, FP8).
  const int64_t n = 150, k = 333;
  const TestWeight w = MakeWeight(type(), n, k, 3);
  for (int64_t m : {2, 3, 4, 5, 6, 37}) {
    const std::vector<float> x = RandomX(m, k, 4 + static_cast<uint32_t>(m));
    std::vector<float> batched(m * n);
    Gemm(x.data(), m, w.view, batched.data(), GemmOptions{.precision = precision()});
    for (int64_t i = 0; i < m; ++i) {
      std::vector<float> alone(n);
      Gemm(x.data() + i * k, 1, w.view, alone.data(), GemmOptions{.precision = precision()});
      ASSERT_EQ(std::memcmp(alone.data(), batched.data() + i * n, n * sizeof(float)), 0)
          << "m " << m << ", row " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllPaths, GemmTest,
    ::testing::Combine(::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                       ::testing::Values(WeightType::kBf16, WeightType::kFp8E4m3),
                       ::testing::Values(ActivationPrecision::kFp32,
                                         ActivationPrecision::kBf16)),
    [](const auto& info) {
      return absl::StrCat(
          IsaName(std::get<0>(info.param)),
          std::get<1>(info.param) == WeightType::kBf16 ? "_Bf16" : "_Fp8",
          std::get<2>(info.param) == ActivationPrecision::kFp32 ? "_Fp32Act" : "_Bf16Act");
    });

// Every FP8 code, at every position of a 32-wide vector and in the masked tail, comes
// out of the vector kernels exactly (NaN codes as NaN).
TEST(GemmFp8Test, EveryCodeDecodesExactly) {
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    for (ActivationPrecision precision :
         {ActivationPrecision::kFp32, ActivationPrecision::kBf16}) {
      const int64_t n = 256, k = 45;
      std::vector<uint8_t> codes(n * k);
      for (int64_t code = 0; code < n; ++code) {
        for (int64_t c = 0; c < k; ++c) codes[code * k + c] = static_cast<uint8_t>(code);
      }
      // Scales of 1 in both row blocks: y is the FP8 value itself.
      const std::vector<float> scales(2, 1.0f);
      const WeightView w{.type = WeightType::kFp8E4m3, .data = codes.data(), .n = n,
                         .k = k, .scale_inv = scales.data()};
      for (int64_t position = 0; position < k; ++position) {
        std::vector<float> x(k, 0.0f);
        x[position] = 1.0f;
        std::vector<float> y(n);
        Gemm(x.data(), 1, w, y.data(), GemmOptions{.precision = precision});
        for (int64_t code = 0; code < n; ++code) {
          const float expected = Fp8E4m3ToFloat(static_cast<uint8_t>(code));
          if (std::isnan(expected)) {
            ASSERT_TRUE(std::isnan(y[code])) << IsaName(isa) << " code " << code;
          } else {
            ASSERT_EQ(y[code], expected)
                << IsaName(isa) << " code " << code << " position " << position;
          }
        }
      }
    }
  }
}

TEST(GemmFp8Test, BlockScalesApplyPerBlock) {
  // Weight all ones (0x38 = 1.0), x all ones: y[j] = Σ_blocks scale[j/128, b] · width.
  const int64_t n = 300, k = 290;
  std::vector<uint8_t> ones(n * k, 0x38);
  std::vector<float> scales(3 * 3);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = std::ldexp(1.0f, static_cast<int>(i) - 4);
  const WeightView w{.type = WeightType::kFp8E4m3, .data = ones.data(), .n = n, .k = k,
                     .scale_inv = scales.data()};
  const std::vector<float> x(k, 1.0f);
  for (Isa isa : SupportedIsas()) {
    ScopedIsa scoped(isa);
    std::vector<float> y(n);
    Gemm(x.data(), 1, w, y.data(), GemmOptions{.precision = ActivationPrecision::kFp32});
    for (int64_t j = 0; j < n; ++j) {
      const int64_t r = j / 128;
      const float expected = 128 * scales[r * 3] + 128 * scales[r * 3 + 1] + 34 * scales[r * 3 + 2];
      ASSERT_EQ(y[j], expected) << IsaName(isa) << " row " << j;
    }
  }
}

TEST(GemmTest, AutoPrecisionSwitchesAtThreshold) {
  if (!IsaSupported(Isa::kAvx512)) GTEST_SKIP();
  ScopedIsa scoped(Isa::kAvx512);
  // x with many mantissa bits, so BF16 rounding is visible in y.
  const int64_t n = 8, k = 64;
  std::vector<uint16_t> ones(n * k, FloatToBf16(1.0f));
  const WeightView w{.type = WeightType::kBf16, .data = ones.data(), .n = n, .k = k};
  const int64_t m = 4;
  std::vector<float> x(m * k, 1.0f + std::ldexp(1.0f, -12));
  std::vector<float> y(m * n);
  Gemm(x.data(), m, w, y.data(), GemmOptions{.bf16_min_rows = 5});
  EXPECT_EQ(y[0], k * (1.0f + std::ldexp(1.0f, -12)));
  Gemm(x.data(), m, w, y.data(), GemmOptions{.bf16_min_rows = 4});
  EXPECT_EQ(y[0], static_cast<float>(k));
}

// kAuto with a row limit: the leading (prefill) rows take BF16 once there are
// bf16_min_rows of them, every later (decode) row keeps FP32, and a row equals that
// precision's own result bit for bit. On every ISA (below AVX-512 kBf16 runs as kFp32,
// so every row must then equal the FP32 result).
TEST(GemmTest, AutoPrecisionKeepsRowsPastTheLimitInFp32) {
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!IsaSupported(isa)) continue;
    ScopedIsa scoped(isa);
    for (WeightType type : {WeightType::kBf16, WeightType::kFp8E4m3}) {
      const int64_t m = 20, n = 150, k = 333;
      const TestWeight w = MakeWeight(type, n, k, 8);
      const std::vector<float> x = RandomX(m, k, 9);
      std::vector<float> bf16(m * n), fp32(m * n), mixed(m * n);
      Gemm(x.data(), m, w.view, bf16.data(), GemmOptions{.precision = ActivationPrecision::kBf16});
      Gemm(x.data(), m, w.view, fp32.data(), GemmOptions{.precision = ActivationPrecision::kFp32});
      ASSERT_EQ(bf16 != fp32, isa == Isa::kAvx512) << IsaName(isa);
      // 12 prefill rows: enough for BF16 (min 8); rows 12-19 keep FP32.
      Gemm(x.data(), m, w.view, mixed.data(),
           GemmOptions{.bf16_min_rows = 8, .bf16_row_limit = 12});
      for (int64_t i = 0; i < m; ++i) {
        const std::vector<float>& want = i < 12 ? bf16 : fp32;
        EXPECT_EQ(std::memcmp(&mixed[i * n], &want[i * n], n * sizeof(float)), 0) << "row " << i;
      }
      // 6 prefill rows: too few, the whole call keeps FP32.
      Gemm(x.data(), m, w.view, mixed.data(),
           GemmOptions{.bf16_min_rows = 8, .bf16_row_limit = 6});
      EXPECT_EQ(mixed, fp32);
      EXPECT_EQ(ResolvePrecision(GemmOptions{.bf16_min_rows = 8, .bf16_row_limit = 6}, m),
                ActivationPrecision::kFp32);
      EXPECT_EQ(ResolvePrecision(GemmOptions{.bf16_min_rows = 8, .bf16_row_limit = 12}, m),
                ActivationPrecision::kBf16);
    }
  }
}

TEST(WeightViewTest, ValidateRejectsBadViews) {
  const uint16_t data[4] = {};
  const float scale = 1.0f;
  EXPECT_TRUE(ValidateWeight({.type = WeightType::kBf16, .data = data, .n = 2, .k = 2}).ok());
  EXPECT_FALSE(ValidateWeight({.type = WeightType::kBf16, .data = nullptr, .n = 2, .k = 2}).ok());
  EXPECT_FALSE(ValidateWeight({.type = WeightType::kBf16, .data = data, .n = 0, .k = 2}).ok());
  EXPECT_FALSE(ValidateWeight({.type = WeightType::kFp8E4m3, .data = data, .n = 2, .k = 2}).ok());
  EXPECT_TRUE(ValidateWeight(
      {.type = WeightType::kFp8E4m3, .data = data, .n = 2, .k = 2, .scale_inv = &scale}).ok());
  EXPECT_FALSE(ValidateWeight(
      {.type = WeightType::kBf16, .data = data, .n = 2, .k = 2, .scale_inv = &scale}).ok());
}

}  // namespace
}  // namespace yard::kernels::cpu
