// decode_bench: the fast CPU model runner (engine::FastModel) on a real checkpoint,
// against this machine's own bounds.
//
//   prefill   one sequence of --prompt-len tokens in chunks of --prefill-chunk:
//             tokens/s, and the FLOP/s it reaches against the measured BF16 peak.
//   decode    for each --batch B: B sequences at context --prompt-len, --gen-len steps
//             of one token each: tokens/s = B·steps / time (prefill excluded), beside
//             the bound  B / (bytes read per step / read bandwidth).
//
// The bytes of a step are counted, not guessed: every non-expert weight (attention,
// dense FFN, shared experts, router, lm_head), the embedding rows of the B tokens, the
// routed experts the step actually activated (distinct experts per MoE layer, counted
// by a wrapper around the expert backend), and the latent KV rows attention reads
// (B · context · layers · latent_dim · 2 bytes). The read bandwidth is measured by the
// bench itself (kernels/cpu/memory_bandwidth.h: a read-only sweep of a buffer far
// larger than the caches on every thread of the pool), the best of passes taken at
// the start and before each batch size, so a burst of load elsewhere does not lower
// the bound.
//
// The model runner is driven directly through BatchForwardInterface::Forward (no
// scheduler), so the numbers are the model's. Only sequence 0 is prefilled; its
// latent cache rows are copied to the other sequences (the rows a prefill would write
// are the same for the same prompt), and the decode tokens are drawn at random per
// sequence (--next-tokens=random), so the sequences of a batch route like independent
// requests instead of repeating one another.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/cluster_decode.h"
#include "common/cli.h"
#include "engine/batch_forward.h"
#include "engine/expert_backend.h"
#include "engine/fast_model.h"
#include "engine/kv_cache.h"
#include "engine/local_expert_backend.h"
#include "engine/model_weights.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/peak_flops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_view.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"

ABSL_FLAG(std::string, model, "",
          "checkpoint directory: config.json and model.safetensors (or shards), BF16 or "
          "FP8 with 128x128 block scales (required)");
ABSL_FLAG(std::string, batch, "1,8,32,64",
          "comma-separated decode batch sizes (sequences decoding together)");
ABSL_FLAG(int64_t, prompt_len, 512,
          "prompt tokens: the prefill length, and the context every decode batch starts at");
ABSL_FLAG(int64_t, gen_len, 64, "timed decode steps per batch size (one token per sequence each)");
ABSL_FLAG(int64_t, warmup_steps, 1,
          "untimed decode steps per batch size before the timed ones (the context grows by "
          "these too)");
ABSL_FLAG(int64_t, prefill_chunk, 512, "tokens per prefill Forward call (chunked prefill)");
ABSL_FLAG(int, prefill_reps, 2,
          "prefill passes over the prompt; the fastest is reported (the first also maps "
          "the checkpoint's pages in)");
ABSL_FLAG(bool, json, false,
          "print exactly one JSON line on stdout: {\"read_bandwidth_gb_s\": F, "
          "\"prefill_tokens_per_s\": F, \"decode\": [{\"batch\": N, \"tokens_per_s\": F, "
          "\"bound_tokens_per_s\": F, ...}, ...], ...}; the table goes to stderr");
ABSL_FLAG(bool, deterministic, false,
          "run the model in deterministic mode (FP32 activations everywhere: a sequence's "
          "logits are bitwise independent of batch and thread count; prefill is slower)");
ABSL_FLAG(int, threads, 0,
          "threads for the kernels and the bandwidth/peak probes; 0: the default pool "
          "(YARD_NUM_THREADS, else every hardware thread)");
ABSL_FLAG(std::string, next_tokens, "random",
          "decode input tokens: 'random' (uniform per sequence and step, seeded: the "
          "sequences of a batch route like independent requests) or 'greedy' (argmax of "
          "the step's logits)");
ABSL_FLAG(int64_t, bandwidth_mib, 1024,
          "MiB swept by the read-bandwidth probe (must be far beyond the last-level cache)");
ABSL_FLAG(int, bandwidth_reps, 5,
          "bandwidth passes at the start (two more before each batch size); the best pass "
          "is the bound's bandwidth");
