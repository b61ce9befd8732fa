// dataplane_bench: dispatch + combine over the real UCX data plane between two
// processes on this machine, against UCX's own ucx_perftest on the same transport.
//
// The bench re-executes its own binary with --peer: that child is an echo expert. It
// Decodes every dispatch (validation, as an expert worker does) and answers it with a
// combine of the same token count, hidden size and routes, in --combine-dtype. The
// combine is encoded once per shape and re-sent (no compute, no per-message encode),
// so the loop measures the transport; the wire format's cost is its own column. The
// bench Decodes every combine it receives, as an attention worker would.
//
// Per size (tokens x hidden):
//   latency    --iters round trips, one dispatch in flight: p50 / p99 of
//              (combine received - dispatch sent), both stamped on the progress thread
//              that sends the next dispatch from the receive handler.
//   bandwidth  --iters round trips with --window dispatches in flight:
//              (dispatch bytes + combine bytes) x iters / elapsed; the best of --rounds
//              rounds, which alternate with perftest's, whose best round counts too.
//   codec      EncodeDispatch + Decode of the dispatch, and EncodeCombine + Decode of
//              the combine, median over repetitions (single thread, no transport).
//   perftest   ucx_perftest ucp_am_bw and ucp_am_lat, server and client on loopback, with
//              the same UCX_TLS and UCX settings (-e: peer error handling, as every
//              data-plane endpoint asks for; -H 32: our AM header). ucp_am_bw is one
//              direction, so it is run at the dispatch size and at the combine size and
//              the two are added in time: perftest GB/s = (D + C) / (D/bw(D) + C/bw(C));
//              its round trip is lat(D) + lat(C) (ucp_am_lat reports half a ping-pong).
//
// Large sizes run fewer iterations (--max-gb-per-size bounds the bytes moved per
// measurement, with at least 5 iterations), so prefill sizes do not take minutes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "common/cli.h"
#include "common/process_memory.h"
#include "transport/data_plane.h"
#include "transport/ucx/ucx_data_plane.h"
#include "transport/wire_format.h"

extern char** environ;

ABSL_FLAG(std::string, sizes, "1x7168,8x7168,32x7168,512x7168,4096x7168,32x2048",
          "comma-separated TOKENSxHIDDEN message shapes");
ABSL_FLAG(int64_t, iters, 200, "timed round trips per measurement (fewer for large sizes, "
                               "see --max-gb-per-size)");
ABSL_FLAG(int64_t, warmup, 20, "untimed round trips before each measurement");
ABSL_FLAG(int64_t, window, 8, "dispatches in flight for the bandwidth measurement");
ABSL_FLAG(int, rounds, 3,
          "bandwidth rounds per size, ours and ucx_perftest's taking turns; each side's best "
          "round counts (other tenants of the machine slow single rounds of either)");
ABSL_FLAG(double, max_gb_per_size, 2.0,
          "bound on dispatch + combine bytes per measurement; iterations are cut to fit "
          "(at least 5)");
ABSL_FLAG(std::string, dtype, "bf16", "dispatch dtype: bf16 or fp8 (e4m3 + one f32 scale per 128)");
ABSL_FLAG(std::string, combine_dtype, "fp32", "combine dtype: fp32 or bf16");
ABSL_FLAG(std::string, ucx_tls, "",
          "UCX transports (UCX_TLS syntax); empty (the workers' default) lets UCX choose");
ABSL_FLAG(std::string, ucx_config, "RNDV_SCHEME=am",
          "comma-separated KEY=VALUE UCX settings without the UCX_ prefix, for both "
          "processes and for ucx_perftest (default: what the workers set)");
ABSL_FLAG(bool, busy_poll, false,
          "UcxOptions::busy_poll in both processes (default false, as the workers)");
ABSL_FLAG(bool, retain_heap, true,
          "in both processes, yard::RetainFreedHeap() as the workers do: freed message "
          "buffers stay mapped and are reused; false shows what first-touch page faults of "
          "freshly mapped receive/encode buffers cost");
ABSL_FLAG(bool, compare_perftest, true, "also run ucx_perftest on the same sizes");
ABSL_FLAG(std::string, perftest, "/usr/bin/ucx_perftest", "path of ucx_perftest");
ABSL_FLAG(bool, json, false,
          "print exactly one JSON line on stdout: {\"results\": [{\"tokens\": N, "
          "\"hidden\": H, \"dispatch_bytes\": B, \"combine_bytes\": B, \"latency_us_p50\": F, "
          "\"latency_us_p99\": F, \"bandwidth_gb_s\": F, \"perftest_bandwidth_gb_s\": F, "
          "\"ratio\": F, ...}, ...], ...}; the table goes to stderr");
