#include "bench/cluster_decode.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "proto/generation.grpc.pb.h"
#include "transport/grpc/grpc_status.h"

namespace yard::bench {

absl::StatusOr<ClusterDecodeResult> MeasureClusterDecode(const std::string& address,
                                                         int64_t batch, int64_t prompt_len,
                                                         int64_t gen_len, int64_t vocab,
                                                         uint64_t seed) {
  using Clock = std::chrono::steady_clock;
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<generation::GenerateRequest> requests(batch);
  for (generation::GenerateRequest& r : requests) {
    for (int64_t i = 0; i < prompt_len; ++i) r.mutable_token_ids()->add_ids(token(rng));
    r.set_max_tokens(static_cast<int32_t>(gen_len + 1));  // the first token ends prefill
    r.set_ignore_eos(true);
    r.mutable_sampling()->set_temperature(0);
  }

  // Arrival time of every token of every stream.
  std::vector<std::vector<Clock::time_point>> arrivals(batch);
  std::vector<absl::Status> status(batch);
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int64_t b = 0; b < batch; ++b) {
    threads.emplace_back([&, b] {
      auto stub = generation::Generation::NewStub(channel);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
      auto reader = stub->Generate(&context, requests[b]);
      generation::GenerateResponse response;
      while (reader->Read(&response)) {
        for (int i = 0; i < response.token_ids_size(); ++i) arrivals[b].push_back(Clock::now());
      }
      status[b] = transport::FromGrpc(reader->Finish());
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }

  Clock::time_point all_started = start, end = start;
  for (const auto& a : arrivals) {
    if (a.empty()) return absl::InternalError("a stream produced no tokens");
    all_started = std::max(all_started, a.front());
    end = std::max(end, a.back());
  }
  ClusterDecodeResult result;
  result.batch = batch;
  for (const auto& a : arrivals) {
    result.tokens += std::count_if(a.begin(), a.end(),
                                   [&](Clock::time_point t) { return t > all_started; });
  }
  const double seconds = std::chrono::duration<double>(end - all_started).count();
  result.tokens_per_s = seconds > 0 ? result.tokens / seconds : 0;
  result.all_started_s = std::chrono::duration<double>(all_started - start).count();
  return result;
}

}  // namespace yard::bench