ABSL_FLAG(uint64_t, seed, 1, "seed of the prompt and random decode tokens");
ABSL_FLAG(std::string, cluster, "",
          "also measure a running cluster (the coordinator's host:port, serving the same "
          "model) at each batch size: that many concurrent Generate streams of prompt-len "
          "random tokens, gen-len decode tokens each; printed beside the single-process "
          "figure with their ratio");

namespace yard::bench {
namespace {

namespace cpu = ::yard::kernels::cpu;
using engine::ForwardBatch;
using engine::ForwardSequence;

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

// Bytes a matmul over `w` reads: the matrix plus, for FP8, its block scales.
int64_t WeightBytes(const cpu::WeightView& w) {
  const int64_t element = w.type == cpu::WeightType::kBf16 ? 2 : 1;
  int64_t bytes = w.n * w.k * element;
  if (w.scale_inv != nullptr) {
    bytes += ((w.n + cpu::kFp8BlockSize - 1) / cpu::kFp8BlockSize) *
             ((w.k + cpu::kFp8BlockSize - 1) / cpu::kFp8BlockSize) * 4;
  }
  return bytes;
}
int64_t SwiGluBytes(const engine::SwiGluViews& f) {
  return WeightBytes(f.gate) + WeightBytes(f.up) + WeightBytes(f.down);
}
// Multiply-adds per token of a matmul over `w`.
int64_t WeightMacs(const cpu::WeightView& w) { return w.n * w.k; }
int64_t SwiGluMacs(const engine::SwiGluViews& f) {
  return WeightMacs(f.gate) + WeightMacs(f.up) + WeightMacs(f.down);
}

// What the model reads and computes, from the bound tensors' shapes.
struct ModelCost {
  // Weights read by every decode step whatever the routing: attention, dense FFNs,
  // shared experts, routers, lm_head.
  int64_t fixed_bytes = 0;
  int64_t lm_head_bytes = 0;
  // One routed expert (gate + up + down); all routed experts have one shape.
  int64_t expert_bytes = 0;
  int64_t all_expert_bytes = 0;
  int64_t moe_layers = 0;
  // Multiply-adds per token outside attention's softmax part, excluding lm_head
  // (prefill computes logits for the last token only); routed experts at top_k.
  int64_t token_macs = 0;
  int64_t lm_head_macs = 0;
};

ModelCost CostOf(const model::ModelConfig& config, const engine::ModelViews& views) {
  ModelCost c;
  for (const engine::LayerViews& layer : views.layers) {
    const engine::AttentionViews& a = layer.attention;
    // kv_b is read once per step: W_uk to absorb the queries, W_uv to expand values.
    for (const cpu::WeightView* w : {&a.q, &a.kv_a, &a.kv_b, &a.o}) {
      c.fixed_bytes += WeightBytes(*w);
      c.token_macs += WeightMacs(*w);
    }
    if (a.q_a) {
      c.fixed_bytes += WeightBytes(*a.q_a);
      c.token_macs += WeightMacs(*a.q_a);
    }
    if (layer.dense) {
      c.fixed_bytes += SwiGluBytes(*layer.dense);
      c.token_macs += SwiGluMacs(*layer.dense);
    }
    if (layer.moe) {
      ++c.moe_layers;
      c.fixed_bytes += WeightBytes(layer.moe->router);
      c.token_macs += WeightMacs(layer.moe->router);
      if (layer.moe->shared) {
        c.fixed_bytes += SwiGluBytes(*layer.moe->shared);
        c.token_macs += SwiGluMacs(*layer.moe->shared);
      }
      if (!layer.moe->experts.empty()) {
        c.expert_bytes = SwiGluBytes(layer.moe->experts.front());
        c.token_macs += config.num_experts_per_tok * SwiGluMacs(layer.moe->experts.front());
      }
      for (const engine::SwiGluViews& e : layer.moe->experts) c.all_expert_bytes += SwiGluBytes(e);
    }
  }
  c.lm_head_bytes = WeightBytes(views.lm_head);
  c.lm_head_macs = WeightMacs(views.lm_head);
  c.fixed_bytes += c.lm_head_bytes;
  return c;
}

// Absorbed MLA attention FLOPs of `queries` tokens at positions [first, first +
// queries), as the fast model performs them: per key and head, q'·c_kv + q_rope·k_rope
// (rank + rope MACs) and the latent output (rank MACs).
double AttentionFlops(const model::ModelConfig& config, int64_t first, int64_t queries) {
  const double per_key = 2.0 * static_cast<double>(config.num_attention_heads) *
                         static_cast<double>(2 * config.kv_lora_rank + config.qk_rope_head_dim);
  double keys = 0;
  for (int64_t p = first; p < first + queries; ++p) keys += static_cast<double>(p + 1);
  return per_key * keys * static_cast<double>(config.num_hidden_layers);
}

// Wraps the expert backend that FastModel calls: counts the distinct routed experts
// of each call (one MoE layer of one step) and times the routed-expert work. Used from
// the engine's thread only, like the backend it wraps (borrowed, must outlive it).
class CountingExpertBackend : public engine::ExpertBackendInterface {
 public:
  CountingExpertBackend(engine::ExpertBackendInterface& inner, int64_t num_experts)
      : inner_(inner), seen_(static_cast<size_t>(std::max<int64_t>(num_experts, 1)), 0) {}

