#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

int32_t SampleToken(const std::vector<float>& logits, const SamplingParams& params, uint64_t seed,
                    uint64_t step) {
  auto s = Sample(logits, params, seed, step);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? s->token : -1;
}

// Token frequencies over `n` steps of one seed.
std::map<int32_t, double> Frequencies(const std::vector<float>& logits,
                                      const SamplingParams& params, int n) {
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) ++counts[SampleToken(logits, params, 1234, i)];
  std::map<int32_t, double> freq;
  for (auto [token, count] : counts) freq[token] = static_cast<double>(count) / n;
  return freq;
}

std::vector<float> LogsOf(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

TEST(SamplingTest, GreedyIsArgmaxWithTiesToTheLowestId) {
  EXPECT_EQ(SampleToken({0.5f, 2.0f, -1.0f, 1.9f}, Greedy(), 0, 0), 1);
  EXPECT_EQ(SampleToken({1.0f, 3.0f, 2.0f, 3.0f, 3.0f}, Greedy(), 0, 0), 1);
  EXPECT_EQ(SampleToken({-kInf, -kInf, -5.0f}, Greedy(), 0, 0), 2);
  // Greedy ignores the seed and step.
  for (uint64_t step = 0; step < 10; ++step) {
    EXPECT_EQ(SampleToken({1.0f, 3.0f, 2.0f, 3.0f}, Greedy(), step * 77, step), 1);
  }
}

TEST(SamplingTest, GarbageLogitsAreErrors) {
  EXPECT_EQ(Sample({}, Greedy(), 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(Sample({1.0f, nan}, Greedy(), 0, 0).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Sample({1.0f, kInf}, SamplingParams(), 0, 0).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Sample({-kInf, -kInf}, SamplingParams(), 0, 0).status().code(),
            absl::StatusCode::kInternal);
}

TEST(SamplingTest, ValidatesParams) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams()).ok());
  EXPECT_TRUE(ValidateSamplingParams(Greedy()).ok());
  auto bad = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    return ValidateSamplingParams(p).code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(bad([](SamplingParams& p) { p.temperature = -0.1; }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.temperature = std::nan(""); }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.temperature = HUGE_VAL; }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.top_k = -1; }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.top_p = 0; }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.top_p = 1.01; }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.top_p = std::nan(""); }));
  EXPECT_TRUE(bad([](SamplingParams& p) { p.top_logprobs = 2; }));  // without logprobs
  EXPECT_TRUE(bad([](SamplingParams& p) {
    p.logprobs = true;
    p.top_logprobs = kMaxTopLogprobs + 1;
  }));
  EXPECT_TRUE(bad([](SamplingParams& p) {
    p.logprobs = true;
    p.top_logprobs = -1;
  }));
}

TEST(SamplingTest, CounterUniformIsAPureUniformFunction) {
  double sum = 0;
  for (uint64_t i = 0; i < 100000; ++i) {
    const double u = CounterUniform(42, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 100000, 0.5, 0.005);
  EXPECT_EQ(CounterUniform(42, 7), CounterUniform(42, 7));
  EXPECT_NE(CounterUniform(42, 7), CounterUniform(43, 7));
  EXPECT_NE(CounterUniform(42, 7), CounterUniform(42, 8));
  EXPECT_NE(DeriveSeed(0, 1), DeriveSeed(0, 2));
}

TEST(SamplingTest, TemperatureShapesTheDistribution) {
  const std::vector<float> logits = LogsOf({1.0 / 6, 2.0 / 6, 3.0 / 6});
  SamplingParams p;
  p.temperature = 1.0;
  std::map<int32_t, double> f = Frequencies(logits, p, 60000);
  EXPECT_NEAR(f[0], 1.0 / 6, 0.01);
  EXPECT_NEAR(f[1], 2.0 / 6, 0.01);
  EXPECT_NEAR(f[2], 3.0 / 6, 0.01);
  // T = 2: p ∝ sqrt(1, 2, 3).
  p.temperature = 2.0;
  f = Frequencies(logits, p, 60000);
  const double z = 1 + std::sqrt(2.0) + std::sqrt(3.0);
  EXPECT_NEAR(f[0], 1 / z, 0.01);
  EXPECT_NEAR(f[1], std::sqrt(2.0) / z, 0.01);
  EXPECT_NEAR(f[2], std::sqrt(3.0) / z, 0.01);
  // A tiny temperature is greedy in effect.
  p.temperature = 1e-6;
  f = Frequencies(logits, p, 2000);
  EXPECT_DOUBLE_EQ(f[2], 1.0);
}

TEST(SamplingTest, TopKKeepsExactlyTheKMostLikely) {
  // Ties at 3.0 (ids 1, 3): top_k = 1 keeps id 1 only; top_k = 2 keeps both.
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, 0.0f};
  SamplingParams p;
  p.top_k = 1;
  EXPECT_EQ(Frequencies(logits, p, 500)[1], 1.0);
  p.top_k = 2;
  std::map<int32_t, double> f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_NEAR(f[1], 0.5, 0.02);
  EXPECT_NEAR(f[3], 0.5, 0.02);
  p.top_k = 3;
  f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.size(), 3u);
  const double z = 2 * std::exp(3.0) + std::exp(2.0);
  EXPECT_NEAR(f[2], std::exp(2.0) / z, 0.01);
  p.top_k = 100;  // more than the vocabulary: no filter
  EXPECT_EQ(Frequencies(logits, p, 20000).size(), 5u);
}

