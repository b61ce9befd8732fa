// Rotary position embedding with DeepSeek's YaRN scaling, on the interleaved pairs
// (x[2i], x[2i+1]) the checkpoints store, from a precomputed cos/sin table.
//
// The frequencies follow Hugging Face's DeepSeek-V2/V3 code (as the FP32 oracle,
// model/reference/rope.cc, does): inv_freq[i] = base^(-2i/dim), blended under YaRN
// between the interpolated (/factor) and extrapolated frequency by a linear ramp
// between the correction dims of beta_fast and beta_slow; cos and sin are multiplied
// by mscale = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim). Angles
// and their cos/sin are computed in double, then rounded to FP32 once, into the
// table; the rotation itself is FP32.
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ROPE_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ROPE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {

// `rope_scaling` of type "yarn" (the fields of config.json, same defaults).
struct YarnParams {
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct RopeParams {
  // qk_rope_head_dim: even, > 0.
  int64_t dim = 64;
  // rope_theta.
  double base = 10000.0;
  // Absent: plain RoPE (mscale 1).
  std::optional<YarnParams> yarn;
};

// cos/sin of every (position, pair) for positions [0, max_positions), laid out for
// the interleaved rotation. Immutable after construction; thread-safe to share.
// Memory: 2 · max_positions · dim · 4 bytes (64 dims × 32K positions: 16 MiB).
class RopeTable {
 public:
  // InvalidArgument for an odd or non-positive dim, base <= 1, max_positions <= 0, or
  // YaRN factor <= 0.
  static absl::StatusOr<RopeTable> Create(const RopeParams& params, int64_t max_positions);

  int64_t dim() const { return dim_; }
  int64_t max_positions() const { return max_positions_; }
  // [dim / 2] fp64: the angle per position of pair i.
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  double mscale() const { return mscale_; }

  // [dim] fp32: cos(position · inv_freq[i / 2]) · mscale at i (each pair's cosine
  // twice). position in [0, max_positions).
  const float* cos(int64_t position) const { return cos_.data() + position * dim_; }
  // [dim] fp32: (-sin, +sin)(position · inv_freq[i / 2]) · mscale at (2i, 2i + 1).
  const float* sin(int64_t position) const { return sin_.data() + position * dim_; }

 private:
  RopeTable() = default;

  int64_t dim_ = 0;
  int64_t max_positions_ = 0;
  std::vector<double> inv_freq_;
  double mscale_ = 1.0;
  std::vector<float> cos_;
  std::vector<float> sin_;
};

// Rotates, in place, the rope slice of `heads` heads of each token by the token's
// position: (a, b) = (x[2i], x[2i+1]) → (a·c - b·s, b·c + a·s) with c, s of
// RopeTable (mscale included).
// x: the first rope element of token t, head h is x[t · token_stride + h · head_stride];
//    each slice is [table.dim()] fp32 (e.g. q_rope inside q = [tokens, heads,
//    nope + rope]: x = q + nope, head_stride = nope + rope, token_stride = heads ·
//    head_stride; k_rope of the kv_a output: heads = 1).
// positions: [tokens] int64, each in [0, table.max_positions()) (checked).
void ApplyRope(const RopeTable& table, const int64_t* positions, int64_t tokens, int64_t heads,
               float* x, int64_t token_stride, int64_t head_stride, ThreadPool* pool = nullptr);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ROPE_H_
