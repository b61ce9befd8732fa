#include "kernels/cpu/mla/absorb.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "kernels/cpu/mla/mla_dispatch.h"

namespace yard::kernels::cpu {
namespace {

// Columns of W_uk per unit of work: one FP8 scale block, and small enough that a
// V2/V3 head (512 columns) gives four units.
constexpr int64_t kColumnsPerUnit = 128;
// Below this many multiply-adds a call runs on the caller alone.
constexpr int64_t kMinParallelMacs = int64_t{1} << 18;

}  // namespace

absl::Status ValidateKvBProjection(const KvBProjection& kv_b, int64_t kv_lora_rank) {
  if (absl::Status s = ValidateWeight(kv_b.weight); !s.ok()) return s;
  if (kv_b.heads <= 0 || kv_b.qk_nope_head_dim <= 0 || kv_b.v_head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_b_proj: heads, qk_nope_head_dim and v_head_dim must be positive, got ",
                     kv_b.heads, ", ", kv_b.qk_nope_head_dim, ", ", kv_b.v_head_dim));
  }
  const int64_t rows = kv_b.heads * (kv_b.qk_nope_head_dim + kv_b.v_head_dim);
  if (kv_b.weight.n != rows || (kv_lora_rank > 0 && kv_b.weight.k != kv_lora_rank)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_b_proj: shape [", kv_b.weight.n, ",", kv_b.weight.k, "], expected [", rows,
                     ",", kv_lora_rank > 0 ? kv_lora_rank : kv_b.weight.k, "]"));
  }
  return absl::OkStatus();
}

void AbsorbQueries(const KvBProjection& kv_b, const float* q_nope, int64_t tokens,
                   int64_t token_stride, int64_t head_stride, float* q_absorbed, ThreadPool* pool) {
  YARD_CHECK(ValidateKvBProjection(kv_b).ok(), "AbsorbQueries: bad kv_b_proj");
  if (tokens <= 0) return;
  const internal::AbsorbKernel& kernel = internal::ActiveAbsorbKernel();
  const int64_t rank = kv_b.weight.k;
  const int64_t nope = kv_b.qk_nope_head_dim;
  const int64_t per_head = nope + kv_b.v_head_dim;
  const bool fp8 = kv_b.weight.type == WeightType::kFp8E4m3;
  const int64_t col_units = (rank + kColumnsPerUnit - 1) / kColumnsPerUnit;
  const int64_t units = kv_b.heads * col_units;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t h = u / col_units;
      const int64_t col_begin = (u % col_units) * kColumnsPerUnit;
      kernel.absorb_query(q_nope + h * head_stride, tokens, token_stride, kv_b.weight.data, fp8,
                          kv_b.weight.scale_inv, rank, h * per_head, nope, col_begin,
                          std::min(rank, col_begin + kColumnsPerUnit), q_absorbed + h * rank,
                          kv_b.heads * rank);
    }
  };
  ThreadPool& p = pool != nullptr ? *pool : DefaultThreadPool();
  if (p.num_threads() == 1 || tokens * kv_b.heads * nope * rank < kMinParallelMacs) {
    run(0, units);
  } else {
    p.ParallelFor(units, run);
  }
}

void ExpandValues(const KvBProjection& kv_b, const float* o_latent, int64_t tokens, float* values,
                  const ExpandValuesOptions& options) {
  YARD_CHECK(ValidateKvBProjection(kv_b).ok(), "ExpandValues: bad kv_b_proj");
  if (tokens <= 0) return;
  const int64_t rank = kv_b.weight.k;
  const int64_t nope = kv_b.qk_nope_head_dim;
  const int64_t v_dim = kv_b.v_head_dim;
  const int64_t per_head = nope + v_dim;
  const int64_t heads = kv_b.heads;
  const bool fp8 = kv_b.weight.type == WeightType::kFp8E4m3;
  // Gemm indexes FP8 scales from the view's first row, so a head's W_uv view must
  // start on a scale block.
  const bool gemm_fits = !fp8 || (nope % kFp8BlockSize == 0 && per_head % kFp8BlockSize == 0);
  ThreadPool& pool = options.gemm.pool != nullptr ? *options.gemm.pool : DefaultThreadPool();
  GemmOptions head_gemm = options.gemm;
  head_gemm.pool = &pool;
  const internal::AbsorbKernel* fallback = gemm_fits ? nullptr : &internal::ActiveAbsorbKernel();
  const int64_t scale_cols = (rank + kFp8BlockSize - 1) / kFp8BlockSize;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h) {
      const int64_t row0 = h * per_head + nope;
      const float* x = o_latent + h * rank;
      float* y = values + h * v_dim;
      if (fallback != nullptr) {
        fallback->expand_value(x, tokens, heads * rank, kv_b.weight.data, fp8,
                               kv_b.weight.scale_inv, rank, row0, v_dim, y, heads * v_dim);
        continue;
      }
      WeightView w_uv = kv_b.weight;
      w_uv.n = v_dim;
      if (fp8) {
        w_uv.data = static_cast<const uint8_t*>(kv_b.weight.data) + row0 * rank;
        w_uv.scale_inv = kv_b.weight.scale_inv + (row0 / kFp8BlockSize) * scale_cols;
      } else {
        w_uv.data = static_cast<const uint16_t*>(kv_b.weight.data) + row0 * rank;
      }
      // Inside the pool's ParallelFor this nested Gemm runs on this thread alone
      // (thread_pool.h), which is what we want: heads are the parallel axis.
      Gemm(x, tokens, heads * rank, w_uv, y, heads * v_dim, head_gemm);
    }
  };
  if (pool.num_threads() == 1 || tokens * heads * v_dim * rank < kMinParallelMacs) {
    run(0, heads);
  } else {
    pool.ParallelFor(heads, run);
  }
}

}  // namespace yard::kernels::cpu
