// Plain-loop FP32 math shared by the reference forward: matrix-vector products,
// RMSNorm, SiLU and the SwiGLU FFN.
//
// Precision rule, applied everywhere in model/reference: tensors (weights and
// activations) are stored as FP32, and every reduction (dot products, sums of
// squares, softmax denominators) accumulates in double and rounds to FP32 once at
// the end. That makes the oracle's result close to the exact value and independent of
// loop order, so a faster path is compared against the math, not against an
// accident of summation order.
#ifndef SWITCHYARD_MODEL_REFERENCE_OPS_H_
#define SWITCHYARD_MODEL_REFERENCE_OPS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace yard::model::reference {

// A linear layer's weight. w: [rows, cols] fp32 row-major ([out, in], as in HF).
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> w;

  // Row r: [cols] fp32.
  absl::Span<const float> row(int64_t r) const {
    return absl::MakeConstSpan(w.data() + r * cols, cols);
  }
};

// The three projections of a SwiGLU FFN of inner width `gate.rows`.
struct SwiGluWeights {
  Matrix gate;  // [inner, hidden]
  Matrix up;    // [inner, hidden]
  Matrix down;  // [hidden, inner]
};

// Returns sum_i a[i]*b[i], accumulated in double. a, b: [n] fp32.
double Dot(absl::Span<const float> a, absl::Span<const float> b);

// Returns m·x. x: [m.cols] fp32; result: [m.rows] fp32.
std::vector<float> MatVec(const Matrix& m, absl::Span<const float> x);

// Returns x * rsqrt(mean(x²) + eps) * weight, the norm computed in double.
// x, weight: [n] fp32; result: [n] fp32.
std::vector<float> RmsNorm(absl::Span<const float> x, absl::Span<const float> weight,
                           double eps);

// silu(v) = v * sigmoid(v), in double.
double Silu(double v);

// Returns down(silu(gate·x) ⊙ up·x). x: [hidden] fp32; result: [hidden] fp32.
std::vector<float> SwiGlu(const SwiGluWeights& ffn, absl::Span<const float> x);

// y += scale * x, elementwise. x, y: [n] fp32.
void AddScaled(absl::Span<const float> x, double scale, absl::Span<float> y);

}  // namespace yard::model::reference

#endif  // SWITCHYARD_MODEL_REFERENCE_OPS_H_
