#include "model/reference/mla.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace yard::model::reference {
namespace {

// q for all heads: [H * qk_head_dim] fp32, head-major, each head [q_nope | q_rope].
std::vector<float> Queries(const ModelConfig& config, const AttentionWeights& w,
                           absl::Span<const float> x) {
  if (w.q_proj) return MatVec(*w.q_proj, x);
  std::vector<float> q_latent = MatVec(*w.q_a, x);
  q_latent = RmsNorm(q_latent, w.q_a_norm, config.rms_norm_eps);
  return MatVec(*w.q_b, q_latent);
}

}  // namespace

std::vector<float> MlaForward(const ModelConfig& config, const Rope& rope,
                              const AttentionWeights& w, absl::Span<const float> x,
                              int64_t position, LatentCache& cache) {
  YARD_CHECK(position == cache.tokens, "MlaForward: position must equal cache length");
  const int64_t heads = config.num_attention_heads;
  const int64_t nope = config.qk_nope_head_dim;
  const int64_t rope_dim = config.qk_rope_head_dim;
  const int64_t v_dim = config.v_head_dim;
  const int64_t rank = config.kv_lora_rank;

  // Latent of this token: kv_a output is [c_kv (rank) | k_rope (rope_dim)].
  std::vector<float> kv_a = MatVec(w.kv_a, x);
  std::vector<float> c_kv =
      RmsNorm(absl::MakeConstSpan(kv_a.data(), rank), w.kv_a_norm, config.rms_norm_eps);
  std::vector<float> k_rope(kv_a.begin() + rank, kv_a.end());
  rope.Apply(position, absl::MakeSpan(k_rope));
  cache.c_kv.insert(cache.c_kv.end(), c_kv.begin(), c_kv.end());
  cache.k_rope.insert(cache.k_rope.end(), k_rope.begin(), k_rope.end());
  ++cache.tokens;
  const int64_t tokens = cache.tokens;

  std::vector<float> q = Queries(config, w, x);
  const double scale = config.SoftmaxScale();
  std::vector<float> heads_out(heads * v_dim);
  std::vector<float> k_nope(nope);
  std::vector<float> scores(tokens);
  std::vector<double> out(v_dim);
  for (int64_t h = 0; h < heads; ++h) {
    float* q_head = q.data() + h * config.qk_head_dim();
    absl::Span<const float> q_nope(q_head, nope);
    absl::Span<float> q_rope(q_head + nope, rope_dim);
    rope.Apply(position, q_rope);
    const int64_t uk_row = h * (nope + v_dim);  // first W_uk row of head h in kv_b
    const int64_t uv_row = uk_row + nope;       // first W_uv row of head h

    // Scores over every cached token; k_nope expanded from the latent: W_uk_h·c_kv[t].
    double max_score = -INFINITY;
    for (int64_t t = 0; t < tokens; ++t) {
      absl::Span<const float> latent(cache.c_kv.data() + t * rank, rank);
      for (int64_t d = 0; d < nope; ++d) {
        k_nope[d] = static_cast<float>(Dot(w.kv_b.row(uk_row + d), latent));
      }
      const double dot =
          Dot(q_nope, k_nope) +
          Dot(q_rope, absl::MakeConstSpan(cache.k_rope.data() + t * rope_dim, rope_dim));
      scores[t] = static_cast<float>(dot * scale);
      max_score = std::max<double>(max_score, scores[t]);
    }
    double denom = 0.0;
    for (int64_t t = 0; t < tokens; ++t) denom += std::exp(scores[t] - max_score);

    // Output: sum_t p_t · W_uv_h·c_kv[t].
    std::fill(out.begin(), out.end(), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
      const double p = std::exp(scores[t] - max_score) / denom;
      absl::Span<const float> latent(cache.c_kv.data() + t * rank, rank);
      for (int64_t d = 0; d < v_dim; ++d) {
        out[d] += p * static_cast<float>(Dot(w.kv_b.row(uv_row + d), latent));
      }
    }
    for (int64_t d = 0; d < v_dim; ++d) {
      heads_out[h * v_dim + d] = static_cast<float>(out[d]);
    }
  }
  return MatVec(w.o, heads_out);
}

}  // namespace yard::model::reference
