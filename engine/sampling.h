// Token sampling from one row of logits: greedy (exact argmax), or temperature with
// top-k then top-p, driven by a counter-based random stream per request so that a
// request's tokens depend only on (its logits, its seed, its step), never on which
// other requests share the batch or in what order they are sampled.
//
// Pure functions; thread-safe.
#ifndef SWITCHYARD_ENGINE_SAMPLING_H_
#define SWITCHYARD_ENGINE_SAMPLING_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace yard::engine {

// The most top_logprobs a request may ask for (OpenAI's limit).
inline constexpr int kMaxTopLogprobs = 20;

struct SamplingParams {
  // Softmax temperature; 0 is greedy (argmax, ties to the lowest id). OpenAI's default.
  double temperature = 1.0;
  // Keep the k most likely tokens (ties to the lowest ids); 0 keeps all.
  int top_k = 0;
  // Then keep the smallest most-likely prefix whose probability (renormalized after
  // top-k) reaches top_p; 1 keeps all. In (0, 1].
  double top_p = 1.0;
  // Seed of this request's random stream. Absent: the engine derives one.
  std::optional<uint64_t> seed;
  // Return the chosen token's log-probability, and the top_logprobs most likely
  // tokens' (0..kMaxTopLogprobs; needs logprobs). Log-probabilities are those of the
  // model's distribution, log_softmax of the raw logits, before temperature and
  // filtering (as OpenAI and vLLM report them).
  bool logprobs = false;
  int top_logprobs = 0;
};

// InvalidArgument naming the field: temperature NaN, infinite or negative; top_k < 0;
// top_p NaN or outside (0, 1]; top_logprobs outside [0, kMaxTopLogprobs] or set
// without logprobs.
absl::Status ValidateSamplingParams(const SamplingParams& params);

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct SampledToken {
  int32_t token = 0;
  std::optional<float> logprob;            // with SamplingParams::logprobs
  std::vector<TokenLogprob> top_logprobs;  // most likely first, ties to the lowest id
};

// A request seed derived from an engine seed and the request's submission index.
uint64_t DeriveSeed(uint64_t base, uint64_t index);

// A uniform double in [0, 1) that is a pure function of (seed, counter):
// SplitMix64-style mixing, 53 random bits.
double CounterUniform(uint64_t seed, uint64_t counter);

// Samples one token from `logits` ([vocab] fp32) for a request with `params` (already
// validated) whose random stream is `seed`, drawing variate number `step` (the index
// of the token being generated). Probabilities are computed in double.
// Errors: InvalidArgument for empty logits; Internal for a NaN or +inf logit, or no
// finite logit (the model produced garbage; the request fails, the engine goes on).
absl::StatusOr<SampledToken> Sample(absl::Span<const float> logits, const SamplingParams& params,
                                    uint64_t seed, uint64_t step);

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_SAMPLING_H_
