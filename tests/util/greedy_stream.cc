#include "tests/util/greedy_stream.h"

#include <grpcpp/grpcpp.h>

namespace yard::testing {

TimedStream GreedyStream(generation::Generation::Stub& stub, const std::vector<int32_t>& prompt,
                         int max_tokens, std::chrono::seconds deadline, float temperature,
                         uint64_t seed) {
  generation::GenerateRequest request;
  for (int32_t t : prompt) request.mutable_token_ids()->add_ids(t);
  request.set_max_tokens(max_tokens);
  request.set_ignore_eos(true);
  request.mutable_sampling()->set_temperature(temperature);
  if (temperature > 0) request.mutable_sampling()->set_seed(seed);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  TimedStream out;
  out.sent = TimedStream::Clock::now();
  auto reader = stub.Generate(&context, request);
  generation::GenerateResponse response;
  while (reader->Read(&response)) {
    for (int32_t t : response.token_ids()) {
      out.tokens.push_back(t);
      out.arrivals.push_back(TimedStream::Clock::now());
    }
  }
  const grpc::Status status = reader->Finish();
  out.finished = TimedStream::Clock::now();
  if (!status.ok()) out.error = std::to_string(status.error_code()) + ": " + status.error_message();
  return out;
}

}  // namespace yard::testing