  absl::Status Start(const engine::ExpertRequest& request) override {
    std::fill(seen_.begin(), seen_.end(), 0);
    int64_t distinct = 0;
    for (int64_t i = 0; i < request.tokens * request.top_k; ++i) {
      uint8_t& s = seen_[static_cast<size_t>(request.expert_ids[i])];
      distinct += s == 0 ? 1 : 0;
      s = 1;
    }
    distinct_ += distinct;
    ++calls_;
    const double start = Now();
    absl::Status status = inner_.Start(request);
    seconds_ += Now() - start;
    return status;
  }

  absl::Status Finish(int micro_batch, float* out) override {
    const double start = Now();
    absl::Status status = inner_.Finish(micro_batch, out);
    seconds_ += Now() - start;
    return status;
  }

  void Reset() {
    seconds_ = 0;
    distinct_ = 0;
    calls_ = 0;
  }
  double seconds() const { return seconds_; }
  int64_t distinct() const { return distinct_; }  // summed over calls
  int64_t calls() const { return calls_; }

 private:
  engine::ExpertBackendInterface& inner_;
  std::vector<uint8_t> seen_;
  double seconds_ = 0;
  int64_t distinct_ = 0;
  int64_t calls_ = 0;
};

struct DecodeResult {
  int64_t batch = 0;
  double tokens_per_s = 0;
  double bound_tokens_per_s = 0;
  double ms_per_step = 0;         // mean over the timed steps
  double median_ms_per_step = 0;
  double bytes_per_step = 0;      // weights + KV, mean over the timed steps
  double kv_bytes_per_step = 0;
  double experts_per_layer = 0;   // distinct routed experts per MoE layer per step, measured
  double experts_per_layer_estimate = 0;  // n·(1 − (1 − k/n)^B), uniform routing
  double expert_ms_per_step = 0;  // routed-expert compute inside the forward
  double lm_head_ms = 0;          // one standalone lm_head Gemm of B rows
  double mean_context = 0;
};

absl::StatusOr<std::vector<int64_t>> ParseBatches(const std::string& text) {
  std::vector<int64_t> batches;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t b = 0;
    if (!absl::SimpleAtoi(part, &b) || b <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--batch: '", std::string(part), "' is not a positive integer"));
    }
    batches.push_back(b);
  }
  if (batches.empty()) return absl::InvalidArgumentError("--batch: no batch sizes");
  return batches;
}

int32_t Argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  if (dir.empty()) return Fail("--model is required (see --help)");
  absl::StatusOr<std::vector<int64_t>> batches = ParseBatches(absl::GetFlag(FLAGS_batch));
  if (!batches.ok()) return Fail(batches.status().message());
  const int64_t prompt_len = absl::GetFlag(FLAGS_prompt_len);
  const int64_t gen_len = absl::GetFlag(FLAGS_gen_len);
  const int64_t warmup = absl::GetFlag(FLAGS_warmup_steps);
  const int64_t chunk = absl::GetFlag(FLAGS_prefill_chunk);
  const int prefill_reps = absl::GetFlag(FLAGS_prefill_reps);
  const bool json = absl::GetFlag(FLAGS_json);
  const bool deterministic = absl::GetFlag(FLAGS_deterministic);
  const std::string next_tokens = absl::GetFlag(FLAGS_next_tokens);
  if (prompt_len < 1 || gen_len < 1 || warmup < 0 || chunk < 1 || prefill_reps < 1) {
    return Fail("--prompt-len, --gen-len, --prefill-chunk and --prefill-reps must be >= 1, "
                "--warmup-steps >= 0");
  }
  if (next_tokens != "random" && next_tokens != "greedy") {
    return Fail("--next-tokens must be 'random' or 'greedy'");
  }
  if (absl::GetFlag(FLAGS_threads) < 0) return Fail("--threads must be >= 0");
  const int64_t max_batch = *std::max_element(batches->begin(), batches->end());
  const int64_t context = prompt_len + warmup + gen_len;
  // Human output goes to stdout, or to stderr when stdout carries the JSON line.
  std::ostream& table = json ? std::cerr : std::cout;
  const std::string load_before = LoadAverage();
  std::cerr << "decode_bench: load average " << load_before << "\n";

