// RMSNorm on the GPU: out = x * rsqrt(mean(x²) + eps) * weight, one row per block.
// Built only under --config=cuda (nvcc, sm_90a).
#ifndef SWITCHYARD_KERNELS_CUDA_RMS_NORM_H_
#define SWITCHYARD_KERNELS_CUDA_RMS_NORM_H_

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace yard::kernels::cuda {

// x: [rows, cols] bf16, row-major, device memory.
// weight: [cols] bf16, device memory.
// out: [rows, cols] bf16, row-major, device memory (may alias x).
// Sums in fp32. Enqueues on `stream`; returns the launch error, if any.
cudaError_t RmsNormBf16(const __nv_bfloat16* x, const __nv_bfloat16* weight,
                        __nv_bfloat16* out, int64_t rows, int64_t cols, float eps,
                        cudaStream_t stream);

// The same over fp32 tensors.
cudaError_t RmsNormF32(const float* x, const float* weight, float* out, int64_t rows,
                       int64_t cols, float eps, cudaStream_t stream);

}  // namespace yard::kernels::cuda

#endif  // SWITCHYARD_KERNELS_CUDA_RMS_NORM_H_
