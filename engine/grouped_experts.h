// Grouped SwiGLU experts: rows that chose the same expert are computed together, so
// each active expert's weights are read once per call, and all experts' matmuls share
// two passes over the thread pool (GemmBatch: gate and up, then down). Used by the
// in-process expert backend and by expert workers, so both give the same bits.
#ifndef SWITCHYARD_ENGINE_GROUPED_EXPERTS_H_
#define SWITCHYARD_ENGINE_GROUPED_EXPERTS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/model_weights.h"
#include "kernels/cpu/gemm.h"

namespace yard::engine {

// Not thread-safe (scratch buffers, kept between calls): one caller thread at a time.
class GroupedSwiGlu {
 public:
  // gemm: how the matmuls take activations; with kFp32 a row's result does not depend
  // on the other rows of the call (batch-invariant). With kAuto the rows of prefill
  // chunks take BF16 activations when they hold at least gemm.bf16_min_rows distinct
  // tokens, and every other row keeps FP32, as the dense matmuls of a step do.
  explicit GroupedSwiGlu(kernels::cpu::GemmOptions gemm) : gemm_(gemm) {}

  // out[i] = down(silu(gate·x_i) ⊙ up·x_i) with the weights of experts[expert_of_row[i]].
  // experts: the candidate experts (same shapes); rows: [n] pointers to fp32 rows of
  // `hidden` values (may repeat); expert_of_row: [n] indices into experts, each
  // non-null there; from_prefill: [n] nonzero where the row's token is part of a
  // prefill chunk, or empty (no row is); out: [n, hidden] fp32, row-major, must not
  // overlap the inputs.
  void Run(absl::Span<const SwiGluViews* const> experts, absl::Span<const float* const> rows,
           absl::Span<const int32_t> expert_of_row, absl::Span<const uint8_t> from_prefill,
           int64_t hidden, float* out);

 private:
  const kernels::cpu::GemmOptions gemm_;
  std::vector<float> gathered_, gate_, up_, down_;
  std::vector<const float*> distinct_;  // the call's distinct prefill rows (tokens)
  // Per expert, its rows: those that may take BF16 first, then the FP32 ones.
  std::vector<std::vector<int64_t>> rows_of_expert_;
  std::vector<int64_t> bf16_rows_of_expert_;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_GROUPED_EXPERTS_H_