  std::unique_ptr<cpu::ThreadPool> own_pool;
  if (absl::GetFlag(FLAGS_threads) > 0) {
    cpu::ThreadPool::Options pool_options;
    pool_options.num_threads = absl::GetFlag(FLAGS_threads);
    own_pool = std::make_unique<cpu::ThreadPool>(pool_options);
  }
  cpu::ThreadPool& pool = own_pool ? *own_pool : cpu::DefaultThreadPool();

  // Bounds of this machine, measured before the model is touched.
  std::cerr << "decode_bench: measuring read bandwidth (" << absl::GetFlag(FLAGS_bandwidth_mib)
            << " MiB sweep, " << pool.num_threads() << " threads)\n";
  cpu::BandwidthOptions bw_options;
  bw_options.bytes = static_cast<size_t>(std::max<int64_t>(absl::GetFlag(FLAGS_bandwidth_mib), 1))
                     << 20;
  bw_options.pool = &pool;
  cpu::ReadBandwidthProbe probe(bw_options);
  double bandwidth = 0;
  auto sweep = [&](int passes) {
    for (int i = 0; i < passes; ++i) bandwidth = std::max(bandwidth, probe.Pass());
  };
  sweep(std::max(1, absl::GetFlag(FLAGS_bandwidth_reps)));
  std::cerr << "decode_bench: read bandwidth " << absl::StrFormat("%.2f", bandwidth / 1e9)
            << " GB/s; measuring peak FLOP/s\n";
  const cpu::PeakFlops peak = cpu::MeasurePeakFlops(&pool);

  // The model.
  absl::StatusOr<model::ValidatedCheckpoint> opened = model::OpenValidatedCheckpoint(dir);
  if (!opened.ok()) return Fail(opened.status().message());
  const model::ModelConfig* config = &opened->config;
  const std::unique_ptr<model::Checkpoint>* checkpoint = &opened->checkpoint;
  if (context > config->max_position_embeddings) {
    return Fail(absl::StrCat("prompt + warmup + gen = ", context,
                             " tokens exceeds max_position_embeddings ",
                             config->max_position_embeddings));
  }
  // The bench's own views of the same mapped tensors: byte counts, the expert backend
  // it wraps and the standalone lm_head timing.
  absl::StatusOr<engine::ModelViews> views = engine::BindModelViews(*config, **checkpoint);
  if (!views.ok()) return Fail(views.status().message());
  const ModelCost cost = CostOf(*config, *views);

  engine::KvCacheOptions cache_options;
  const engine::LatentCacheShape shape = engine::LatentCacheShapeFor(*config, false);
  cache_options.num_blocks =
      max_batch * ((context + cache_options.block_tokens - 1) / cache_options.block_tokens);
  absl::StatusOr<std::unique_ptr<engine::PagedLatentCache>> cache =
      engine::PagedLatentCache::Create(shape, cache_options);
  if (!cache.ok()) return Fail(cache.status().message());