ABSL_FLAG(bool, peer, false, "internal: run as the echo-expert child process");

namespace yard::bench {
namespace {

using transport::DataPlaneHandlers;
using transport::DecodedMessage;
using transport::DecodeLimits;
using transport::MessageHeader;
using transport::MessageKind;
using transport::Payload;
using transport::PeerId;
using transport::TokenRoute;
using transport::UcxDataPlane;
using transport::UcxOptions;
using transport::WireDType;

constexpr PeerId kBenchId = 1;
constexpr PeerId kPeerId = 2;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

absl::StatusOr<WireDType> ParseDType(const std::string& name, bool combine) {
  if (name == "bf16") return WireDType::kBF16;
  if (name == "fp32") return WireDType::kFP32;
  if (name == "fp8" && !combine) return WireDType::kFP8E4M3;
  return absl::InvalidArgumentError(absl::StrCat(combine ? "--combine-dtype" : "--dtype", " ",
                                                 name, ": expected ",
                                                 combine ? "fp32 or bf16" : "bf16 or fp8"));
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseUcxConfig(
    const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ucx-config: expected KEY=VALUE, got \"", std::string(item), "\""));
    }
    out.emplace_back(kv[0], kv[1]);
  }
  return out;
}

// --retain-heap (default, as the workers): keep freed memory mapped for reuse.
void MaybeRetainHeap() {
  if (absl::GetFlag(FLAGS_retain_heap)) RetainFreedHeap();
}

UcxOptions MakeUcxOptions(const std::vector<std::pair<std::string, std::string>>& config) {
  UcxOptions options;
  options.transports = absl::GetFlag(FLAGS_ucx_tls);
  options.config = config;
  options.busy_poll = absl::GetFlag(FLAGS_busy_poll);
  return options;
}

// ---------------------------------------------------------------------------------
// The echo expert (--peer).
//
// Protocol on stdin/stdout (one line each): prints its address; reads the bench's
// address and connects; prints "ready"; answers dispatches until stdin closes.

int RunPeer() {
  MaybeRetainHeap();
  absl::StatusOr<WireDType> combine_dtype =
      ParseDType(absl::GetFlag(FLAGS_combine_dtype), /*combine=*/true);
  if (!combine_dtype.ok()) return Fail(combine_dtype.status().message());
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> config =
      ParseUcxConfig(absl::GetFlag(FLAGS_ucx_config));
  if (!config.ok()) return Fail(config.status().message());

  std::atomic<UcxDataPlane*> plane{nullptr};
  // One encoded combine per (tokens, hidden); progress thread only.
  std::map<std::pair<uint32_t, uint32_t>, Payload> combines;
  DataPlaneHandlers handlers{
      [&](PeerId from, std::vector<uint8_t> message) {
        absl::StatusOr<DecodedMessage> dispatch = transport::Decode(message, DecodeLimits{});
        if (!dispatch.ok() || dispatch->header.kind != MessageKind::kDispatch) {
          std::fprintf(stderr, "dataplane_bench peer: bad dispatch: %s\n",
                       dispatch.ok() ? "not a dispatch"
                                     : std::string(dispatch.status().message()).c_str());
          std::_Exit(4);  // closes the connection: the bench sees a peer error
        }
        const MessageHeader& h = dispatch->header;
        Payload& combine = combines[{h.token_count, h.hidden}];
        if (combine == nullptr) {
          std::vector<TokenRoute> routes(h.token_count);
          for (uint32_t t = 0; t < h.token_count; ++t) routes[t] = dispatch->route(t);
          std::vector<float> y(static_cast<size_t>(h.token_count) * h.hidden, 0.25f);
          MessageHeader reply = h;
          reply.sender = kPeerId;
          reply.dtype = *combine_dtype;
          combine = std::make_shared<const std::vector<uint8_t>>(
              transport::EncodeCombine(reply, routes, y));
        }
        plane.load()->Send(from, combine, nullptr);
        plane.load()->Recycle(std::move(message));  // as the expert server does
      },
      [](PeerId peer, absl::Status why) {
        std::fprintf(stderr, "dataplane_bench peer: peer %u: %s\n", peer,
                     why.ToString().c_str());
      }};
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> created =
      UcxDataPlane::Create(MakeUcxOptions(*config), kPeerId, handlers);
  if (!created.ok()) return Fail(created.status().ToString());
  plane.store(created->get());
  std::cout << (*created)->LocalAddress() << std::endl;
  std::string bench_address;
  if (!std::getline(std::cin, bench_address)) return 2;
  absl::Status connected = (*created)->Connect(kBenchId, bench_address);
  if (!connected.ok()) return Fail(absl::StrCat("peer connect: ", connected.ToString()));
  std::cout << "ready" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  created->reset();
  return 0;
}

