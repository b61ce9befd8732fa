#include "kernels/cpu/router/router.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::kernels::cpu {
namespace {

// Below this many experts × tokens a call stays on the caller's thread.
constexpr int64_t kMinParallelWork = 1 << 13;

// The k best of the (value, index) pairs offered in ascending index order, kept
// sorted by descending value, ties by lower index: the order of the oracle's stable
// sort, without sorting every candidate.
class TopKList {
 public:
  void Reset(int64_t k) {
    k_ = k;
    size_ = 0;
    values_.resize(k);
    indices_.resize(k);
  }

  // `index` must exceed every index offered before.
  void Offer(double value, int64_t index) {
    // An equal value already listed has a lower index and stays ahead.
    if (size_ == k_ && !(value > values_[size_ - 1])) return;
    int64_t pos = size_ < k_ ? size_ : k_ - 1;
    while (pos > 0 && value > values_[pos - 1]) {
      values_[pos] = values_[pos - 1];
      indices_[pos] = indices_[pos - 1];
      --pos;
    }
    values_[pos] = value;
    indices_[pos] = index;
    if (size_ < k_) ++size_;
  }

  int64_t size() const { return size_; }
  int64_t index(int64_t i) const { return indices_[i]; }
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  int64_t k_ = 0;
  int64_t size_ = 0;
  std::vector<double> values_;
  std::vector<int64_t> indices_;
};

// Per-thread buffers, so steady-state calls never allocate.
struct Scratch {
  std::vector<double> choice;
  std::vector<double> exps;
  std::vector<int64_t> kept;
  std::vector<float> scores;
  TopKList groups;
  TopKList experts;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

void ScoreRow(const RouterParams& p, const float* logits, float* scores,
              std::vector<double>& exps) {
  const int64_t n = p.num_experts;
  if (p.scoring == RouterScoring::kSigmoid) {
    for (int64_t e = 0; e < n; ++e) {
      scores[e] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[e]))));
    }
    return;
  }
  const double max = *std::max_element(logits, logits + n);
  exps.resize(n);
  double sum = 0.0;
  for (int64_t e = 0; e < n; ++e) {
    exps[e] = std::exp(logits[e] - max);
    sum += exps[e];
  }
  for (int64_t e = 0; e < n; ++e) scores[e] = static_cast<float>(exps[e] / sum);
}

void RouteRow(const RouterParams& p, const float* scores, const float* bias, Scratch& s,
              int32_t* ids, float* weights) {
  const int64_t n = p.num_experts;
  const int64_t k = p.top_k;
  const bool noaux = p.method == RouterTopk::kNoauxTc;
  s.choice.resize(n);
  for (int64_t e = 0; e < n; ++e) {
    s.choice[e] = scores[e];
    if (noaux) s.choice[e] += bias[e];
  }

  s.experts.Reset(k);
  if (p.method == RouterTopk::kGreedy) {
    for (int64_t e = 0; e < n; ++e) s.experts.Offer(s.choice[e], e);
  } else {
    const int64_t per_group = n / p.n_group;
    s.groups.Reset(p.topk_group);
    for (int64_t g = 0; g < p.n_group; ++g) {
      // The two largest members (a repeated maximum counts twice, as in a sort).
      double first = -INFINITY, second = -INFINITY;
      for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
        const double v = s.choice[e];
        if (v > first) {
          second = first;
          first = v;
        } else if (v > second) {
          second = v;
        }
      }
      s.groups.Offer(noaux ? first + second : first, g);
    }
    s.kept.assign(s.groups.indices().begin(), s.groups.indices().begin() + s.groups.size());
    std::sort(s.kept.begin(), s.kept.end());
    for (int64_t g : s.kept) {
      for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
        s.experts.Offer(s.choice[e], e);
      }
    }
  }

  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) sum += static_cast<double>(scores[s.experts.index(i)]);
  const bool normalize = p.norm_topk_prob && k > 1;
  const bool scale = p.scale_after_norm || !normalize;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t e = s.experts.index(i);
    double w = scores[e];
    if (normalize) w /= sum + 1e-20;
    if (scale) w *= p.routed_scaling_factor;
    ids[i] = static_cast<int32_t>(e);
    weights[i] = static_cast<float>(w);
  }
}