  engine::FastModelOptions model_options;
  model_options.deterministic = deterministic;
  model_options.max_context = context;
  model_options.pool = &pool;
  // The same matmul options as the model's own experts would use.
  const cpu::GemmOptions gemm = engine::GemmOptionsFor(model_options);
  engine::LocalExpertBackend local_experts(*views, gemm);
  CountingExpertBackend experts(local_experts, config->n_routed_experts);
  absl::StatusOr<std::unique_ptr<engine::FastModel>> fast =
      engine::FastModel::Create(*config, **checkpoint, **cache, model_options, &experts);
  if (!fast.ok()) return Fail(fast.status().message());
  engine::FastModel& model = **fast;

  const bool fp8 = views->lm_head.type == cpu::WeightType::kFp8E4m3 ||
                   views->layers.front().attention.kv_a.type == cpu::WeightType::kFp8E4m3;
  std::cerr << absl::StrFormat(
      "decode_bench: %s, %d layers (%d MoE), %s weights, %.2f GB of weights (%.2f GB routed "
      "experts), isa %s, %d threads%s\n",
      dir, config->num_hidden_layers, cost.moe_layers, fp8 ? "FP8" : "BF16",
      (cost.fixed_bytes + cost.all_expert_bytes) / 1e9, cost.all_expert_bytes / 1e9,
      cpu::DescribeIsaChoice(), pool.num_threads(), deterministic ? ", deterministic" : "");

  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  auto random_token = [&]() {
    return static_cast<int32_t>(rng() % static_cast<uint64_t>(config->vocab_size));
  };
  for (int64_t s = 0; s < max_batch; ++s) {
    absl::Status reserved = (*cache)->Reserve(s, context);
    if (!reserved.ok()) return Fail(reserved.message());
  }

  // Prefill: sequence 0, the prompt in chunks; the last chunk asks for logits.
  std::vector<int32_t> prompt(prompt_len);
  for (int32_t& t : prompt) t = random_token();
  const std::vector<int32_t> table0((*cache)->BlockTable(0).begin(), (*cache)->BlockTable(0).end());
  double prefill_seconds = 0;
  for (int rep = 0; rep < prefill_reps; ++rep) {
    double seconds = 0;
    for (int64_t start = 0; start < prompt_len; start += chunk) {
      const int64_t n = std::min(chunk, prompt_len - start);
      ForwardBatch batch;
      ForwardSequence seq;
      seq.sequence_id = 0;
      seq.tokens.assign(prompt.begin() + start, prompt.begin() + start + n);
      seq.start_position = start;
      seq.block_table = table0;
      seq.needs_logits = start + n == prompt_len;
      batch.sequences.push_back(std::move(seq));
      const double t0 = Now();
      absl::StatusOr<engine::ForwardResult> result = model.Forward(batch);
      seconds += Now() - t0;
      if (!result.ok()) return Fail(result.status().message());
    }
    std::cerr << absl::StrFormat("decode_bench: prefill pass %d: %d tokens in %.3f s (%.1f tokens/s)\n",
                                 rep + 1, prompt_len, seconds, prompt_len / seconds);
    prefill_seconds = rep == 0 ? seconds : std::min(prefill_seconds, seconds);
  }
  const double prefill_tokens_per_s = prompt_len / prefill_seconds;
  const double prefill_flops = 2.0 * static_cast<double>(cost.token_macs) * prompt_len +
                               2.0 * static_cast<double>(cost.lm_head_macs) +
                               AttentionFlops(*config, 0, prompt_len);
  const double prefill_flop_s = prefill_flops / prefill_seconds;

