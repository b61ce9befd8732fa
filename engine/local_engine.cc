#include "engine/local_engine.h"

#include <algorithm>

#include "common/status_macros.h"

namespace yard::engine {

absl::StatusOr<std::unique_ptr<LocalEngine>> LocalEngine::Open(
    const std::string& model_dir, const model::Tokenizer* tokenizer,
    const LocalEngineOptions& options) {
  std::unique_ptr<LocalEngine> local(new LocalEngine());
  ASSIGN_OR_RETURN(model::ValidatedCheckpoint opened,
                   model::OpenValidatedCheckpoint(model_dir));
  local->config_ = opened.config;
  local->checkpoint_ = std::move(opened.checkpoint);
  const model::ModelConfig& config = local->config_;
  local->max_context_ = std::min(options.max_context, config.max_position_embeddings);

  KvCacheOptions cache_options;
  cache_options.block_tokens = options.block_tokens;
  cache_options.byte_budget = options.kv_cache_bytes;
  ASSIGN_OR_RETURN(local->cache_, PagedLatentCache::Create(
                                      LatentCacheShapeFor(config, /*include_mtp=*/false),
                                      cache_options));

  FastModelOptions model_options;
  model_options.deterministic = options.deterministic;
  model_options.dispatch_precision = options.dispatch_precision;
  model_options.micro_batches = options.micro_batches;
  model_options.max_context = local->max_context_;
  ASSIGN_OR_RETURN(local->model_, FastModel::Create(config, *local->checkpoint_,
                                                    *local->cache_, model_options,
                                                    options.experts));

  EngineOptions engine_options;
  engine_options.vocab_size = config.vocab_size;
  engine_options.scheduler.max_context = local->max_context_;
  engine_options.scheduler.max_num_seqs = options.max_num_seqs;
  engine_options.max_waiting = options.max_waiting;
  if (tokenizer != nullptr) {
    if (tokenizer->eos_id()) engine_options.scheduler.eos_token_ids = {*tokenizer->eos_id()};
    local->detokenizer_ = std::make_unique<TokenizerDetokenizer>(*tokenizer);
  }
  ASSIGN_OR_RETURN(local->engine_,
                   Engine::Create(engine_options, *local->cache_, *local->model_,
                                  local->detokenizer_.get()));
  return local;
}

}  // namespace yard::engine
