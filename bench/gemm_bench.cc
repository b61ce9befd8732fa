// Gemm throughput on DeepSeek-V2-Lite shapes against this machine's own bounds:
//   M = 1        GB/s of weight bytes vs the measured read bandwidth (decode);
//   M = 4..64    time relative to M = 1, with FP32 and with BF16 activations (batched decode);
//   M = 512      GFLOP/s vs the measured BF16 / FP32 peak (prefill).
// Weights are spread over enough copies (--pool_mib, 1 GiB by default) that every
// call reads them from DRAM, as a real decode step does; the read bandwidth is
// measured over a buffer of the same size. On a busy machine, a smaller pool
// (256 MiB, still far beyond the caches) with many --reps finds more undisturbed
// passes for both.
//
//   bazel run -c opt //bench:gemm_bench -- [--isa=avx2|avx512] [--threads=N]
//       [--reps=N] [--pool_mib=N] [--quick] [--m=4,8,16,32,64] [--shape=NAME-PART]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/numerics.h"
#include "kernels/cpu/peak_flops.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {
namespace {

struct Flags {
  std::string isa;
  int threads = 0;
  int reps = 5;
  bool quick = false;
  // Bytes the weights of one shape rotate through; the default (1 GiB) defeats the
  // caches, a small value measures cache-resident speed.
  int64_t pool_mib = 1024;
  // Time with the process's CPU clock instead of the wall clock: with --threads=1,
  // the kernel's own cost even while other processes share the cores (for tuning;
  // report wall-clock numbers).
  bool cpu_time = false;
  // Batched M beside M = 1, and a filter on the shapes' names (for tuning one case).
  std::vector<int64_t> batches = {4, 8, 16, 32, 64};
  std::string shape;
};

bool g_cpu_time = false;

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      const size_t len = std::strlen(name);
      return arg.compare(0, len, name) == 0 ? arg.c_str() + len : nullptr;
    };
    if (const char* v = value("--isa=")) {
      flags.isa = v;
    } else if (const char* v = value("--threads=")) {
      flags.threads = std::atoi(v);
    } else if (const char* v = value("--reps=")) {
      flags.reps = std::max(1, std::atoi(v));
    } else if (const char* v = value("--pool_mib=")) {
      flags.pool_mib = std::max(1, std::atoi(v));
    } else if (arg == "--cpu_time") {
      flags.cpu_time = true;
    } else if (arg == "--quick") {
      flags.quick = true;
    } else if (const char* v = value("--m=")) {
      flags.batches.clear();
      for (const char* p = v; *p != '\0';) {
        char* end;
        const long m = std::strtol(p, &end, 10);
        if (end == p || m < 2) {
          std::fprintf(stderr, "--m: a comma-separated list of integers >= 2\n");
          std::exit(2);
        }
        flags.batches.push_back(m);
        p = *end == ',' ? end + 1 : end;
      }
    } else if (const char* v = value("--shape=")) {
      flags.shape = v;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      std::exit(2);
    }
  }
  return flags;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double Now() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// `copies` weight matrices of one shape in one allocation, plus their scales.
class WeightSet {
 public:
  WeightSet(WeightType type, int64_t n, int64_t k, size_t min_total_bytes) {
    const int64_t elem = type == WeightType::kBf16 ? 2 : 1;
    bytes_per_copy_ = static_cast<size_t>(n * k * elem);
    copies_ = std::max<size_t>(2, (min_total_bytes + bytes_per_copy_ - 1) / bytes_per_copy_);
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, RoundUp(bytes_per_copy_ * copies_))));
    // Plausible values: small normals (BF16) / finite codes (FP8), filled fast.
    std::mt19937 rng(1);
    std::vector<uint8_t> pattern(1 << 16);
    for (size_t i = 0; i < pattern.size(); ++i) {
      pattern[i] = type == WeightType::kBf16
                       ? static_cast<uint8_t>(i % 2 ? 0x3C + rng() % 4 : rng())
                       : static_cast<uint8_t>(rng() % 0x7E | (rng() & 0x80));
    }
    const size_t total = bytes_per_copy_ * copies_;
    DefaultThreadPool().ParallelFor(static_cast<int64_t>((total + pattern.size() - 1) / pattern.size()),
                                    [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const size_t offset = b * pattern.size();
        std::memcpy(data_.get() + offset, pattern.data(), std::min(pattern.size(), total - offset));
      }
    });
    scales_.assign(((n + 127) / 128) * ((k + 127) / 128), 1.0f / 256);
    for (size_t c = 0; c < copies_; ++c) {
      views_.push_back(WeightView{.type = type,
                                  .data = data_.get() + c * bytes_per_copy_,
                                  .n = n,
                                  .k = k,
                                  .scale_inv = type == WeightType::kFp8E4m3 ? scales_.data() : nullptr});
    }
  }
  const std::vector<WeightView>& views() const { return views_; }
  size_t bytes_per_copy() const { return bytes_per_copy_; }

 private:
  static size_t RoundUp(size_t v) { return (v + 4095) / 4096 * 4096; }
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  size_t bytes_per_copy_ = 0;
  size_t copies_ = 0;
  std::unique_ptr<uint8_t, Free> data_;
  std::vector<float> scales_;
  std::vector<WeightView> views_;
};

