// One greedy Generate call of an e2e test, with each token's arrival time (for the
// gaps a failure or a rebalance causes).
#ifndef SWITCHYARD_TESTS_UTIL_GREEDY_STREAM_H_
#define SWITCHYARD_TESTS_UTIL_GREEDY_STREAM_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/generation.grpc.pb.h"

namespace yard::testing {

struct TimedStream {
  using Clock = std::chrono::steady_clock;
  std::vector<int32_t> tokens;
  std::vector<Clock::time_point> arrivals;  // per generated token
  Clock::time_point sent, finished;
  std::string error;  // "CODE: message"; empty when the call succeeded
};

// Temperature 0 (or `temperature` with `seed`: sampled, as reproducible), EOS ignored,
// so `max_tokens` tokens come back unless the call fails.
TimedStream GreedyStream(generation::Generation::Stub& stub, const std::vector<int32_t>& prompt,
                         int max_tokens, std::chrono::seconds deadline, float temperature = 0,
                         uint64_t seed = 0);

}  // namespace yard::testing

#endif  // SWITCHYARD_TESTS_UTIL_GREEDY_STREAM_H_
