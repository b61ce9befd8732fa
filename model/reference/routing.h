// Expert selection of a MoE layer's router (`mlp.gate`), per token, as the Hugging
// Face DeepSeek-V2/V3 modeling code defines it (DESIGN.md, "Routing").
#ifndef SWITCHYARD_MODEL_REFERENCE_ROUTING_H_
#define SWITCHYARD_MODEL_REFERENCE_ROUTING_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "model/config.h"

namespace yard::model::reference {

// One routed expert chosen for a token and the weight its output is multiplied by.
struct ExpertChoice {
  int64_t expert = 0;
  float weight = 0.0f;
};

// Scores from router logits: softmax over all experts (ScoringFunc::kSoftmax) or an
// elementwise sigmoid (kSigmoid), in double. logits: [n_routed_experts] fp32;
// result: [n_routed_experts] fp32.
std::vector<float> RouterScores(const ModelConfig& config, absl::Span<const float> logits);

// Chooses config.num_experts_per_tok experts for one token and their weights.
//
// Choice, by config.topk_method:
//   greedy               top-k of the scores;
//   group_limited_greedy a group's score is its max score; keep the topk_group best
//                        groups, then top-k of the scores inside them;
//   noaux_tc             biased = scores + e_score_correction_bias; a group's score is
//                        the sum of its two largest biased scores; keep the topk_group
//                        best groups, then top-k of the biased scores inside them.
//                        (HF fills the dropped groups with 0.0 before its top-k, which
//                        could pick a dropped expert when the kept ones have negative
//                        biased scores; we only ever pick inside the kept groups, as
//                        DESIGN.md and the fused kernels of vLLM/SGLang do.)
// Weights: the unbiased scores of the chosen experts, then by model_type:
//   deepseek_v3  normalised to sum 1 (sum + 1e-20) if norm_topk_prob and k > 1, then
//                always times routed_scaling_factor;
//   deepseek_v2  normalised if norm_topk_prob and k > 1, otherwise times
//                routed_scaling_factor (HF's V2 code scales only in that branch).
// Ties (equal scores, or equal group scores) go to the lower index, and the result is
// in "top-k order": descending selection score, ties by lower expert index. That
// order is the order in which expert outputs are summed.
//
// scores: [n_routed_experts] fp32 (RouterScores). bias: [n_routed_experts] fp32 for
// noaux_tc, ignored (may be empty) otherwise.
// margin, if not null, receives how decisive the choice was, in router-logit units:
// the smallest gap between a kept and a dropped candidate (last kept vs best dropped
// group score, and the k-th chosen vs the best unchosen selection score), each
// divided by the slope s(1 - s) of the kept score; +inf when nothing was dropped. An
// implementation whose router logits differ by more than that may route differently.
std::vector<ExpertChoice> RouteToken(const ModelConfig& config,
                                     absl::Span<const float> scores,
                                     absl::Span<const float> bias,
                                     double* margin = nullptr);

}  // namespace yard::model::reference

#endif  // SWITCHYARD_MODEL_REFERENCE_ROUTING_H_
