#include "model/reference/routing.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "common/check.h"

namespace yard::model::reference {
namespace {

// Indices of the k largest values among `candidates`, descending by value, ties by
// lower index. values: indexed by candidate id.
std::vector<int64_t> TopK(const std::vector<double>& values, std::vector<int64_t> candidates,
                          int64_t k) {
  YARD_CHECK(k <= static_cast<int64_t>(candidates.size()), "TopK: k too large");
  std::stable_sort(candidates.begin(), candidates.end(), [&](int64_t a, int64_t b) {
    if (values[a] != values[b]) return values[a] > values[b];
    return a < b;
  });
  candidates.resize(k);
  return candidates;
}

// The last kept value minus the best value among `candidates` that were not kept;
// +inf when every candidate was kept. kept: in descending order of value.
double DecidingGap(const std::vector<double>& values, const std::vector<int64_t>& kept,
                   const std::vector<int64_t>& candidates) {
  double best_dropped = -std::numeric_limits<double>::infinity();
  for (int64_t c : candidates) {
    if (std::find(kept.begin(), kept.end(), c) == kept.end()) {
      best_dropped = std::max(best_dropped, values[c]);
    }
  }
  return values[kept.back()] - best_dropped;
}

// d score / d logit at a score: s(1 - s) for a sigmoid, and for a softmax entry too.
// Dividing a score gap by it puts the gap in router-logit units, where an
// implementation's numerical noise is roughly the same for every expert.
double ScoreSlope(double score) { return std::max(score * (1.0 - score), 1e-12); }

}  // namespace

std::vector<float> RouterScores(const ModelConfig& config, absl::Span<const float> logits) {
  std::vector<float> scores(logits.size());
  if (config.scoring_func == ScoringFunc::kSigmoid) {
    for (size_t i = 0; i < logits.size(); ++i) {
      scores[i] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[i]))));
    }
    return scores;
  }
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(v - max);
  for (size_t i = 0; i < logits.size(); ++i) {
    scores[i] = static_cast<float>(std::exp(logits[i] - max) / sum);
  }
  return scores;
}

std::vector<ExpertChoice> RouteToken(const ModelConfig& config,
                                     absl::Span<const float> scores,
                                     absl::Span<const float> bias,
                                     double* margin) {
  const int64_t n = config.n_routed_experts;
  double gap = std::numeric_limits<double>::infinity();
  const int64_t k = config.num_experts_per_tok;
  YARD_CHECK(static_cast<int64_t>(scores.size()) == n, "RouteToken: scores length");

  // The values experts are chosen by.
  std::vector<double> choice(n);
  for (int64_t e = 0; e < n; ++e) choice[e] = scores[e];
  if (config.topk_method == TopkMethod::kNoauxTc) {
    YARD_CHECK(static_cast<int64_t>(bias.size()) == n, "RouteToken: bias length");
    for (int64_t e = 0; e < n; ++e) choice[e] += bias[e];
  }

  std::vector<int64_t> candidates(n);
  std::iota(candidates.begin(), candidates.end(), 0);
  if (config.topk_method != TopkMethod::kGreedy) {
    const int64_t per_group = n / config.n_group;
    std::vector<double> group_score(config.n_group);
    for (int64_t g = 0; g < config.n_group; ++g) {
      std::vector<double> members(choice.begin() + g * per_group,
                                  choice.begin() + (g + 1) * per_group);
      std::sort(members.begin(), members.end(), std::greater<double>());
      group_score[g] = config.topk_method == TopkMethod::kNoauxTc
                           ? members[0] + members[1]
                           : members[0];
    }
    std::vector<int64_t> groups(config.n_group);
    std::iota(groups.begin(), groups.end(), 0);
    std::vector<int64_t> kept = TopK(group_score, groups, config.topk_group);
    // The last kept group's best expert sets the slope of its score.
    double best_in_group = 0.0;
    for (int64_t e = kept.back() * per_group; e < (kept.back() + 1) * per_group; ++e) {
      best_in_group = std::max(best_in_group, static_cast<double>(scores[e]));
    }
    gap = std::min(gap, DecidingGap(group_score, kept, groups) / ScoreSlope(best_in_group));
    std::sort(kept.begin(), kept.end());
    candidates.clear();
    for (int64_t g : kept) {
      for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) candidates.push_back(e);
    }
  }
  std::vector<int64_t> chosen = TopK(choice, candidates, k);
  gap = std::min(gap, DecidingGap(choice, chosen, candidates) / ScoreSlope(scores[chosen.back()]));
  if (margin != nullptr) *margin = gap;

  std::vector<double> weight(k);
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    weight[i] = scores[chosen[i]];
    sum += weight[i];
  }
  const bool normalize = config.norm_topk_prob && k > 1;
  if (normalize) {
    for (double& w : weight) w /= sum + 1e-20;
  }
  if (config.model_type == ModelType::kDeepseekV3 || !normalize) {
    for (double& w : weight) w *= config.routed_scaling_factor;
  }

  std::vector<ExpertChoice> out(k);
  for (int64_t i = 0; i < k; ++i) out[i] = {chosen[i], static_cast<float>(weight[i])};
  return out;
}

}  // namespace yard::model::reference