void ForTokens(const RouterParams& p, int64_t tokens, ThreadPool* pool,
               absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (tokens <= 0) return;
  ThreadPool& threads = pool != nullptr ? *pool : DefaultThreadPool();
  if (tokens == 1 || threads.num_threads() == 1 || tokens * p.num_experts < kMinParallelWork) {
    fn(0, tokens);
  } else {
    threads.ParallelFor(tokens, fn);
  }
}

}  // namespace

absl::Status ValidateRouterParams(const RouterParams& p) {
  if (p.num_experts <= 0 || p.top_k <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "router: num_experts and top_k must be positive, got ", p.num_experts, ", ", p.top_k));
  }
  if (p.method == RouterTopk::kGreedy) {
    if (p.top_k > p.num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("router: top_k ", p.top_k, " exceeds num_experts ", p.num_experts));
    }
    return absl::OkStatus();
  }
  if (p.n_group <= 0 || p.num_experts % p.n_group != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("router: n_group ", p.n_group, " must divide num_experts ", p.num_experts));
  }
  if (p.topk_group <= 0 || p.topk_group > p.n_group) {
    return absl::InvalidArgumentError(absl::StrCat("router: topk_group ", p.topk_group,
                                                   " must be in [1, n_group ", p.n_group, "]"));
  }
  const int64_t per_group = p.num_experts / p.n_group;
  if (p.method == RouterTopk::kNoauxTc && per_group < 2) {
    return absl::InvalidArgumentError(
        "router: noaux_tc needs at least 2 experts per group (group score = top-2 sum)");
  }
  if (p.top_k > p.topk_group * per_group) {
    return absl::InvalidArgumentError(absl::StrCat("router: top_k ", p.top_k, " exceeds the ",
                                                   p.topk_group * per_group,
                                                   " experts of the kept groups"));
  }
  return absl::OkStatus();
}

void RouterScores(const RouterParams& params, const float* logits, int64_t tokens, float* scores,
                  ThreadPool* pool) {
  YARD_CHECK(params.num_experts > 0, "RouterScores: num_experts must be positive");
  ForTokens(params, tokens, pool, [&](int64_t begin, int64_t end) {
    Scratch& s = ThreadScratch();
    for (int64_t t = begin; t < end; ++t) {
      ScoreRow(params, logits + t * params.num_experts, scores + t * params.num_experts, s.exps);
    }
  });
}

void RouteTokens(const RouterParams& params, const float* scores, int64_t tokens, const float* bias,
                 int32_t* expert_ids, float* weights, ThreadPool* pool) {
  YARD_CHECK(ValidateRouterParams(params).ok(), "RouteTokens: invalid params");
  YARD_CHECK(params.method != RouterTopk::kNoauxTc || bias != nullptr,
             "RouteTokens: noaux_tc needs e_score_correction_bias");
  ForTokens(params, tokens, pool, [&](int64_t begin, int64_t end) {
    Scratch& s = ThreadScratch();
    for (int64_t t = begin; t < end; ++t) {
      RouteRow(params, scores + t * params.num_experts, bias, s, expert_ids + t * params.top_k,
               weights + t * params.top_k);
    }
  });
}

void Route(const RouterParams& params, const float* logits, int64_t tokens, const float* bias,
           int32_t* expert_ids, float* weights, ThreadPool* pool) {
  YARD_CHECK(ValidateRouterParams(params).ok(), "Route: invalid params");
  YARD_CHECK(params.method != RouterTopk::kNoauxTc || bias != nullptr,
             "Route: noaux_tc needs e_score_correction_bias");
  ForTokens(params, tokens, pool, [&](int64_t begin, int64_t end) {
    Scratch& s = ThreadScratch();
    s.scores.resize(params.num_experts);
    for (int64_t t = begin; t < end; ++t) {
      ScoreRow(params, logits + t * params.num_experts, s.scores.data(), s.exps);
      RouteRow(params, s.scores.data(), bias, s, expert_ids + t * params.top_k,
               weights + t * params.top_k);
    }
  });
}

}  // namespace yard::kernels::cpu