// ---------------------------------------------------------------------------------
// The bench side.

// The echo-expert child and its stdin/stdout pipes; killed if still running at the end.
class PeerProcess {
 public:
  PeerProcess() = default;
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  ~PeerProcess() {
    if (to_child_ != nullptr) fclose(to_child_);
    if (from_child_ != nullptr) fclose(from_child_);
    if (pid_ > 0) {
      // Closing stdin asks it to exit; give it a moment before killing it.
      for (int i = 0; i < 50 && waitpid(pid_, nullptr, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (waitpid(pid_, nullptr, WNOHANG) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
  }

  absl::Status Start(std::vector<std::string> args) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return absl::InternalError("readlink /proc/self/exe failed");
    self[n] = '\0';
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) return absl::InternalError("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    posix_spawn_file_actions_addclose(&actions, to_child[1]);
    posix_spawn_file_actions_addclose(&actions, from_child[0]);
    args.insert(args.begin(), self);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, self, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (rc != 0) {
      pid_ = -1;
      close(to_child[1]);
      close(from_child[0]);
      return absl::InternalError(absl::StrCat("posix_spawn ", self, ": errno ", rc));
    }
    to_child_ = fdopen(to_child[1], "w");
    from_child_ = fdopen(from_child[0], "r");
    return absl::OkStatus();
  }

  // One protocol line ("" at end of file); UCX log lines ("[timestamp] ...") skipped.
  std::string ReadLine() {
    while (true) {
      std::string line;
      int c = fgetc(from_child_);
      for (; c != EOF && c != '\n'; c = fgetc(from_child_)) line.push_back(static_cast<char>(c));
      if (line.empty() || line[0] != '[' || c == EOF) return line;
    }
  }
  void WriteLine(const std::string& line) {
    fputs((line + "\n").c_str(), to_child_);
    fflush(to_child_);
  }

 private:
  pid_t pid_ = -1;
  FILE* to_child_ = nullptr;
  FILE* from_child_ = nullptr;
};

// Drives round trips to the peer: keeps `window` dispatches in flight, sending the
// next one from the receive handler (progress thread) as each combine arrives, and
// stamps send and receive times there. Run() is called from the main thread, one
// measurement at a time; everything else runs on the data plane's progress thread.
class Driver {
 public:
  struct Times {
    std::vector<double> sent;      // [count] seconds, steady clock
    std::vector<double> received;  // [count], in the same (FIFO) order
  };

  DataPlaneHandlers Handlers() {
    return DataPlaneHandlers{
        [this](PeerId from, std::vector<uint8_t> message) { OnCombine(from, std::move(message)); },
        [this](PeerId peer, absl::Status why) {
          Fail(absl::StrCat("peer ", peer, ": ", why.ToString()));
        }};
  }

  // Must be called before Run; `plane` must outlive every Run.
  void Bind(transport::DataPlaneInterface* plane) { plane_ = plane; }

  absl::StatusOr<Times> Run(Payload dispatch, uint32_t tokens, uint32_t hidden, int64_t count,
                            int64_t window, double timeout_s) {
    std::unique_lock<std::mutex> lock(mu_);
    dispatch_ = std::move(dispatch);
    tokens_ = tokens;
    hidden_ = hidden;
    count_ = count;
    sent_ = 0;
    received_ = 0;
    times_ = Times{std::vector<double>(count), std::vector<double>(count)};
    const int64_t first = std::min(window, count);
    for (int64_t i = 0; i < first; ++i) SendNextLocked();
    const bool finished = cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] {
      return received_ == count_ || !error_.empty();
    });
    if (!error_.empty()) return absl::UnavailableError(error_);
    if (!finished) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "%d of %d combines after %.0f s", received_, count_, timeout_s));
    }
    dispatch_ = nullptr;
    return std::move(times_);
  }

 private:
  void SendNextLocked() {
    times_.sent[sent_++] = Now();
    plane_->Send(kPeerId, dispatch_, [this](absl::Status s) {
      if (!s.ok()) Fail(absl::StrCat("send: ", s.ToString()));
    });
  }

  void OnCombine(PeerId from, std::vector<uint8_t> message) {
    const double t = Now();
    std::lock_guard<std::mutex> lock(mu_);
    if (received_ >= count_) {
      error_ = "a combine nobody asked for";
    } else {
      absl::StatusOr<DecodedMessage> combine = transport::Decode(message, DecodeLimits{});
      if (!combine.ok()) {
        error_ = absl::StrCat("bad combine: ", combine.status().message());
      } else if (from != kPeerId || combine->header.kind != MessageKind::kCombine ||
                 combine->header.token_count != tokens_ || combine->header.hidden != hidden_) {
        error_ = "combine does not answer the dispatch";
      } else {
        times_.received[received_++] = t;
        if (sent_ < count_) SendNextLocked();
      }
    }
    if (received_ == count_ || !error_.empty()) cv_.notify_all();
    plane_->Recycle(std::move(message));  // as the remote expert backend does
  }

  void Fail(std::string why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = std::move(why);
    cv_.notify_all();
  }

  transport::DataPlaneInterface* plane_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  Payload dispatch_;        // guarded by mu_
  uint32_t tokens_ = 0;     // guarded by mu_
  uint32_t hidden_ = 0;     // guarded by mu_
  int64_t count_ = 0;       // guarded by mu_
  int64_t sent_ = 0;        // guarded by mu_
  int64_t received_ = 0;    // guarded by mu_
  Times times_;             // guarded by mu_
  std::string error_;       // guarded by mu_; sticky
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()));
  return v[i];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 50); }

