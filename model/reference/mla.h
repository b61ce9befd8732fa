// Multi-head latent attention (DESIGN.md, "MLA") for one token at a time, in the
// straightforward expanded form: K and V of every head are recomputed from the cached
// latent at each step. It is the oracle, so clarity beats speed; the absorbed form
// the engine uses must match it.
#ifndef SWITCHYARD_MODEL_REFERENCE_MLA_H_
#define SWITCHYARD_MODEL_REFERENCE_MLA_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "model/config.h"
#include "model/reference/rope.h"
#include "model/reference/weights.h"

namespace yard::model::reference {

// The per-layer KV cache: only the compressed latent and the shared rope key of each
// token, never per-head keys or values. Row t is the token at position t.
struct LatentCache {
  int64_t tokens = 0;
  std::vector<float> c_kv;    // [tokens, kv_lora_rank] fp32: RMSNorm(kv_a_layernorm)'d
  std::vector<float> k_rope;  // [tokens, qk_rope_head_dim] fp32: RoPE'd, interleaved
};

// Attends the token at `position` (== cache.tokens: positions are 0, 1, 2, ...) over
// itself and every earlier cached token, appending its c_kv and k_rope to `cache`
// first. Returns o_proj of the heads' outputs concatenated head-major.
//
// x: [hidden] fp32, the already input_layernorm'd hidden state; result: [hidden] fp32.
std::vector<float> MlaForward(const ModelConfig& config, const Rope& rope,
                              const AttentionWeights& weights, absl::Span<const float> x,
                              int64_t position, LatentCache& cache);

}  // namespace yard::model::reference

#endif  // SWITCHYARD_MODEL_REFERENCE_MLA_H_