TEST(SamplingTest, TopPKeepsTheSmallestPrefixReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05, shuffled over ids.
  const std::vector<float> logits = LogsOf({0.15, 0.5, 0.05, 0.3});
  SamplingParams p;
  p.top_p = 0.45;  // {1}
  EXPECT_EQ(Frequencies(logits, p, 500)[1], 1.0);
  p.top_p = 0.6;  // {1, 3}: 0.5 < 0.6, 0.8 >= 0.6
  std::map<int32_t, double> f = Frequencies(logits, p, 40000);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_NEAR(f[1], 0.5 / 0.8, 0.01);
  EXPECT_NEAR(f[3], 0.3 / 0.8, 0.01);
  p.top_p = 0.81;  // {1, 3, 0}
  f = Frequencies(logits, p, 40000);
  EXPECT_EQ(f.size(), 3u);
  EXPECT_NEAR(f[0], 0.15 / 0.95, 0.01);
  p.top_p = 1.0;
  EXPECT_EQ(Frequencies(logits, p, 40000).size(), 4u);
}

TEST(SamplingTest, TopPAppliesToTheTopKRenormalizedDistribution) {
  // After top_k = 3: 0.5, 0.3, 0.15 over 0.95 = 0.526, 0.316, 0.158.
  const std::vector<float> logits = LogsOf({0.15, 0.5, 0.05, 0.3});
  SamplingParams p;
  p.top_k = 3;
  p.top_p = 0.52;  // {1}
  EXPECT_EQ(Frequencies(logits, p, 500)[1], 1.0);
  p.top_p = 0.6;  // {1, 3}
  std::map<int32_t, double> f = Frequencies(logits, p, 40000);
  EXPECT_EQ(f.size(), 2u);
  p.top_p = 0.85;  // 0.526 + 0.316 = 0.842 < 0.85: {1, 3, 0}
  EXPECT_EQ(Frequencies(logits, p, 40000).size(), 3u);
}

// The documented algorithm, written plainly: the sampler must match it token for token.
int32_t NaiveSample(const std::vector<float>& logits, const SamplingParams& p, uint64_t seed,
                    uint64_t step) {
  const int n = static_cast<int>(logits.size());
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const bool filtered = (p.top_k > 0 && p.top_k < n) || p.top_p < 1;
  if (filtered) {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    if (p.top_k > 0 && p.top_k < n) order.resize(p.top_k);
  }
  const double lmax = *std::max_element(logits.begin(), logits.end());
  std::vector<double> w(n, 0);
  double total = 0;
  for (int32_t id : order) total += (w[id] = std::exp((logits[id] - lmax) / p.temperature));
  if (p.top_p < 1) {
    double cum = 0;
    size_t keep = 0;
    while (keep < order.size() && (keep == 0 || cum < p.top_p * total)) cum += w[order[keep++]];
    order.resize(keep);
    total = cum;
  }
  const double target = CounterUniform(seed, step) * total;
  double cum = 0;
  for (int32_t id : order) {
    cum += w[id];
    if (w[id] > 0 && cum > target) return id;
  }
  return order.back();
}

TEST(SamplingTest, MatchesThePlainAlgorithmOnRandomLogits) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 3);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<float> logits(trial % 2 ? 1000 : 37);
    for (float& l : logits) l = std::round(normal(rng) * 4) / 4;  // ties happen
    SamplingParams p;
    p.temperature = 0.3 + (trial % 7) * 0.3;
    p.top_k = trial % 3 == 0 ? 0 : static_cast<int>(rng() % 50);
    p.top_p = trial % 4 == 0 ? 1.0 : 0.2 + (rng() % 80) / 100.0;
    const uint64_t seed = rng();
    for (uint64_t step = 0; step < 5; ++step) {
      ASSERT_EQ(SampleToken(logits, p, seed, step), NaiveSample(logits, p, seed, step))
          << "trial " << trial << " step " << step;
    }
  }
}

TEST(SamplingTest, ReproducibleBySeedAndStep) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = static_cast<float>((i * 37) % 11) / 3.0f;
  SamplingParams p;
  p.top_p = 0.9;
  std::vector<int32_t> a, b, c;
  for (uint64_t step = 0; step < 200; ++step) {
    a.push_back(SampleToken(logits, p, 99, step));
    SampleToken(logits, p, step, step);  // other requests in between change nothing
    b.push_back(SampleToken(logits, p, 99, step));
    c.push_back(SampleToken(logits, p, 100, step));
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SamplingTest, LogprobsAreTheRawLogSoftmax) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -kInf, 0.5f};
  SamplingParams p;
  p.temperature = 0.7;  // logprobs ignore temperature
  p.top_k = 2;          // and filtering
  p.logprobs = true;
  p.top_logprobs = 6;
  auto s = Sample(logits, p, 5, 0);
  ASSERT_TRUE(s.ok()) << s.status();
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  ASSERT_TRUE(s->logprob.has_value());
  EXPECT_NEAR(*s->logprob, logits[s->token] - std::log(z), 1e-6);
  ASSERT_EQ(s->top_logprobs.size(), 6u);
  // Most likely first, ties to the lowest id; probabilities sum to 1.
  std::vector<int32_t> ids;
  double sum = 0;
  for (const TokenLogprob& t : s->top_logprobs) {
    ids.push_back(t.token);
    sum += std::exp(static_cast<double>(t.logprob));
    if (t.token != 4) {
      EXPECT_NEAR(t.logprob, logits[t.token] - std::log(z), 1e-6);
    }
  }
  EXPECT_THAT(ids, ::testing::ElementsAre(1, 3, 2, 0, 5, 4));
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_EQ(s->top_logprobs.back().logprob, -kInf);

  p.logprobs = false;
  p.top_logprobs = 0;
  s = Sample(logits, p, 5, 0);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->logprob.has_value());
  EXPECT_TRUE(s->top_logprobs.empty());
}

}  // namespace
}  // namespace yard::engine
