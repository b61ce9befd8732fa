#include "model/reference/moe.h"

#include "model/reference/ops.h"

namespace yard::model::reference {

std::vector<float> MoeForward(const ModelConfig& config, const MoeWeights& moe,
                              absl::Span<const float> x,
                              std::vector<ExpertChoice>* choices, double* margin) {
  // The router runs in FP32 (as released checkpoints' gate does), never quantized.
  std::vector<float> logits = MatVec(moe.gate, x);
  std::vector<float> scores = RouterScores(config, logits);
  std::vector<ExpertChoice> chosen = RouteToken(config, scores, moe.e_score_correction_bias, margin);

  // Accumulated in double, rounded once (ops.h's precision rule).
  std::vector<double> sum(x.size(), 0.0);
  for (const ExpertChoice& c : chosen) {
    std::vector<float> y = SwiGlu(moe.experts[c.expert], x);
    for (size_t i = 0; i < y.size(); ++i) sum[i] += static_cast<double>(c.weight) * y[i];
  }
  if (moe.shared) {
    std::vector<float> y = SwiGlu(*moe.shared, x);
    for (size_t i = 0; i < y.size(); ++i) sum[i] += y[i];
  }
  std::vector<float> out(sum.begin(), sum.end());
  if (choices != nullptr) *choices = std::move(chosen);
  return out;
}

}  // namespace yard::model::reference
