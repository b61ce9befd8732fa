// Times MlaAttention on V2-Lite-like shapes (16 heads, kv_lora_rank 512, rope 64,
// 64-token blocks; --heads for V3's 128) and prints, per case, the cache bytes read
// per call as GB/s beside this machine's read bandwidth (MeasureReadBandwidth) and
// the FLOP rate beside the cores' FP32 FMA peak (MeasurePeakFlops). Decode: batch × one query over
// `context` tokens. Prefill: one chunk of 512 queries at the start of a prompt and at its end
// (context - 512). For the prefill choice it also times the matmul an expanded-K/V prefill would
// need first (kv_b_proj over every cached token: [context, 512] × [heads·256, 512]ᵀ, BF16 weights,
// Gemm's default precision) and prints what the expanded form would cost if its attention (192-dim
// keys, 128-dim values per head) ran at the absorbed kernel's FLOP rate.
//
//   mla_decode_bench [--heads 16] [--reps 20] [--threads N] [--isa avx512|avx2|scalar]
//
// Not a test: the numbers depend on the machine and its load.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/mla/latent_attention.h"
#include "kernels/cpu/numerics.h"
#include "kernels/cpu/peak_flops.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {
namespace {

constexpr int64_t kRank = 512;
constexpr int64_t kRope = 64;
constexpr int64_t kBlockTokens = 64;

struct Case {
  const char* kind;
  int64_t batch;
  int64_t context;
  // Queries per sequence and where they start (decode: 1 at context - 1).
  int64_t queries;
  int64_t first_position;
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void Run(const Case& c, int64_t heads, int reps, ThreadPool& threads, double bandwidth,
         double peak_flops) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t latent = kRank + kRope;
  const int64_t blocks_per_seq = (c.context + kBlockTokens - 1) / kBlockTokens;
  const int64_t blocks = blocks_per_seq * c.batch;
  std::vector<uint16_t> pool(blocks * kBlockTokens * latent);
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = FloatToBf16(normal(rng));
  std::vector<int32_t> ids(blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  const int64_t rows = c.queries * heads;
  std::vector<float> q_abs(c.batch * rows * kRank), q_rope(c.batch * rows * kRope);
  for (float& v : q_abs) v = normal(rng);
  for (float& v : q_rope) v = normal(rng);
  std::vector<float> out(c.batch * rows * kRank);
  std::vector<MlaSequenceQueries> batch;
  for (int64_t s = 0; s < c.batch; ++s) {
    batch.push_back(MlaSequenceQueries{.block_table = ids.data() + s * blocks_per_seq,
                                       .first_position = c.first_position,
                                       .num_queries = c.queries,
                                       .q_absorbed = q_abs.data() + s * rows * kRank,
                                       .q_rope = q_rope.data() + s * rows * kRope,
                                       .out = out.data() + s * rows * kRank});
  }
  const LatentCacheView view{.pool = pool.data(),
                             .num_blocks = blocks,
                             .block_tokens = kBlockTokens,
                             .kv_lora_rank = kRank,
                             .rope_dim = kRope};
  // Both precisions alternate rep by rep, so a change in the machine's load hits
  // both alike; the best rep of each is reported (the least disturbed).
  const MlaAttentionOptions fp32_options{.precision = MlaPrecision::kFp32, .pool = &threads};
  const MlaAttentionOptions bf16_options{.precision = MlaPrecision::kBf16, .pool = &threads};
  MlaAttention(view, batch, heads, 0.07f, fp32_options);  // warm-up
  MlaAttention(view, batch, heads, 0.07f, bf16_options);
  std::vector<double> times, bf16_times;
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    MlaAttention(view, batch, heads, 0.07f, fp32_options);
    times.push_back(Seconds(std::chrono::steady_clock::now() - start));
    start = std::chrono::steady_clock::now();
    MlaAttention(view, batch, heads, 0.07f, bf16_options);
    bf16_times.push_back(Seconds(std::chrono::steady_clock::now() - start));
  }
  std::sort(times.begin(), times.end());
  std::sort(bf16_times.begin(), bf16_times.end());
  const double median = times[times.size() / 2];
  const double best = times.front();
  const double bf16_best = bf16_times.front();
  // Distinct cache bytes a call must read, and the multiply-adds it does (each
  // query row over the tokens it sees: scores over the latent, values over the rank).
  const double bytes = static_cast<double>(c.batch) * c.context * latent * 2;
  double visible = 0.0;
  for (int64_t i = 0; i < c.queries; ++i) visible += c.first_position + i + 1;
  const double flops = 2.0 * c.batch * heads * visible * (latent + kRank);
  std::printf(
      "%-8s batch %3lld context %5lld queries %4lld | median %9.1f us best %9.1f us | cache "
      "%6.2f GB/s (%5.1f%% of %.1f) | %6.1f GFLOP/s (%4.1f%% of peak)\n",
      c.kind, static_cast<long long>(c.batch), static_cast<long long>(c.context),
      static_cast<long long>(c.queries), median * 1e6, best * 1e6, bytes / best * 1e-9,
      100.0 * bytes / best / bandwidth, bandwidth * 1e-9, flops / best * 1e-9,
      100.0 * flops / best / peak_flops);
  std::printf(
      "  bf16 dot products: best %9.1f us | cache %6.2f GB/s | %6.1f GFLOP/s | %.2fx fp32\n",
      bf16_best * 1e6, bytes / bf16_best * 1e-9, flops / bf16_best * 1e-9, best / bf16_best);
  if (c.queries == 1) return;
  // The expanded alternative: K/V of every cached token from kv_b_proj, then
  // attention over 192-dim keys and 128-dim values.
  const int64_t nope = 128, v_dim = 128;
  std::vector<uint16_t> kv_b(heads * (nope + v_dim) * kRank);
  for (uint16_t& v : kv_b) v = FloatToBf16(normal(rng) * 0.05f);
  const WeightView w{
      .type = WeightType::kBf16, .data = kv_b.data(), .n = heads * (nope + v_dim), .k = kRank};
  std::vector<float> c_kv(c.context * kRank);
  for (float& v : c_kv) v = normal(rng);
  std::vector<float> kv(c.context * w.n);
  Gemm(c_kv.data(), c.context, w, kv.data(), GemmOptions{.pool = &threads});
  double expand = 1e30;
  for (int r = 0; r < std::max(3, reps / 4); ++r) {
    const auto start = std::chrono::steady_clock::now();
    Gemm(c_kv.data(), c.context, w, kv.data(), GemmOptions{.pool = &threads});
    expand = std::min(expand, Seconds(std::chrono::steady_clock::now() - start));
  }
  const double expanded_attention_flops = 2.0 * c.batch * heads * visible * (nope + kRope + v_dim);
  const double expanded = expand + expanded_attention_flops / (flops / best);
  std::printf(
      "  expanded form: kv_b matmul %9.1f us (%6.1f GFLOP/s) + attention at the same rate "
      "%9.1f us = %9.1f us (absorbed %9.1f us)\n",
      expand * 1e6, 2.0 * c.context * w.n * kRank / expand * 1e-9, (expanded - expand) * 1e6,
      expanded * 1e6, best * 1e6);
}

}  // namespace
}  // namespace yard::kernels::cpu