// ---------------------------------------------------------------------------------
// ucx_perftest.

struct PerftestFigures {
  double one_way_us_p50 = 0;  // ucp_am_lat: half a ping-pong, median
  double bandwidth_gb_s = 0;  // ucp_am_bw overall, 1e9 bytes/s
};

// Runs `perftest` as a server (child) and a client (popen) on loopback; returns the
// client's final figures: (50%ile, overall) of the first column group.
class Perftest {
 public:
  Perftest(std::string path, std::vector<std::pair<std::string, std::string>> env)
      : path_(std::move(path)), env_(std::move(env)) {}

  bool installed() const { return access(path_.c_str(), X_OK) == 0; }

  // test: "ucp_am_bw" or "ucp_am_lat". Returns {50%ile column, overall column} in µs.
  absl::StatusOr<std::pair<double, double>> Run(const std::string& test, uint64_t size,
                                                int64_t iters, int64_t warmup,
                                                int64_t window) {
    absl::Status last = absl::UnknownError("not run");
    for (int attempt = 0; attempt < 3; ++attempt) {
      absl::StatusOr<std::pair<double, double>> r = RunOnce(test, size, iters, warmup, window);
      if (r.ok()) return r;
      last = r.status();
    }
    return last;
  }

 private:
  absl::StatusOr<std::pair<double, double>> RunOnce(const std::string& test, uint64_t size,
                                                    int64_t iters, int64_t warmup,
                                                    int64_t window) {
    const int port = 20000 + static_cast<int>((getpid() * 7 + next_port_++) % 30000);
    const std::string port_s = std::to_string(port);
    // Server: same env, peer error handling (-e); prints nothing we need.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.push_back(*e);
    for (const auto& [k, v] : env_) env_strings.push_back(absl::StrCat("UCX_", k, "=", v));
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> server_args = {path_, "-p", port_s, "-e"};
    std::vector<char*> argv;
    for (std::string& a : server_args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t server = -1;
    const int rc = posix_spawn(&server, path_.c_str(), &actions, nullptr, argv.data(),
                               envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return absl::InternalError(absl::StrCat("posix_spawn ", path_, ": errno ", rc));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (waitpid(server, nullptr, WNOHANG) != 0) {
      return absl::UnavailableError(absl::StrCat("ucx_perftest server on port ", port, " exited"));
    }

    std::string command = "env";
    for (const auto& [k, v] : env_) absl::StrAppend(&command, " UCX_", k, "=", v);
    absl::StrAppend(&command, " ", path_, " 127.0.0.1 -p ", port, " -e -t ", test, " -s ", size,
                    " -H 32 -n ", iters, " -w ", warmup, " -f");
    if (test == "ucp_am_bw" && window > 0) absl::StrAppend(&command, " -O ", window);
    absl::StrAppend(&command, " 2>&1");
    std::string output;
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
      pclose(pipe);
    }
    // The server exits after one test; do not leave it behind if the client failed.
    for (int i = 0; i < 100 && waitpid(server, nullptr, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (waitpid(server, nullptr, WNOHANG) == 0) {
      kill(server, SIGKILL);
      waitpid(server, nullptr, 0);
    }
    // The figures line: iterations, then 7 numbers (50%ile, average, overall of the
    // latency/overhead column, bandwidth average/overall, message rate average/overall).
    std::optional<std::pair<double, double>> figures;
    std::istringstream lines(output);
    std::string line;
    while (std::getline(lines, line)) {
      std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (!words.empty() && words[0] == "Final:") words.erase(words.begin());
      if (words.size() != 8) continue;
      std::vector<double> numbers;
      for (const std::string& w : words) {
        double d;
        if (absl::SimpleAtod(w, &d)) numbers.push_back(d);
      }
      if (numbers.size() == 8) figures = std::make_pair(numbers[1], numbers[3]);
    }
    if (!figures) {
      return absl::UnavailableError(
          absl::StrCat("ucx_perftest ", test, " -s ", size, ": no figures in its output: ",
                       output.substr(output.size() > 600 ? output.size() - 600 : 0)));
    }
    return *figures;
  }

  std::string path_;
  std::vector<std::pair<std::string, std::string>> env_;
  int next_port_ = 0;
};

// ---------------------------------------------------------------------------------

struct Size {
  uint32_t tokens;
  uint32_t hidden;
};

absl::StatusOr<std::vector<Size>> ParseSizes(const std::string& text) {
  std::vector<Size> sizes;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(item, 'x');
    Size s;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &s.tokens) ||
        !absl::SimpleAtoi(parts[1], &s.hidden) || s.tokens == 0 || s.hidden == 0 ||
        s.tokens > (1u << 16) || s.hidden > (1u << 16)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sizes: expected TOKENSxHIDDEN (1..65536 each), got \"", std::string(item), "\""));
    }
    sizes.push_back(s);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("--sizes: empty");
  return sizes;
}

