#include "model/reference/ops.h"

#include <cmath>

#include "common/check.h"

namespace yard::model::reference {

double Dot(absl::Span<const float> a, absl::Span<const float> b) {
  YARD_CHECK(a.size() == b.size(), "Dot: length mismatch");
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    sum += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  }
  return sum;
}

std::vector<float> MatVec(const Matrix& m, absl::Span<const float> x) {
  YARD_CHECK(static_cast<int64_t>(x.size()) == m.cols, "MatVec: x has wrong length");
  std::vector<float> y(m.rows);
  for (int64_t r = 0; r < m.rows; ++r) y[r] = static_cast<float>(Dot(m.row(r), x));
  return y;
}

std::vector<float> RmsNorm(absl::Span<const float> x, absl::Span<const float> weight,
                           double eps) {
  YARD_CHECK(x.size() == weight.size(), "RmsNorm: weight has wrong length");
  double sum_sq = 0.0;
  for (float v : x) sum_sq += static_cast<double>(v) * v;
  const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(x.size()) + eps);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    y[i] = static_cast<float>(x[i] * inv_rms * weight[i]);
  }
  return y;
}

double Silu(double v) { return v / (1.0 + std::exp(-v)); }

std::vector<float> SwiGlu(const SwiGluWeights& ffn, absl::Span<const float> x) {
  std::vector<float> gate = MatVec(ffn.gate, x);
  std::vector<float> up = MatVec(ffn.up, x);
  std::vector<float> inner(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    inner[i] = static_cast<float>(Silu(gate[i]) * up[i]);
  }
  return MatVec(ffn.down, inner);
}

void AddScaled(absl::Span<const float> x, double scale, absl::Span<float> y) {
  YARD_CHECK(x.size() == y.size(), "AddScaled: length mismatch");
  for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(y[i] + scale * x[i]);
}

}  // namespace yard::model::reference