int main(int argc, char** argv) {
  using namespace yard::kernels::cpu;
  int64_t heads = 16;
  int reps = 20;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--heads") == 0) {
      heads = std::atoll(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--reps") == 0) {
      reps = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--isa") == 0) {
      const std::optional<Isa> isa = IsaFromName(argv[i + 1]);
      if (!isa) {
        std::fprintf(stderr, "unknown --isa %s\n", argv[i + 1]);
        return 2;
      }
      SetActiveIsa(*isa);
    } else {
      std::fprintf(stderr, "usage: %s [--heads N] [--reps N] [--threads N] [--isa NAME]\n",
                   argv[0]);
      return 2;
    }
  }
  ThreadPool pool(ThreadPool::Options{.num_threads = threads});
  const double bandwidth = MeasureReadBandwidth(
      BandwidthOptions{.bytes = size_t{512} << 20, .repetitions = 5, .pool = &pool});
  const double peak = MeasurePeakFlops(&pool).fp32_flops_per_second;
  std::printf("%s, %d threads, heads %lld, read bandwidth %.1f GB/s, FP32 peak %.1f GFLOP/s\n",
              DescribeIsaChoice().c_str(), pool.num_threads(), static_cast<long long>(heads),
              bandwidth * 1e-9, peak * 1e-9);
  const Case cases[] = {
      {"decode", 1, 512, 1, 511},    {"decode", 1, 4096, 1, 4095}, {"decode", 32, 512, 1, 511},
      {"decode", 32, 4096, 1, 4095}, {"prefill", 1, 512, 512, 0},  {"prefill", 1, 4096, 512, 3584},
  };
  for (const Case& c : cases) Run(c, heads, reps, pool, bandwidth, peak);
  return 0;
}
