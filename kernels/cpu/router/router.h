// MoE router (`mlp.gate`) scoring and expert selection for a batch of tokens, for
// every routing method of DeepSeek-V2/V3 (DESIGN.md, "Routing"), with exactly the
// semantics of the FP32 oracle (model/reference/routing.cc): the same scores, the
// same expert ids in the same order, the same weights, bit for bit.
//
// Why no vector path: expert choice is a comparison of scores, so a score that
// differs in its last bit can flip a near-tie and route a token elsewhere. The
// oracle computes scores, choice values, group scores and weights in double with
// libm's exp; this file does the identical operations in the identical order (it is
// generic x86-64 code, compiled without FMA contraction, like the oracle), which is
// what makes the ids identical. The cost is small beside the gate matmul that
// produces the logits (n_experts exp calls and a selection per token, spread over
// the pool by token).
//
// Ties (equal choice values or group scores) go to the lower index. The output of a
// token is in "top-k order": descending choice value, ties by lower expert index; it
// is the order in which expert outputs are summed.
#ifndef SWITCHYARD_KERNELS_CPU_ROUTER_ROUTER_H_
#define SWITCHYARD_KERNELS_CPU_ROUTER_ROUTER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {

enum class RouterScoring {
  // softmax over all experts (V2).
  kSoftmax,
  // elementwise sigmoid (V3).
  kSigmoid,
};

enum class RouterTopk {
  // top-k of the scores.
  kGreedy,
  // V2: a group's score is its max score; keep topk_group groups, top-k inside.
  kGroupLimitedGreedy,
  // V3: choice = score + bias; a group's score is the sum of its two largest choice
  // values; keep topk_group groups, top-k of the choice values inside. Only kept
  // groups are ever picked from (see model/reference/routing.h on HF's variant).
  kNoauxTc,
};

// A router's hyper-parameters (config.json's names). Plain values: the kernel knows
// no model config.
struct RouterParams {
  int64_t num_experts = 0;  // n_routed_experts
  int64_t top_k = 0;        // num_experts_per_tok
  int64_t n_group = 1;
  int64_t topk_group = 1;
  RouterScoring scoring = RouterScoring::kSoftmax;
  RouterTopk method = RouterTopk::kGreedy;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  // Whether routed_scaling_factor applies even when the weights were normalised:
  // true for deepseek_v3; false for deepseek_v2, whose HF code scales only the
  // unnormalised branch.
  bool scale_after_norm = true;
};

// InvalidArgument unless: num_experts > 0, 0 < top_k; for the grouped methods
// n_group > 0 divides num_experts, 0 < topk_group <= n_group and top_k <=
// topk_group · experts per group (noaux_tc also needs 2 experts per group); for
// greedy top_k <= num_experts.
absl::Status ValidateRouterParams(const RouterParams& params);

// scores[t, :] = softmax or sigmoid of logits[t, :], each computed in double and
// rounded once (the oracle's RouterScores).
// logits: [tokens, num_experts] fp32, row-major. scores: [tokens, num_experts] fp32,
// row-major; may be logits itself.
void RouterScores(const RouterParams& params, const float* logits, int64_t tokens, float* scores,
                  ThreadPool* pool = nullptr);

// Chooses top_k experts per token from its scores and computes their weights: the
// unbiased scores of the chosen experts, normalised to sum 1 (sum + 1e-20) when
// norm_topk_prob and top_k > 1, then times routed_scaling_factor (always if
// scale_after_norm, else only when not normalised); all in double, rounded once.
// scores: [tokens, num_experts] fp32 (RouterScores). bias: [num_experts] fp32
//   e_score_correction_bias for kNoauxTc (required), ignored otherwise (may be null).
// expert_ids: [tokens, top_k] int32, top-k order. weights: [tokens, top_k] fp32.
// params must pass ValidateRouterParams (checked).
void RouteTokens(const RouterParams& params, const float* scores, int64_t tokens, const float* bias,
                 int32_t* expert_ids, float* weights, ThreadPool* pool = nullptr);

// RouterScores then RouteTokens, one pass per token (scores kept in a per-thread
// buffer). logits: [tokens, num_experts] fp32.
void Route(const RouterParams& params, const float* logits, int64_t tokens, const float* bias,
           int32_t* expert_ids, float* weights, ThreadPool* pool = nullptr);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_ROUTER_ROUTER_H_