// Calls Gemm on every copy in turn (so each call reads cold weights); returns the
// mean seconds per call.
class GemmPass {
 public:
  GemmPass(const WeightSet& set, int64_t m, const GemmOptions& options)
      : set_(set), m_(m), options_(options) {
    const WeightView& first = set.views().front();
    x_.resize(m * first.k);
    std::mt19937 rng(2);
    std::normal_distribution<float> normal;
    for (float& v : x_) v = normal(rng);
    y_.resize(m * first.n);
    Run();  // warm-up: page faults, scratch allocation, the pool's workers
  }
  double Run() {
    const double start = Now();
    for (const WeightView& w : set_.views()) Gemm(x_.data(), m_, w, y_.data(), options_);
    return (Now() - start) / set_.views().size();
  }

 private:
  const WeightSet& set_;
  int64_t m_;
  GemmOptions options_;
  std::vector<float> x_;
  std::vector<float> y_;
};

// Best time of one Gemm call over `reps` passes.
double TimeGemm(const WeightSet& set, int64_t m, const GemmOptions& options, int reps) {
  GemmPass pass(set, m, options);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) best = std::min(best, pass.Run());
  return best;
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  g_cpu_time = flags.cpu_time;
  if (!flags.isa.empty()) SetActiveIsa(IsaFromName(flags.isa).value_or(BestSupportedIsa()));
  ThreadPool pool(ThreadPool::Options{.num_threads = flags.threads});

  std::printf("gemm_bench: isa %s, %d threads, best of %d, %s clock, load average %s\n",
              DescribeIsaChoice().c_str(), pool.num_threads(), flags.reps,
              flags.cpu_time ? "process CPU" : "wall", LoadAverage().c_str());
  ReadBandwidthProbe probe(BandwidthOptions{.bytes = static_cast<size_t>(flags.pool_mib) << 20,
                                            .pool = &pool,
                                            .process_cpu_time = flags.cpu_time});
  double bandwidth = 0.0;
  for (int r = 0; r < flags.reps; ++r) bandwidth = std::max(bandwidth, probe.Pass());
  const PeakFlops peak = MeasurePeakFlops(&pool);
  std::printf("read bandwidth %.2f GB/s; peak BF16 %.1f GFLOP/s (vdpbf16ps), FP32 %.1f "
              "GFLOP/s (FMA)\n\n",
              bandwidth / 1e9, peak.bf16_flops_per_second / 1e9,
              peak.fp32_flops_per_second / 1e9);

  const size_t pool_bytes = static_cast<size_t>(flags.pool_mib) << 20;
  struct Shape {
    int64_t n, k;
    const char* what;
  };
  const std::vector<Shape> shapes =
      flags.quick ? std::vector<Shape>{{2048, 2048, "q/o proj"}}
                  : std::vector<Shape>{{2048, 2048, "o_proj"},
                                       {1408, 2048, "expert gate/up"},
                                       {2048, 1408, "expert down"},
                                       {102400, 2048, "lm_head"}};
  std::vector<int64_t> batches = {1};
  batches.insert(batches.end(), flags.batches.begin(), flags.batches.end());
  // "of bw": best M=1 pass / best sweep pass of the whole run. "paired": the median,
  // over passes, of an M=1 pass / the sweep pass run just before it (robust to load
  // that comes and goes). Batched M: time / M=1 with FP32 activations, then with BF16
  // ones (what ActivationPrecision::kAuto picks from GemmOptions::bf16_min_rows on).
  std::printf("%-6s %-15s %6s %6s | %8s %7s %6s %6s | batched M: time/M=1 fp32-act, bf16-act\n",
              "dtype", "shape", "n", "k", "M=1 us", "GB/s", "of bw", "paired");
  for (WeightType type : {WeightType::kBf16, WeightType::kFp8E4m3}) {
    for (const Shape& shape : shapes) {
      if (std::string(shape.what).find(flags.shape) == std::string::npos) continue;
      WeightSet set(type, shape.n, shape.k, pool_bytes);
      const GemmOptions options{.precision = ActivationPrecision::kAuto, .pool = &pool};
      std::vector<double> times;
      std::vector<double> paired;
      {
        GemmPass pass(set, 1, options);
        double best = 1e30;
        for (int r = 0; r < flags.reps; ++r) {
          const double sweep = probe.Pass();
          bandwidth = std::max(bandwidth, sweep);
          const double t = pass.Run();
          best = std::min(best, t);
          paired.push_back(set.bytes_per_copy() / t / sweep);
        }
        std::sort(paired.begin(), paired.end());
        times.push_back(best);
      }
      const double gbps = set.bytes_per_copy() / times[0] / 1e9;
      std::printf("%-6s %-15s %6ld %6ld | %8.1f %7.2f %5.1f%% %5.1f%% |",
                  type == WeightType::kBf16 ? "bf16" : "fp8", shape.what, shape.n, shape.k,
                  times[0] * 1e6, gbps, 100.0 * gbps * 1e9 / bandwidth,
                  100.0 * paired[paired.size() / 2]);
      for (size_t b = 1; b < batches.size(); ++b) {
        double t[2];
        int i = 0;
        for (ActivationPrecision precision :
             {ActivationPrecision::kFp32, ActivationPrecision::kBf16}) {
          t[i++] = TimeGemm(set, batches[b], GemmOptions{.precision = precision, .pool = &pool},
                            flags.reps);
        }
        std::printf("  M=%ld %.2fx %.2fx", batches[b], t[0] / times[0], t[1] / times[0]);
      }
      std::printf("\n");
    }
  }

  std::printf("\nprefill M=512 (weights rotate through %zu MiB)\n", pool_bytes >> 20);
  for (WeightType type : {WeightType::kBf16, WeightType::kFp8E4m3}) {
    for (const Shape& shape : shapes) {
      if (shape.n > 20000) continue;  // lm_head runs on the last position only
      if (std::string(shape.what).find(flags.shape) == std::string::npos) continue;
      WeightSet set(type, shape.n, shape.k, size_t{64} << 20);
      for (ActivationPrecision precision :
           {ActivationPrecision::kBf16, ActivationPrecision::kFp32}) {
        const int64_t m = 512;
        const double t = TimeGemm(set, m, GemmOptions{.precision = precision, .pool = &pool},
                                  std::max(2, flags.reps / 2));
        const double flops = 2.0 * m * shape.n * shape.k / t;
        const bool bf16 = precision == ActivationPrecision::kBf16 && ActiveIsa() == Isa::kAvx512;
        const double reference = bf16 ? peak.bf16_flops_per_second : peak.fp32_flops_per_second;
        std::printf("%-6s %-15s %6ld %6ld %s-act | %8.2f ms %8.1f GFLOP/s  %5.1f%% of %s peak\n",
                    type == WeightType::kBf16 ? "bf16" : "fp8", shape.what, shape.n, shape.k,
                    bf16 ? "bf16" : "fp32", t * 1e3, flops / 1e9, 100.0 * flops / reference,
                    bf16 ? "BF16" : "FP32");
      }
    }
  }
  std::printf("\nbest read bandwidth over the run %.2f GB/s; load average at end %s\n",
              bandwidth / 1e9, LoadAverage().c_str());
  return 0;
}

}  // namespace
}  // namespace yard::kernels::cpu

int main(int argc, char** argv) { return yard::kernels::cpu::Main(argc, argv); }
