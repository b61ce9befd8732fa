// Decode throughput of a running cluster, measured from the outside like a client
// would: `batch` concurrent Generate streams (random prompts, ignore_eos) and the
// token rate while all of them are decoding.
#ifndef SWITCHYARD_BENCH_CLUSTER_DECODE_H_
#define SWITCHYARD_BENCH_CLUSTER_DECODE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace yard::bench {

struct ClusterDecodeResult {
  int64_t batch = 0;
  // Tokens received from the moment every stream had its first token until the last
  // stream ended, per second.
  double tokens_per_s = 0;
  // Time until the last stream's first token (prefill of the whole batch), seconds.
  double all_started_s = 0;
  int64_t tokens = 0;
};

// Unavailable / the server's error if any stream fails.
absl::StatusOr<ClusterDecodeResult> MeasureClusterDecode(const std::string& address,
                                                         int64_t batch, int64_t prompt_len,
                                                         int64_t gen_len, int64_t vocab,
                                                         uint64_t seed);

}  // namespace yard::bench

#endif  // SWITCHYARD_BENCH_CLUSTER_DECODE_H_
