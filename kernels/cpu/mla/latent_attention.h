// Multi-head latent attention (DESIGN.md, "MLA") straight on the paged latent KV
// cache, with W_uk absorbed into the queries and W_uv applied afterwards (absorb.h):
// for every query row (query q, head h)
//   out[q, h, :] = Σ_t softmax_t(scale · (q_absorbed[q, h, :] · c_kv[t] +
//                                        q_rope[q, h, :] · k_rope[t])) · c_kv[t]
// over the tokens t the query sees. All heads share each cache row (MQA over the
// 576-dim latent), so a call reads each row once per block of query rows, not once
// per head: decode (one query per sequence) and chunked prefill (many queries of one
// sequence) are the same kernel with more rows.
//
// Cache contract (one layer; the engine's allocator writes exactly this):
//   pool: [num_blocks, block_tokens, kv_lora_rank + rope_dim] BF16 (uint16_t bits),
//   row = [c_kv (kv_lora_rank, RMS-normed) | k_rope (rope_dim, RoPE'd)];
//   token t of a sequence is row t % block_tokens of block block_table[t / block_tokens].
//
// Threads: the tokens a query sees are cut into splits of kv_split_tokens from token
// 0; (query block, split) pairs are spread over the pool, each producing a partial
// softmax state, and a query block's partials are merged in split order. Which thread
// ran what never changes a result: for a given ISA, every output row is bitwise the
// same whatever the thread count, whichever other sequences share the call, and
// whether its query ran as decode or inside any prefill chunk (the per-row math
// depends only on the query, the cache and kv_split_tokens).
#ifndef SWITCHYARD_KERNELS_CPU_MLA_LATENT_ATTENTION_H_
#define SWITCHYARD_KERNELS_CPU_MLA_LATENT_ATTENTION_H_

#include <cstdint>

#include "absl/types/span.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {

// One layer's paged latent cache, borrowed (must outlive the call).
struct LatentCacheView {
  // [num_blocks, block_tokens, kv_lora_rank + rope_dim] bf16 bits, row-major.
  const uint16_t* pool = nullptr;
  int64_t num_blocks = 0;
  int64_t block_tokens = 0;
  int64_t kv_lora_rank = 0;
  int64_t rope_dim = 0;

  int64_t latent_dim() const { return kv_lora_rank + rope_dim; }
};

// The queries of one sequence: `num_queries` consecutive positions starting at
// `first_position`, whose own cache rows are already written. Query i sees tokens
// [0, first_position + i]. Decode: first_position = tokens - 1, num_queries = 1.
// A prefill chunk of n tokens at [p0, p0 + n): first_position = p0, num_queries = n.
struct MlaSequenceQueries {
  // [ceil((first_position + num_queries) / block_tokens)] int32 block ids, borrowed.
  const int32_t* block_table = nullptr;
  int64_t first_position = 0;
  int64_t num_queries = 1;
  // [num_queries, heads, kv_lora_rank] fp32, contiguous: W_ukᵀ · q_nope per head
  // (AbsorbQueries).
  const float* q_absorbed = nullptr;
  // [num_queries, heads, rope_dim] fp32, contiguous, RoPE'd (interleaved pairs, like
  // k_rope in the cache).
  const float* q_rope = nullptr;
  // [num_queries, heads, kv_lora_rank] fp32, contiguous; overwritten.
  float* out = nullptr;
};

// How the dot products of attention are computed.
enum class MlaPrecision {
  // FP32 queries and probabilities times the BF16 cache widened to FP32 (FMA): the
  // cache's rounding is the only one beyond FP32 arithmetic.
  kFp32,
  // vdpbf16ps on AVX-512: queries and softmax probabilities rounded to BF16 (relative
  // 2^-9 each, like a BF16 model's activations), FP32 sums; about twice the FLOP rate,
  // and attention is compute-bound on CPUs (~30 FLOP per cache byte at 16 heads).
  // Deterministic like kFp32, with different bits. Other ISAs run kFp32.
  kBf16,
};

struct MlaAttentionOptions {
  // Tokens per split of a query's visible tokens (a positive multiple of 32). Results
  // depend on it (the merge order), so keep it fixed for reproducible runs. Smaller
  // splits spread a long single sequence over more threads; each split costs one
  // merge of a [rows, kv_lora_rank] state.
  int64_t kv_split_tokens = 256;
  // Query rows (queries × heads) per block of a prefill chunk: each block streams
  // the cache once, so larger blocks read less and need more scratch (rows ×
  // kv_lora_rank × 8 bytes). At least one query per block.
  int64_t rows_per_block = 64;
  MlaPrecision precision = MlaPrecision::kFp32;
  // Threads to run on; nullptr means DefaultThreadPool(). Must outlive the call.
  ThreadPool* pool = nullptr;
};

// Attention of every query of every sequence in `batch` (decode and prefill chunks
// may be mixed). Checks (YARD_CHECK: these are the engine's invariants, not input)
// the shapes and every block id the queries touch against cache.num_blocks.
// softmax_scale: 1/sqrt(qk_nope + qk_rope), times mscale² under YaRN.
// Runs on the ISA of ActiveIsa() at call time.
void MlaAttention(const LatentCacheView& cache, absl::Span<const MlaSequenceQueries> batch,
                  int64_t heads, float softmax_scale, const MlaAttentionOptions& options = {});

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_MLA_LATENT_ATTENTION_H_
