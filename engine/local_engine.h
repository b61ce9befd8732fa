// A complete single-process fast engine opened from a checkpoint directory: config,
// validated memory-mapped checkpoint, paged latent cache, FastModel and the
// continuous-batching Engine — what the tools and benchmarks run.
#ifndef SWITCHYARD_ENGINE_LOCAL_ENGINE_H_
#define SWITCHYARD_ENGINE_LOCAL_ENGINE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "engine/fast_model.h"
#include "engine/kv_cache.h"
#include "engine/tokenizer_detokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"
#include "model/tokenizer/tokenizer.h"

namespace yard::engine {

struct LocalEngineOptions {
  // See FastModelOptions::deterministic, ::dispatch_precision and ::micro_batches.
  bool deterministic = false;
  DispatchPrecision dispatch_precision = DispatchPrecision::kFp32;
  int micro_batches = 1;
  // Longest sequence (prompt + generated), capped by max_position_embeddings.
  int64_t max_context = 4096;
  // Memory for the latent KV cache.
  int64_t kv_cache_bytes = int64_t{1} << 30;
  int block_tokens = 64;
  // Sequences decoded together at most.
  int max_num_seqs = 64;
  // Requests waiting for a place in the batch at most; beyond it Submit is
  // ResourceExhausted (EngineOptions::max_waiting; 0: no limit).
  int64_t max_waiting = 0;
  // Where the routed experts run: nullptr computes them in this process; otherwise
  // borrowed (an attention worker's remote backend) and must outlive the engine.
  ExpertBackendInterface* experts = nullptr;
};

// Single-threaded like Engine: used from one thread. Owns everything it opens.
class LocalEngine {
 public:
  // tokenizer: borrowed for streaming text and stop strings (may be null: no text);
  // its eos id is the model's stop token.
  static absl::StatusOr<std::unique_ptr<LocalEngine>> Open(const std::string& model_dir,
                                                           const model::Tokenizer* tokenizer,
                                                           const LocalEngineOptions& options);

  Engine& engine() { return *engine_; }
  FastModel& model() { return *model_; }
  PagedLatentCache& cache() { return *cache_; }
  const model::ModelConfig& config() const { return config_; }
  int64_t max_context() const { return max_context_; }

 private:
  LocalEngine() = default;

  model::ModelConfig config_;
  int64_t max_context_ = 0;
  std::unique_ptr<model::Checkpoint> checkpoint_;
  std::unique_ptr<PagedLatentCache> cache_;
  std::unique_ptr<FastModel> model_;
  std::unique_ptr<TokenizerDetokenizer> detokenizer_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_LOCAL_ENGINE_H_
