// load: a steady stream of Generate calls against a running cluster, the way many
// clients would send them. --concurrency clients each send one request after another
// for --duration seconds (prompts from --prompt-file, one per line, taken in turn);
// then it reports requests/s, output tokens/s, time to first token and inter-token
// latency (p50 / p99), and errors by gRPC code.
//   load --addr HOST:PORT --concurrency C --duration S [--prompt-file F]
//        [--max-tokens N] [--temperature T] [--json]
// With --json the last line is {"requests": N, "requests_per_s": F,
// "output_tokens_per_s": F, "ttft_ms_p50": F, "ttft_ms_p99": F, "itl_ms_p50": F,
// "itl_ms_p99": F, "errors": {"CODE": N, ...}}.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "nlohmann/json.hpp"
#include "proto/generation.grpc.pb.h"
#include "transport/grpc/auth.h"
#include "transport/grpc/grpc_status.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "the coordinator's host:port");
ABSL_FLAG(int32_t, concurrency, 16, "clients, each with one request in flight");
ABSL_FLAG(double, duration, 30, "seconds to keep sending (requests running then finish)");
ABSL_FLAG(std::string, prompt_file, "",
          "prompts, one per line (default: a few built-in English prompts)");
ABSL_FLAG(int32_t, max_tokens, 64, "tokens per request (ignore_eos: always this many)");
ABSL_FLAG(float, temperature, 0.0f, "sampling temperature");
ABSL_FLAG(bool, json, false, "print the summary as one JSON line last");
ABSL_FLAG(std::string, api_key_file, "",
          "file whose first line is the API key (default: the environment's YARD_API_KEY)");
ABSL_FLAG(std::string, tls_ca, "", "PEM root certificate(s) of a TLS coordinator");

namespace yard::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

struct Totals {
  std::mutex mu;
  int64_t requests = 0;  // completed without error
  int64_t tokens = 0;
  std::vector<double> ttft_ms, itl_ms;
  std::map<std::string, int64_t> errors;  // by gRPC code name
};

int Run() {
  const int32_t concurrency = absl::GetFlag(FLAGS_concurrency);
  const double duration = absl::GetFlag(FLAGS_duration);
  const int32_t max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (concurrency < 1 || !(duration > 0) || max_tokens < 1) {
    return Fail("--concurrency and --max-tokens must be >= 1, --duration > 0");
  }
  std::vector<std::string> prompts;
  if (const std::string file = absl::GetFlag(FLAGS_prompt_file); !file.empty()) {
    std::ifstream in(file);
    if (!in) return Fail("--prompt-file: cannot read " + file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) prompts.push_back(line);
    }
    if (prompts.empty()) return Fail("--prompt-file: " + file + " has no prompt");
  } else {
    prompts = {"The capital of France is", "Write a haiku about the sea.",
               "Explain mixture-of-experts models in one paragraph.",
               "List three prime numbers larger than 100."};
  }

  transport::ChannelSecurity security;
  absl::StatusOr<std::string> key = transport::ResolveSecret(absl::GetFlag(FLAGS_api_key_file),
                                                             "YARD_API_KEY", "--api-key-file");
  if (!key.ok()) return Fail(std::string(key.status().message()));
  security.token = *std::move(key);
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca); !ca.empty()) {
    absl::StatusOr<std::string> pem = transport::ReadPem(ca);
    if (!pem.ok()) return Fail("--tls-ca " + std::string(pem.status().message()));
    security.tls_roots_pem = *std::move(pem);
  }
  auto channel = transport::CreateChannel(absl::GetFlag(FLAGS_addr), security);
  Totals totals;
  std::atomic<int64_t> next_prompt{0};
  const Clock::time_point start = Clock::now();
  const Clock::time_point stop_at =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  std::vector<std::thread> clients;
  for (int32_t c = 0; c < concurrency; ++c) {
    clients.emplace_back([&] {
      auto stub = generation::Generation::NewStub(channel);
      while (Clock::now() < stop_at) {
        generation::GenerateRequest request;
        request.set_text(prompts[next_prompt++ % prompts.size()]);
        request.set_max_tokens(max_tokens);
        request.set_ignore_eos(true);
        request.mutable_sampling()->set_temperature(absl::GetFlag(FLAGS_temperature));
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
        const Clock::time_point sent = Clock::now();
        auto reader = stub->Generate(&context, request);
        generation::GenerateResponse response;
        std::vector<Clock::time_point> arrivals;
        while (reader->Read(&response)) {
          for (int i = 0; i < response.token_ids_size(); ++i) arrivals.push_back(Clock::now());
        }
        const grpc::Status status = reader->Finish();
        std::lock_guard<std::mutex> lock(totals.mu);
        if (!status.ok()) {
          ++totals.errors[absl::StatusCodeToString(transport::FromGrpc(status).code())];
          continue;
        }
        ++totals.requests;
        totals.tokens += static_cast<int64_t>(arrivals.size());
        if (!arrivals.empty()) totals.ttft_ms.push_back(Ms(arrivals[0] - sent));
        for (size_t i = 1; i < arrivals.size(); ++i) {
          totals.itl_ms.push_back(Ms(arrivals[i] - arrivals[i - 1]));
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const double elapsed = Ms(Clock::now() - start) / 1000.0;

  const double rps = totals.requests / elapsed, tps = totals.tokens / elapsed;
  const double ttft50 = Percentile(totals.ttft_ms, 0.5), ttft99 = Percentile(totals.ttft_ms, 0.99);
  const double itl50 = Percentile(totals.itl_ms, 0.5), itl99 = Percentile(totals.itl_ms, 0.99);
  int64_t errors = 0;
  for (const auto& [code, n] : totals.errors) errors += n;
  std::printf("load: %d clients for %.1f s: %lld requests (%.2f/s), %lld output tokens (%.1f/s)\n",
              concurrency, elapsed, static_cast<long long>(totals.requests), rps,
              static_cast<long long>(totals.tokens), tps);
  std::printf("  time to first token  p50 %8.2f ms   p99 %8.2f ms\n", ttft50, ttft99);
  std::printf("  inter-token latency  p50 %8.2f ms   p99 %8.2f ms\n", itl50, itl99);
  std::printf("  errors: %lld", static_cast<long long>(errors));
  for (const auto& [code, n] : totals.errors) std::printf("  %s %lld", code.c_str(), static_cast<long long>(n));
  std::printf("\n");
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"requests", totals.requests}, {"requests_per_s", rps},
                        {"output_tokens_per_s", tps},  {"ttft_ms_p50", ttft50},
                        {"ttft_ms_p99", ttft99},        {"itl_ms_p50", itl50},
                        {"itl_ms_p99", itl99},          {"errors", totals.errors}};
    std::printf("%s\n", j.dump().c_str());
  }
  return errors == 0 ? 0 : 3;
}

}  // namespace
}  // namespace yard::bench

int main(int argc, char** argv) {
  yard::ParseCommandLineWithConfig(
      argc, argv,
      "load --addr HOST:PORT --concurrency C --duration S [--prompt-file F] [--max-tokens N] "
      "[--temperature T] [--json]\n"
      "A steady stream of Generate calls: requests/s, output tokens/s, time to first token "
      "and inter-token latency p50/p99, errors by gRPC code (exit code 3 when any failed).");
  return yard::bench::Run();
}
