// The interface between the MLA dispatchers (latent_attention.cc, absorb.cc; generic
// x86-64) and their per-ISA bodies (mla_{avx512,avx2,scalar}.cc, instantiations of
// mla_impl.h and absorb_impl.h). Internal to kernels/cpu/mla.
//
// Only plain declarations live here (see gemm_kernels.h for why).
#ifndef SWITCHYARD_KERNELS_CPU_MLA_MLA_KERNELS_H_
#define SWITCHYARD_KERNELS_CPU_MLA_MLA_KERNELS_H_

#include <cstdint>

namespace yard::kernels::cpu::internal {

// The cache and the math shared by every row of a call.
struct MlaShape {
  // pool: [num_blocks, block_tokens, kv_lora_rank + rope_dim] bf16 bits.
  const uint16_t* pool;
  int64_t block_tokens;
  int64_t kv_lora_rank;
  int64_t rope_dim;
  float softmax_scale;
  // BF16 dot products (vdpbf16ps) with queries and probabilities rounded to BF16;
  // ignored (FP32) by ISAs without them. Selects the layout of the partial state.
  bool bf16;
};

// A block of query rows of one sequence: row i is (query i / heads, head i % heads)
// and sees the cached tokens [0, kv_len_first + i / heads).
struct MlaRowBlock {
  // [ceil(kv tokens / block_tokens)] int32 block ids.
  const int32_t* block_table;
  // q_absorbed: [rows, kv_lora_rank] fp32; q_rope: [rows, rope_dim] fp32.
  const float* q_absorbed;
  const float* q_rope;
  int64_t rows;
  int64_t heads;
  int64_t kv_len_first;
};

// A partial softmax state of `rows` rows (the running max m, the sum l of
// e^(score - m), and the unnormalised output o) lives in one float array of
// partial_floats(rows, kv_lora_rank) elements, in an ISA-private layout.
struct MlaKernel {
  int64_t (*partial_floats)(int64_t rows, int64_t kv_lora_rank);
  int64_t (*scratch_floats)(int64_t rows, int64_t kv_lora_rank, int64_t rope_dim);
  // The partial state of the rows over cached tokens [t_begin, t_end) (t_begin a
  // multiple of 32), written to `partial`. `scratch` holds scratch_floats(...) floats.
  void (*attend)(const MlaShape& shape, const MlaRowBlock& block, int64_t t_begin, int64_t t_end,
                 float* partial, float* scratch);
  // acc ⊕= part: the state over both token ranges (part's after acc's).
  void (*merge)(const MlaShape& shape, float* acc, const float* part, int64_t rows);
  // out = o / l. out: [rows, kv_lora_rank] fp32.
  void (*finish)(const MlaShape& shape, const float* acc, int64_t rows, float* out);
};

// The absorbed projections of kv_b_proj (absorb.h). w: kv_b_proj's weight, [rows of
// all heads, k] row-major (k = kv_lora_rank), BF16 bits or FP8 bytes; scale: FP8
// only, [ceil(rows / 128), ceil(k / 128)] fp32 (value = fp8 × scale), else nullptr.
struct AbsorbKernel {
  // out[t, c] = Σ_{d < nope} q_nope[t, d] · w[row0 + d, c] for t < tokens and c in
  // [col_begin, col_end) (col_begin a multiple of 128).
  // q_nope: row t at q_nope + t · q_stride, [nope] fp32.
  // out: element (t, c) at out[t · out_stride + c], fp32.
  void (*absorb_query)(const float* q_nope, int64_t tokens, int64_t q_stride, const void* w,
                       bool fp8, const float* scale, int64_t k, int64_t row0, int64_t nope,
                       int64_t col_begin, int64_t col_end, float* out, int64_t out_stride);
  // out[t, j] = Σ_{c < k} o_latent[t, c] · w[row0 + j, c] for t < tokens, j < v_dim.
  // o_latent: row t at o_latent + t · o_stride, [k] fp32; out: row t at
  // out + t · out_stride, [v_dim] fp32. (The fallback for FP8 heads whose rows do not
  // start on a scale block; Gemm does the aligned ones.)
  void (*expand_value)(const float* o_latent, int64_t tokens, int64_t o_stride, const void* w,
                       bool fp8, const float* scale, int64_t k, int64_t row0, int64_t v_dim,
                       float* out, int64_t out_stride);
};

MlaKernel Avx512MlaKernel();
MlaKernel Avx2MlaKernel();
MlaKernel ScalarMlaKernel();
AbsorbKernel Avx512AbsorbKernel();
AbsorbKernel Avx2AbsorbKernel();
AbsorbKernel ScalarAbsorbKernel();

}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_MLA_MLA_KERNELS_H_
