#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace yard::engine {

namespace {

uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Strict "more likely than" over token ids: higher logit, then lower id. A total
// order, so every selection below is exact and reproducible.
struct Likelier {
  const float* logits;
  bool operator()(int32_t a, int32_t b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

// Index of the first candidate whose running weight passes target = u * total; falls
// back to the last candidate of positive weight when rounding leaves the sum short.
template <typename WeightOf>
int32_t Draw(absl::Span<const int32_t> order, double u, double total, WeightOf weight_of) {
  const double target = u * total;
  double cumulative = 0;
  int32_t last_positive = order.front();
  for (int32_t id : order) {
    const double w = weight_of(id);
    if (w <= 0) continue;
    last_positive = id;
    cumulative += w;
    if (cumulative > target) return id;
  }
  return last_positive;
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: temperature must be finite and >= 0, got ", params.temperature));
  }
  if (params.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: top_k must be >= 0 (0 = off), got ", params.top_k));
  }
  if (!(params.top_p > 0 && params.top_p <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: top_p must be in (0, 1], got ", params.top_p));
  }
  if (params.top_logprobs < 0 || params.top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampling: top_logprobs must be in [0, ", kMaxTopLogprobs, "], got ", params.top_logprobs));
  }
  if (params.top_logprobs > 0 && !params.logprobs) {
    return absl::InvalidArgumentError("sampling: top_logprobs needs logprobs");
  }
  return absl::OkStatus();
}

uint64_t DeriveSeed(uint64_t base, uint64_t index) {
  return Mix64(base ^ Mix64(index + 0x2545f4914f6cdd1dULL));
}

double CounterUniform(uint64_t seed, uint64_t counter) {
  const uint64_t bits =
      Mix64(Mix64(seed) ^ (counter * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

absl::StatusOr<SampledToken> Sample(absl::Span<const float> logits, const SamplingParams& params,
                                    uint64_t seed, uint64_t step) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (vocab == 0) return absl::InvalidArgumentError("sampling: empty logits");
  if (vocab > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError("sampling: vocabulary beyond int32 token ids");
  }
  int32_t argmax = -1;
  float best = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) {
    const float v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity()) {
      return absl::InternalError(absl::StrCat("sampling: logit of token ", i, " is ", v));
    }
    if (v > best) {  // strict: ties keep the lowest id
      best = v;
      argmax = static_cast<int32_t>(i);
    }
  }
  if (argmax < 0) return absl::InternalError("sampling: every logit is -inf");

  SampledToken out;
  if (params.temperature == 0) {
    out.token = argmax;
  } else {
    const double lmax = best;
    const double inv_t = 1.0 / params.temperature;
    auto weight_of = [&](int32_t id) { return std::exp((logits[id] - lmax) * inv_t); };
    const double u = CounterUniform(seed, step);
    const Likelier likelier{logits.data()};
    const bool use_top_k = params.top_k > 0 && params.top_k < vocab;
    const bool use_top_p = params.top_p < 1;

    if (!use_top_k && !use_top_p) {
      // No filter: one exp per token, then walk ids in order; no sort needed.
      std::vector<double> weights(vocab);
      double total = 0;
      for (int64_t i = 0; i < vocab; ++i) {
        weights[i] = weight_of(static_cast<int32_t>(i));
        total += weights[i];
      }
      const double target = u * total;
      double cumulative = 0;
      int32_t last_positive = argmax;
      out.token = -1;
      for (int64_t i = 0; i < vocab; ++i) {
        if (weights[i] <= 0) continue;
        last_positive = static_cast<int32_t>(i);
        cumulative += weights[i];
        if (cumulative > target) {
          out.token = static_cast<int32_t>(i);
          break;
        }
      }
      if (out.token < 0) out.token = last_positive;
    } else {
      std::vector<int32_t> candidates(vocab);
      std::iota(candidates.begin(), candidates.end(), 0);
      if (use_top_k) {
        std::nth_element(candidates.begin(), candidates.begin() + params.top_k, candidates.end(),
                         likelier);
        candidates.resize(params.top_k);
        std::sort(candidates.begin(), candidates.end(), likelier);
      }
      double total = 0;
      for (int32_t id : candidates) total += weight_of(id);
      std::vector<int32_t> kept;
      if (use_top_p) {
        // Most likely first until the mass before the next token reaches top_p; a heap
        // costs O(n + kept log n) instead of sorting the whole vocabulary.
        const double mass = params.top_p * total;
        double cumulative = 0;
        if (use_top_k) {
          for (int32_t id : candidates) {
            if (!kept.empty() && cumulative >= mass) break;
            kept.push_back(id);
            cumulative += weight_of(id);
          }
        } else {
          auto less_likely = [&](int32_t a, int32_t b) { return likelier(b, a); };
          std::make_heap(candidates.begin(), candidates.end(), less_likely);
          auto end = candidates.end();
          while (end != candidates.begin() && (kept.empty() || cumulative < mass)) {
            std::pop_heap(candidates.begin(), end, less_likely);
            --end;
            kept.push_back(*end);
            cumulative += weight_of(*end);
          }
        }
        total = cumulative;
      } else {
        kept = std::move(candidates);
      }
      out.token = Draw(kept, u, total, weight_of);
    }
  }

  if (params.logprobs) {
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - best);
    const double lse = best + std::log(sum);
    out.logprob = static_cast<float>(logits[out.token] - lse);
    const int n = static_cast<int>(std::min<int64_t>(params.top_logprobs, vocab));
    if (n > 0) {
      std::vector<int32_t> ids(vocab);
      std::iota(ids.begin(), ids.end(), 0);
      std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), Likelier{logits.data()});
      out.top_logprobs.reserve(n);
      for (int i = 0; i < n; ++i) {
        out.top_logprobs.push_back({ids[i], static_cast<float>(logits[ids[i]] - lse)});
      }
    }
  }
  return out;
}

}  // namespace yard::engine
