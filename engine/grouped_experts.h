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
  // on the other rows of the call (batch-invariant). With kAuto the whole call takes
  // BF16 activations when it holds at least gemm.bf16_min_rows distinct tokens.
  explicit GroupedSwiGlu(kernels::cpu::GemmOptions gemm) : gemm_(gemm) {}

  // out[i] = down(silu(gate·x_i) ⊙ up·x_i) with the weights of experts[expert_of_row[i]].
  // experts: the candidate experts (same shapes); rows: [n] pointers to fp32 rows of
  // `hidden` values (may repeat); expert_of_row: [n] indices into experts, each
  // non-null there; out: [n, hidden] fp32, row-major, must not overlap the inputs.
  void Run(absl::Span<const SwiGluViews* const> experts, absl::Span<const float* const> rows,
           absl::Span<const int32_t> expert_of_row, int64_t hidden, float* out);

 private:
  const kernels::cpu::GemmOptions gemm_;
  std::vector<float> gathered_, gate_, up_, down_;
  std::vector<const float*> distinct_;  // the call's distinct rows (tokens)
  std::vector<std::vector<int64_t>> rows_of_expert_;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_GROUPED_EXPERTS_H_