  // Every other sequence gets sequence 0's prompt rows (same prompt, same rows).
  const int64_t latent = (*cache)->latent_dim();
  const int64_t block_tokens = (*cache)->block_tokens();
  const int64_t prompt_blocks = (*cache)->BlocksFor(prompt_len);
  for (int64_t s = 1; s < max_batch; ++s) {
    absl::Span<const int32_t> table = (*cache)->BlockTable(s);
    for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
      uint16_t* base = (*cache)->MutableLayerBase(layer);
      for (int64_t b = 0; b < prompt_blocks; ++b) {
        std::memcpy(base + table[b] * block_tokens * latent, base + table0[b] * block_tokens * latent,
                    static_cast<size_t>(block_tokens * latent) * sizeof(uint16_t));
      }
    }
  }

  // Decode, batch by batch; every batch starts again at position prompt_len (its rows
  // beyond the prompt are rewritten before they are read).
  const int64_t kv_row_bytes = shape.num_layers * latent * 2;
  const double n_experts = static_cast<double>(config->n_routed_experts);
  const double top_k = static_cast<double>(config->num_experts_per_tok);
  std::vector<DecodeResult> results;
  for (const int64_t b : *batches) {
    sweep(2);
    std::cerr << "decode_bench: decode batch " << b << ": " << warmup << " + " << gen_len
              << " steps\n";
    std::vector<int32_t> tokens(b);
    for (int32_t& t : tokens) t = random_token();
    std::vector<double> step_seconds;
    double kv_bytes = 0;
    double context_sum = 0;
    for (int64_t step = 0; step < warmup + gen_len; ++step) {
      if (step == warmup) experts.Reset();
      const int64_t position = prompt_len + step;
      ForwardBatch batch;
      for (int64_t s = 0; s < b; ++s) {
        ForwardSequence seq;
        seq.sequence_id = s;
        seq.tokens = {tokens[s]};
        seq.start_position = position;
        absl::Span<const int32_t> table = (*cache)->BlockTable(s);
        seq.block_table.assign(table.begin(), table.end());
        seq.needs_logits = true;
        batch.sequences.push_back(std::move(seq));
      }
      const double t0 = Now();
      absl::StatusOr<engine::ForwardResult> result = model.Forward(batch);
      const double seconds = Now() - t0;
      if (!result.ok()) return Fail(result.status().message());
      if (step >= warmup) {
        step_seconds.push_back(seconds);
        kv_bytes += static_cast<double>(b) * static_cast<double>(position + 1) * kv_row_bytes;
        context_sum += static_cast<double>(position + 1);
      }
      for (int64_t s = 0; s < b; ++s) {
        tokens[s] = next_tokens == "greedy"
                        ? Argmax(result->logits.data() + s * config->vocab_size, config->vocab_size)
                        : random_token();
      }
    }
    DecodeResult r;
    r.batch = b;
    double total = 0;
    for (double s : step_seconds) total += s;
    const double steps = static_cast<double>(step_seconds.size());
    r.tokens_per_s = static_cast<double>(b) * steps / total;
    r.ms_per_step = 1e3 * total / steps;
    std::vector<double> sorted = step_seconds;
    std::sort(sorted.begin(), sorted.end());
    r.median_ms_per_step = 1e3 * sorted[sorted.size() / 2];
    r.kv_bytes_per_step = kv_bytes / steps;
    r.mean_context = context_sum / steps;
    r.experts_per_layer =
        experts.calls() > 0 ? static_cast<double>(experts.distinct()) / experts.calls() : 0.0;
    r.experts_per_layer_estimate =
        n_experts > 0 ? n_experts * (1.0 - std::pow(1.0 - top_k / n_experts, static_cast<double>(b)))
                      : 0.0;
    r.expert_ms_per_step = 1e3 * experts.seconds() / steps;
    r.bytes_per_step = static_cast<double>(cost.fixed_bytes) +
                       r.experts_per_layer * static_cast<double>(cost.moe_layers) *
                           static_cast<double>(cost.expert_bytes) +
                       static_cast<double>(b * config->hidden_size * 2) + r.kv_bytes_per_step;
    r.bound_tokens_per_s = static_cast<double>(b) * bandwidth / r.bytes_per_step;
    // The lm_head alone on the same number of rows; it is far beyond the caches, so
    // each call reads it from DRAM as the step does.
    {
      std::vector<float> x(b * config->hidden_size, 0.01f);
      std::vector<float> y(b * config->vocab_size);
      double best = 1e30;
      for (int rep = 0; rep < 3; ++rep) {
        const double t0 = Now();
        cpu::Gemm(x.data(), b, views->lm_head, y.data(), engine::LmHeadGemmOptions(gemm));
        best = std::min(best, Now() - t0);
      }
      r.lm_head_ms = 1e3 * best;
    }
    std::cerr << absl::StrFormat("decode_bench:   %.2f tokens/s, %.2f ms/step (bound %.2f tokens/s)\n",
                                 r.tokens_per_s, r.ms_per_step, r.bound_tokens_per_s);
    results.push_back(r);
  }
  // Bounds use the best bandwidth seen over the whole run.
  for (DecodeResult& r : results) r.bound_tokens_per_s = r.batch * bandwidth / r.bytes_per_step;
  const std::string load_after = LoadAverage();

  // Report.
  const double peak_bf16 = peak.bf16_flops_per_second;
  const double peak_fp32 = peak.fp32_flops_per_second;
  table << absl::StrFormat(
      "decode_bench  %s  (%s, %d layers, %d threads, isa %s%s)\n"
      "load average  %s (start)  %s (end)\n"
      "read bandwidth %.2f GB/s (best pass, %d MiB read-only sweep)\n"
      "weights %.3f GB (%.3f GB routed experts; per step always %.3f GB incl. lm_head %.3f "
      "GB; %.1f MB per routed expert)\n",
      dir, fp8 ? "FP8" : "BF16", config->num_hidden_layers, pool.num_threads(),
      cpu::IsaName(cpu::ActiveIsa()), deterministic ? ", deterministic" : "", load_before,
      load_after, bandwidth / 1e9, absl::GetFlag(FLAGS_bandwidth_mib),
      (cost.fixed_bytes + cost.all_expert_bytes) / 1e9, cost.all_expert_bytes / 1e9,
      cost.fixed_bytes / 1e9, cost.lm_head_bytes / 1e9, cost.expert_bytes / 1e6);
  table << absl::StrFormat(
      "\nprefill  %d tokens (chunks of %d): %.1f tokens/s, %.1f GFLOP/s = %.1f%% of peak "
      "BF16 %.1f GFLOP/s (%.1f%% of peak FP32 %.1f GFLOP/s)\n"
      "  FLOPs = 2·(active params excl. lm_head)·tokens + 2·lm_head (last token) + "
      "absorbed MLA attention = %.2f GFLOP\n",
      prompt_len, chunk, prefill_tokens_per_s, prefill_flop_s / 1e9,
      peak_bf16 > 0 ? 100.0 * prefill_flop_s / peak_bf16 : 0.0, peak_bf16 / 1e9,
      peak_fp32 > 0 ? 100.0 * prefill_flop_s / peak_fp32 : 0.0, peak_fp32 / 1e9,
      prefill_flops / 1e9);
  table << absl::StrFormat(
      "\ndecode  context %d → %d, %d timed steps (+%d warmup), %s next tokens\n", prompt_len,
      context, gen_len, warmup, next_tokens);
  table << absl::StrFormat("%6s %10s %10s %8s %8s %8s %8s %15s %17s %16s\n", "batch",
                           "tokens/s", "bound", "% bound", "ms/step", "med ms", "MB/step",
                           "experts/layer", "experts ms(GB/s)", "lm_head ms(GB/s)");
  for (const DecodeResult& r : results) {
    const double expert_bytes = r.experts_per_layer * static_cast<double>(cost.moe_layers) *
                                static_cast<double>(cost.expert_bytes);
    table << absl::StrFormat(
        "%6d %10.2f %10.2f %7.1f%% %8.2f %8.2f %8.1f %7.1f (%5.1f) %9.2f (%5.1f) %8.2f (%5.1f)\n",
        r.batch, r.tokens_per_s, r.bound_tokens_per_s,
        100.0 * r.tokens_per_s / r.bound_tokens_per_s, r.ms_per_step, r.median_ms_per_step,
        r.bytes_per_step / 1e6, r.experts_per_layer, r.experts_per_layer_estimate,
        r.expert_ms_per_step,
        r.expert_ms_per_step > 0 ? expert_bytes / (1e6 * r.expert_ms_per_step) : 0.0,
        r.lm_head_ms, static_cast<double>(cost.lm_head_bytes) / (1e6 * r.lm_head_ms));
  }
  table << "  bound = batch / (bytes per step / read bandwidth); bytes = non-expert weights + "
           "lm_head + distinct routed experts activated (measured; uniform-routing estimate "
           "n·(1-(1-k/n)^B) in parentheses) + KV rows read (batch · context · layers · "
           "latent_dim · 2).\n"
           "  experts ms = routed experts inside the step (GB/s of their weights); lm_head = "
           "one standalone lm_head matmul of `batch` rows (GB/s of its weights).\n";

  // The same batches through a cluster, from the outside.
  std::vector<ClusterDecodeResult> cluster_results;
  const std::string cluster = absl::GetFlag(FLAGS_cluster);
  if (!cluster.empty()) {
    table << absl::StrFormat("\ncluster %s: %d prompt tokens, %d decode tokens per stream\n",
                             cluster, prompt_len, gen_len);
    table << absl::StrFormat("%6s %14s %16s %8s %12s\n", "batch", "cluster tok/s",
                             "1-process tok/s", "ratio", "prefill s");
    for (const DecodeResult& r : results) {
      absl::StatusOr<ClusterDecodeResult> c = MeasureClusterDecode(
          cluster, r.batch, prompt_len, gen_len, config->vocab_size, absl::GetFlag(FLAGS_seed));
      if (!c.ok()) return Fail(absl::StrCat("cluster ", cluster, ": ", c.status().ToString()));
      table << absl::StrFormat("%6d %14.2f %16.2f %8.2f %12.2f\n", r.batch, c->tokens_per_s,
                               r.tokens_per_s, c->tokens_per_s / r.tokens_per_s,
                               c->all_started_s);
      cluster_results.push_back(*c);
    }
  }

  if (json) {
    std::string line = absl::StrFormat(
        "{\"read_bandwidth_gb_s\": %.3f, \"prefill_tokens_per_s\": %.3f, \"decode\": [",
        bandwidth / 1e9, prefill_tokens_per_s);
    for (size_t i = 0; i < results.size(); ++i) {
      const DecodeResult& r = results[i];
      absl::StrAppend(
          &line, i > 0 ? ", " : "",
          absl::StrFormat(
              "{\"batch\": %d, \"tokens_per_s\": %.3f, \"bound_tokens_per_s\": %.3f, "
              "\"ms_per_step\": %.3f, \"bytes_per_step\": %.0f, \"kv_bytes_per_step\": %.0f, "
              "\"experts_per_moe_layer\": %.3f, \"expert_ms_per_step\": %.3f, "
              "\"lm_head_ms\": %.3f}",
              r.batch, r.tokens_per_s, r.bound_tokens_per_s, r.ms_per_step, r.bytes_per_step,
              r.kv_bytes_per_step, r.experts_per_layer, r.expert_ms_per_step, r.lm_head_ms));
    }
    if (!cluster_results.empty()) {
      absl::StrAppend(&line, "], \"cluster\": [");
      for (size_t i = 0; i < cluster_results.size(); ++i) {
        absl::StrAppend(&line, i > 0 ? ", " : "",
                        absl::StrFormat("{\"batch\": %d, \"tokens_per_s\": %.3f, "
                                        "\"single_process_tokens_per_s\": %.3f, \"ratio\": %.3f}",
                                        cluster_results[i].batch, cluster_results[i].tokens_per_s,
                                        results[i].tokens_per_s,
                                        cluster_results[i].tokens_per_s / results[i].tokens_per_s));
      }
    }
    absl::StrAppend(
        &line,
        absl::StrFormat("], \"prompt_len\": %d, \"gen_len\": %d, \"threads\": %d, "
                        "\"weights\": \"%s\", \"deterministic\": %s, "
                        "\"peak_bf16_gflop_s\": %.1f, \"peak_fp32_gflop_s\": %.1f, "
                        "\"prefill_gflop_s\": %.1f, \"load_average\": \"%s\"}",
                        prompt_len, gen_len, pool.num_threads(), fp8 ? "fp8" : "bf16",
                        deterministic ? "true" : "false", peak_bf16 / 1e9, peak_fp32 / 1e9,
                        prefill_flop_s / 1e9, load_before));
    std::cout << line << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace yard::bench

int main(int argc, char** argv) {
  yard::ParseCommandLine(
      argc, argv,
      "Prefill and batched-decode throughput of the fast CPU model runner on a checkpoint, "
      "beside this machine's read-bandwidth bound (measured by the bench).\n"
      "usage: decode_bench --model DIR [--batch 1,8,32,64] [--prompt-len 512] "
      "[--gen-len 64] [--json] [--deterministic] [--threads N] [--cluster HOST:PORT]\n"
      "Without --deterministic the model runs in its default mode: prefill rounds "
      "activations to BF16 for the BF16 dot-product instructions (faster, not "
      "batch-invariant). Run it on an otherwise idle machine; it prints the load average.");
  return yard::bench::Run();
}
