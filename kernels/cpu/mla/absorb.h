// The two halves of kv_b_proj around latent attention (DESIGN.md, "MLA"): W_uk folded
// into the queries before it, W_uv applied to its output after, so attention itself
// never expands per-head keys or values.
//
// kv_b_proj as the checkpoint stores it: weight [heads · (nope + v_dim), kv_lora_rank]
// row-major, BF16 or FP8 e4m3fn with 128×128 block scales; rows h·(nope + v_dim) +
// [0, nope) are W_uk of head h, the next v_dim rows W_uv of head h. The weight is
// read in place (never widened into a copy).
#ifndef SWITCHYARD_KERNELS_CPU_MLA_ABSORB_H_
#define SWITCHYARD_KERNELS_CPU_MLA_ABSORB_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_view.h"

namespace yard::kernels::cpu {

struct KvBProjection {
  // n = heads · (qk_nope_head_dim + v_head_dim), k = kv_lora_rank.
  WeightView weight;
  int64_t heads = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
};

// InvalidArgument unless the weight is valid (ValidateWeight) and its shape matches
// heads, the head dims and kv_lora_rank (when kv_lora_rank > 0).
absl::Status ValidateKvBProjection(const KvBProjection& kv_b, int64_t kv_lora_rank = 0);

// q_absorbed[t, h, :] = W_uk,hᵀ · q_nope[t, h, :] for every token and head.
// q_nope: [tokens, heads, nope] fp32 at q_nope[t · token_stride + h · head_stride + d]
//   (e.g. inside q_b_proj's output [tokens, heads, nope + rope]: head_stride =
//   nope + rope, token_stride = heads · head_stride).
// q_absorbed: [tokens, heads, kv_lora_rank] fp32, contiguous (MlaSequenceQueries'
//   layout); must not overlap q_nope.
// Every output element sums over d in order, so results are bitwise independent of
// tokens and threads (for a given ISA). pool: nullptr means DefaultThreadPool().
void AbsorbQueries(const KvBProjection& kv_b, const float* q_nope, int64_t tokens,
                   int64_t token_stride, int64_t head_stride, float* q_absorbed,
                   ThreadPool* pool = nullptr);

struct ExpandValuesOptions {
  // How Gemm takes the latent outputs (gemm.h; kFp32 keeps results batch-invariant),
  // and the pool the heads are split over (nullptr: DefaultThreadPool()).
  GemmOptions gemm{.precision = ActivationPrecision::kFp32};
};

// values[t, h, :] = W_uv,h · o_latent[t, h, :].
// o_latent: [tokens, heads, kv_lora_rank] fp32, contiguous (MlaAttention's output).
// values: [tokens, heads, v_head_dim] fp32, contiguous (o_proj's input).
// Uses Gemm on each head's W_uv rows (a view into kv_b_proj); for FP8 that needs each
// head's W_uv to start on a 128-row scale block (true for V2/V3: 128 + 128 rows per
// head), otherwise a slower dot-product fallback runs.
void ExpandValues(const KvBProjection& kv_b, const float* o_latent, int64_t tokens, float* values,
                  const ExpandValuesOptions& options = {});

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_MLA_ABSORB_H_
