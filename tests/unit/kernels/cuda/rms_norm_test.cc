#include "kernels/cuda/rms_norm.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace yard::kernels::cuda {
namespace {

// Scalar RMSNorm in double: the oracle for the kernel.
std::vector<float> ReferenceRmsNorm(const std::vector<float>& x, const std::vector<float>& w,
                                    int64_t rows, int64_t cols, float eps) {
  std::vector<float> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double sum_sq = 0;
    for (int64_t c = 0; c < cols; ++c) sum_sq += double(x[r * cols + c]) * x[r * cols + c];
    double inv = 1.0 / std::sqrt(sum_sq / cols + eps);
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = float(x[r * cols + c] * inv * w[c]);
  }
  return out;
}

template <typename T>
T* DeviceCopy(const std::vector<T>& host) {
  T* device = nullptr;
  EXPECT_EQ(cudaMalloc(&device, host.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
  return device;
}

class RmsNormTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(RmsNormTest, MatchesScalarReference) {
  const int64_t rows = 7, cols = GetParam();
  const float eps = 1e-6f;
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(rows * cols), w(cols);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = 1.0f + 0.1f * dist(rng);
  std::vector<float> expected = ReferenceRmsNorm(x, w, rows, cols, eps);

  float* dx = DeviceCopy(x);
  float* dw = DeviceCopy(w);
  float* dout = nullptr;
  ASSERT_EQ(cudaMalloc(&dout, x.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(RmsNormF32(dx, dw, dout, rows, cols, eps, nullptr), cudaSuccess);
  std::vector<float> got(x.size());
  ASSERT_EQ(cudaMemcpy(got.data(), dout, got.size() * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-4f * (1.0f + std::fabs(expected[i]))) << i;
  }

  std::vector<__nv_bfloat16> xb(x.size()), wb(w.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = __float2bfloat16_rn(x[i]);
  for (size_t i = 0; i < w.size(); ++i) wb[i] = __float2bfloat16_rn(w[i]);
  __nv_bfloat16* dxb = DeviceCopy(xb);
  __nv_bfloat16* dwb = DeviceCopy(wb);
  ASSERT_EQ(RmsNormBf16(dxb, dwb, dxb, rows, cols, eps, nullptr), cudaSuccess);  // in place
  ASSERT_EQ(cudaMemcpy(xb.data(), dxb, xb.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  for (size_t i = 0; i < xb.size(); ++i) {
    // bf16 keeps 8 bits of mantissa: inputs and output each round by <= 2^-8.
    ASSERT_NEAR(__bfloat162float(xb[i]), expected[i], 0.02f * (1.0f + std::fabs(expected[i])))
        << i;
  }
  EXPECT_EQ(RmsNormF32(dx, dw, dout, 0, cols, eps, nullptr), cudaErrorInvalidValue);
  cudaFree(dx);
  cudaFree(dw);
  cudaFree(dout);
  cudaFree(dxb);
  cudaFree(dwb);
}

INSTANTIATE_TEST_SUITE_P(Widths, RmsNormTest, ::testing::Values(1, 31, 512, 7168));

}  // namespace
}  // namespace yard::kernels::cuda