struct Result {
  Size size;
  uint64_t dispatch_bytes = 0;
  uint64_t combine_bytes = 0;
  int64_t lat_iters = 0;
  int64_t bw_iters = 0;
  double p50_us = 0;
  double p99_us = 0;
  double bandwidth_gb_s = 0;
  double dispatch_codec_us = 0;  // EncodeDispatch + Decode
  double combine_codec_us = 0;   // EncodeCombine + Decode
  bool have_perftest = false;
  double perftest_rtt_us = 0;    // lat(D) + lat(C), medians
  double perftest_gb_s = 0;
  std::string perftest_error;
};

// Median time of encode + Decode over `reps` repetitions, in µs.
double CodecMicros(const std::function<std::vector<uint8_t>()>& encode, int reps) {
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const double t0 = Now();
    std::vector<uint8_t> bytes = encode();
    absl::StatusOr<DecodedMessage> decoded = transport::Decode(bytes, DecodeLimits{});
    const double t1 = Now();
    if (!decoded.ok()) return -1;
    times.push_back(t1 - t0);
  }
  return 1e6 * Median(times);
}

int Run() {
  absl::StatusOr<std::vector<Size>> sizes = ParseSizes(absl::GetFlag(FLAGS_sizes));
  if (!sizes.ok()) return Fail(sizes.status().message());
  absl::StatusOr<WireDType> dtype = ParseDType(absl::GetFlag(FLAGS_dtype), /*combine=*/false);
  if (!dtype.ok()) return Fail(dtype.status().message());
  if (*dtype == WireDType::kFP32) return Fail("--dtype: expected bf16 or fp8");
  absl::StatusOr<WireDType> combine_dtype =
      ParseDType(absl::GetFlag(FLAGS_combine_dtype), /*combine=*/true);
  if (!combine_dtype.ok()) return Fail(combine_dtype.status().message());
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> config =
      ParseUcxConfig(absl::GetFlag(FLAGS_ucx_config));
  if (!config.ok()) return Fail(config.status().message());
  const int64_t iters = absl::GetFlag(FLAGS_iters);
  const int64_t warmup = absl::GetFlag(FLAGS_warmup);
  const int64_t window = absl::GetFlag(FLAGS_window);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (iters < 1 || warmup < 0 || window < 1 || rounds < 1) {
    return Fail("--iters, --window and --rounds must be >= 1, --warmup >= 0");
  }
  const double max_bytes = absl::GetFlag(FLAGS_max_gb_per_size) * 1e9;
  const bool json = absl::GetFlag(FLAGS_json);
  MaybeRetainHeap();

  const std::string load_before = LoadAverage();
  std::cerr << "dataplane_bench: load average " << load_before << "\n";

  // This process's data plane, then the peer.
  Driver driver;
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> plane =
      UcxDataPlane::Create(MakeUcxOptions(*config), kBenchId, driver.Handlers());
  if (!plane.ok()) return Fail(plane.status().ToString());
  driver.Bind(plane->get());
  PeerProcess peer;
  {
    std::vector<std::string> args = {
        "--peer",
        absl::StrCat("--ucx_tls=", absl::GetFlag(FLAGS_ucx_tls)),
        absl::StrCat("--ucx_config=", absl::GetFlag(FLAGS_ucx_config)),
        absl::StrCat("--combine_dtype=", absl::GetFlag(FLAGS_combine_dtype)),
        absl::StrCat("--busy_poll=", absl::GetFlag(FLAGS_busy_poll) ? "true" : "false"),
        absl::StrCat("--retain_heap=", absl::GetFlag(FLAGS_retain_heap) ? "true" : "false")};
    absl::Status started = peer.Start(std::move(args));
    if (!started.ok()) return Fail(started.ToString());
  }
  const std::string peer_address = peer.ReadLine();
  if (peer_address.rfind("ucx:", 0) != 0) {
    return Fail(absl::StrCat("peer did not print its address (said \"", peer_address, "\")"));
  }
  peer.WriteLine((*plane)->LocalAddress());
  if (const std::string ready = peer.ReadLine(); ready != "ready") {
    return Fail(absl::StrCat("peer not ready (said \"", ready, "\")"));
  }
  if (absl::Status c = (*plane)->Connect(kPeerId, peer_address); !c.ok()) {
    return Fail(c.ToString());
  }

  Perftest perftest(absl::GetFlag(FLAGS_perftest), *config);
  const bool compare = absl::GetFlag(FLAGS_compare_perftest);
  const bool perftest_installed = compare && perftest.installed();
  if (compare && !perftest_installed) {
    std::cerr << "dataplane_bench: " << absl::GetFlag(FLAGS_perftest)
              << " is not installed (Debian package ucx-utils); reporting our figures only\n";
  }

  std::mt19937 rng(12345);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Result> results;
  for (const Size& size : *sizes) {
    Result r;
    r.size = size;
    const size_t elements = static_cast<size_t>(size.tokens) * size.hidden;
    std::vector<float> x(elements);
    for (float& v : x) v = normal(rng);
    std::vector<TokenRoute> routes(size.tokens);
    for (uint32_t t = 0; t < size.tokens; ++t) routes[t] = TokenRoute{t % 64, t};
    MessageHeader header;
    header.step_id = 1;
    header.layer = 3;
    header.sender = kBenchId;
    header.token_count = size.tokens;
    header.hidden = size.hidden;
    header.dtype = *dtype;
    Payload dispatch = std::make_shared<const std::vector<uint8_t>>(
        transport::EncodeDispatch(header, routes, x));
    MessageHeader combine_header = header;
    combine_header.dtype = *combine_dtype;
    r.dispatch_bytes = dispatch->size();
    r.combine_bytes = transport::kWireHeaderSize +
                      *transport::PayloadLength(size.tokens, size.hidden, *combine_dtype);
    const double round_trip_bytes = static_cast<double>(r.dispatch_bytes + r.combine_bytes);
    const int64_t fit = static_cast<int64_t>(max_bytes / round_trip_bytes);
    const int64_t n = std::max<int64_t>(5, std::min(iters, fit));
    const int64_t w = std::max<int64_t>(1, std::min(warmup, n));
    r.lat_iters = n;
    r.bw_iters = n;
    const double timeout_s = 60 + 20 * round_trip_bytes * (n + w) / 1e9;

    std::cerr << absl::StrFormat("dataplane_bench: %ux%u: dispatch %d B, combine %d B, %d iters\n",
                                 size.tokens, size.hidden, r.dispatch_bytes, r.combine_bytes, n);
    // Latency: one in flight.
    if (absl::Status s = driver.Run(dispatch, size.tokens, size.hidden, w, 1, timeout_s).status();
        !s.ok()) {
      return Fail(absl::StrCat("warmup: ", s.ToString()));
    }
    absl::StatusOr<Driver::Times> lat = driver.Run(dispatch, size.tokens, size.hidden, n, 1, timeout_s);
    if (!lat.ok()) return Fail(absl::StrCat("latency: ", lat.status().ToString()));
    std::vector<double> rtt_us;
    for (int64_t i = 0; i < n; ++i) rtt_us.push_back(1e6 * (lat->received[i] - lat->sent[i]));
    r.p50_us = Percentile(rtt_us, 50);
    r.p99_us = Percentile(rtt_us, 99);

    // The wire format alone.
    const int reps = static_cast<int>(std::max<int64_t>(3, std::min<int64_t>(20, n)));
    std::vector<float> y(elements, 0.25f);
    r.dispatch_codec_us = CodecMicros(
        [&] { return transport::EncodeDispatch(header, routes, x); }, reps);
    r.combine_codec_us = CodecMicros(
        [&] { return transport::EncodeCombine(combine_header, routes, y); }, reps);

    const int64_t pw = std::min<int64_t>(warmup, n);
    if (perftest_installed) {
      absl::StatusOr<std::pair<double, double>> lat_d =
          perftest.Run("ucp_am_lat", r.dispatch_bytes, n, pw, 0);
      absl::StatusOr<std::pair<double, double>> lat_c =
          perftest.Run("ucp_am_lat", r.combine_bytes, n, pw, 0);
      for (const auto* p : {&lat_d, &lat_c}) {
        if (!p->ok() && r.perftest_error.empty()) {
          r.perftest_error = std::string(p->status().message());
        }
      }
      if (r.perftest_error.empty()) r.perftest_rtt_us = lat_d->first + lat_c->first;
    }
    // Bandwidth: `window` in flight, round after round, ours then perftest's.
    for (int round = 0; round < rounds; ++round) {
      absl::StatusOr<Driver::Times> bw =
          driver.Run(dispatch, size.tokens, size.hidden, n, window, timeout_s);
      if (!bw.ok()) return Fail(absl::StrCat("bandwidth: ", bw.status().ToString()));
      const double elapsed = bw->received.back() - bw->sent.front();
      r.bandwidth_gb_s =
          std::max(r.bandwidth_gb_s, round_trip_bytes * static_cast<double>(n) / elapsed / 1e9);
      if (!perftest_installed || !r.perftest_error.empty()) continue;
      absl::StatusOr<std::pair<double, double>> bw_d =
          perftest.Run("ucp_am_bw", r.dispatch_bytes, n, pw, window);
      absl::StatusOr<std::pair<double, double>> bw_c =
          perftest.Run("ucp_am_bw", r.combine_bytes, n, pw, window);
      for (const auto* p : {&bw_d, &bw_c}) {
        if (!p->ok() && r.perftest_error.empty()) {
          r.perftest_error = std::string(p->status().message());
        }
      }
      if (!r.perftest_error.empty()) continue;
      // ucp_am_bw's "overall overhead" is elapsed time per message.
      const double seconds = 1e-6 * (bw_d->second + bw_c->second);
      r.perftest_gb_s = std::max(r.perftest_gb_s, round_trip_bytes / seconds / 1e9);
    }
    if (perftest_installed) {
      if (r.perftest_error.empty()) {
        r.have_perftest = true;
      } else {
        std::cerr << "dataplane_bench: perftest: " << r.perftest_error << "\n";
      }
    }
    std::cerr << absl::StrFormat(
        "dataplane_bench:   p50 %.1f us, p99 %.1f us, %.3f GB/s%s\n", r.p50_us, r.p99_us,
        r.bandwidth_gb_s,
        r.have_perftest ? absl::StrFormat(" (ucx_perftest %.3f GB/s)", r.perftest_gb_s) : "");
    results.push_back(r);
  }
  const std::string load_after = LoadAverage();

  std::ostringstream table;
  table << absl::StrFormat(
      "dataplane_bench  UCX data plane, two processes on this machine: dispatch %s, "
      "combine %s, UCX_TLS \"%s\", config \"%s\", %s%s\n"
      "load average  %s (start)  %s (end), %u cpus\n",
      transport::WireDTypeName(*dtype), transport::WireDTypeName(*combine_dtype),
      absl::GetFlag(FLAGS_ucx_tls), absl::GetFlag(FLAGS_ucx_config),
      absl::GetFlag(FLAGS_busy_poll) ? "busy poll" : "sleeping progress thread",
      absl::GetFlag(FLAGS_retain_heap) ? ", retain heap" : "", load_before,
      load_after, std::thread::hardware_concurrency());
  if (compare && !perftest_installed) {
    table << "ucx_perftest: not installed (" << absl::GetFlag(FLAGS_perftest)
          << "); perftest columns empty\n";
  }
  table << absl::StrFormat("\n%12s %10s %10s %6s %9s %9s %8s %9s %9s %6s %11s %11s\n", "tokens x H",
                           "dispatch B", "combine B", "iters", "rtt p50", "rtt p99", "GB/s",
                           "pt rtt", "pt GB/s", "ratio", "codec disp", "codec comb");
  for (const Result& r : results) {
    const std::string pt_rtt = r.have_perftest ? absl::StrFormat("%.1f", r.perftest_rtt_us) : "-";
    const std::string pt_bw = r.have_perftest ? absl::StrFormat("%.3f", r.perftest_gb_s) : "-";
    const std::string ratio =
        r.have_perftest ? absl::StrFormat("%.2f", r.bandwidth_gb_s / r.perftest_gb_s) : "-";
    table << absl::StrFormat("%12s %10d %10d %6d %9.1f %9.1f %8.3f %9s %9s %6s %11.1f %11.1f\n",
                             absl::StrCat(r.size.tokens, "x", r.size.hidden), r.dispatch_bytes,
                             r.combine_bytes, r.bw_iters, r.p50_us, r.p99_us, r.bandwidth_gb_s,
                             pt_rtt, pt_bw, ratio, r.dispatch_codec_us, r.combine_codec_us);
  }
  table << absl::StrFormat(
      "  rtt = dispatch sent -> combine received, µs, one in flight; GB/s = (dispatch + "
      "combine bytes) × iters / elapsed, %d in flight (1e9 B/s), best of %d rounds (pt too, "
      "rounds taking turns).\n"
      "  pt = ucx_perftest (-e, -H 32, same UCX_TLS and settings): rtt = ucp_am_lat median "
      "one-way(D) + one-way(C); GB/s = (D + C) / (D/ucp_am_bw(D) + C/ucp_am_bw(C)), -O %d. "
      "ratio = ours / pt.\n"
      "  codec = median µs of EncodeDispatch + Decode (disp) and EncodeCombine + Decode "
      "(comb), one thread, not in the rtt/GB/s loop.\n",
      window, rounds, window);
  std::cerr << table.str();

  if (json) {
    std::string line = "{\"results\": [";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      const std::string pt = r.have_perftest ? absl::StrFormat("%.4f", r.perftest_gb_s) : "null";
      const std::string ratio =
          r.have_perftest ? absl::StrFormat("%.4f", r.bandwidth_gb_s / r.perftest_gb_s) : "null";
      const std::string pt_rtt =
          r.have_perftest ? absl::StrFormat("%.3f", r.perftest_rtt_us) : "null";
      absl::StrAppend(
          &line, i > 0 ? ", " : "",
          absl::StrFormat(
              "{\"tokens\": %u, \"hidden\": %u, \"dispatch_bytes\": %d, \"combine_bytes\": %d, "
              "\"latency_us_p50\": %.3f, \"latency_us_p99\": %.3f, \"bandwidth_gb_s\": %.4f, "
              "\"perftest_bandwidth_gb_s\": %s, \"ratio\": %s, \"perftest_rtt_us\": %s, "
              "\"dispatch_codec_us\": %.3f, \"combine_codec_us\": %.3f, \"iters\": %d}",
              r.size.tokens, r.size.hidden, r.dispatch_bytes, r.combine_bytes, r.p50_us,
              r.p99_us, r.bandwidth_gb_s, pt, ratio, pt_rtt, r.dispatch_codec_us,
              r.combine_codec_us, r.bw_iters));
    }
    absl::StrAppend(&line,
                    absl::StrFormat("], \"dtype\": \"%s\", \"combine_dtype\": \"%s\", "
                                    "\"window\": %d, \"ucx_tls\": \"%s\", \"ucx_config\": \"%s\", "
                                    "\"busy_poll\": %s, \"retain_heap\": %s, \"perftest_installed\": %s, "
                                    "\"load_average\": \"%s\"}",
                                    absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_combine_dtype),
                                    window, absl::GetFlag(FLAGS_ucx_tls),
                                    absl::GetFlag(FLAGS_ucx_config),
                                    absl::GetFlag(FLAGS_busy_poll) ? "true" : "false",
                                    absl::GetFlag(FLAGS_retain_heap) ? "true" : "false",
                                    perftest_installed ? "true" : "false", load_before));
    std::cout << line << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace yard::bench

int main(int argc, char** argv) {
  yard::ParseCommandLine(
      argc, argv,
      "Dispatch + combine round trips over the UCX data plane between this process and an "
      "echo-expert child it starts, beside ucx_perftest on the same transport.\n"
      "usage: dataplane_bench [--sizes 1x7168,32x7168,...] [--iters 200] [--warmup 20] "
      "[--window 8] [--dtype bf16|fp8] [--combine-dtype fp32|bf16] [--ucx-tls TLS] "
      "[--ucx-config RNDV_SCHEME=am] [--busy-poll] [--retain-heap] [--compare-perftest=false] "
      "[--json]\n"
      "Run it on an otherwise idle machine; it prints the load average.");
  if (absl::GetFlag(FLAGS_peer)) return yard::bench::RunPeer();
  return yard::bench::Run();
}
