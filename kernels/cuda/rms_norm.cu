#include "kernels/cuda/rms_norm.h"

namespace yard::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float ToFloat(float v) { return v; }
__device__ inline float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline void Store(float* p, float v) { *p = v; }
__device__ inline void Store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Block-wide sum: warp shuffles, then one value per warp through shared memory.
__device__ float BlockSum(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0f;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset /= 2) {
      v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    if (lane == 0) warp_sums[0] = v;
  }
  __syncthreads();
  return warp_sums[0];
}

template <typename T>
__global__ void RmsNormKernel(const T* x, const T* weight, T* out, int64_t cols,
                              float eps) {
  const T* row = x + blockIdx.x * cols;
  T* out_row = out + blockIdx.x * cols;
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = ToFloat(row[i]);
    sum_sq += v * v;
  }
  const float inv_rms = rsqrtf(BlockSum(sum_sq) / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    Store(&out_row[i], ToFloat(row[i]) * inv_rms * ToFloat(weight[i]));
  }
}

template <typename T>
cudaError_t Launch(const T* x, const T* weight, T* out, int64_t rows, int64_t cols,
                   float eps, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || rows > 0x7fffffff) return cudaErrorInvalidValue;
  RmsNormKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, out,
                                                                        cols, eps);
  return cudaGetLastError();
}

}  // namespace

cudaError_t RmsNormBf16(const __nv_bfloat16* x, const __nv_bfloat16* weight,
                        __nv_bfloat16* out, int64_t rows, int64_t cols, float eps,
                        cudaStream_t stream) {
  return Launch(x, weight, out, rows, cols, eps, stream);
}

cudaError_t RmsNormF32(const float* x, const float* weight, float* out, int64_t rows,
                       int64_t cols, float eps, cudaStream_t stream) {
  return Launch(x, weight, out, rows, cols, eps, stream);
}

}  // namespace yard::kernels::cuda
