// The MoE FFN of one token: router, routed experts summed in top-k order, shared
// experts (DESIGN.md, "Routing" and "Experts").
#ifndef SWITCHYARD_MODEL_REFERENCE_MOE_H_
#define SWITCHYARD_MODEL_REFERENCE_MOE_H_

#include <vector>

#include "absl/types/span.h"
#include "model/config.h"
#include "model/reference/routing.h"
#include "model/reference/weights.h"

namespace yard::model::reference {

// Returns sum_i weight_i · expert_i(x) over the routed choices in top-k order, plus
// the shared experts' output (the residual is the caller's). If `choices` is not
// null it receives the routing decision, and `margin` its deciding gap (RouteToken).
// x: [hidden] fp32, the post_attention_layernorm'd hidden state; result: [hidden] fp32.
std::vector<float> MoeForward(const ModelConfig& config, const MoeWeights& moe,
                              absl::Span<const float> x,
                              std::vector<ExpertChoice>* choices = nullptr,
                              double* margin = nullptr);

}  // namespace yard::model::reference

#endif  // SWITCHYARD_MODEL_REFERENCE_MOE_H_
