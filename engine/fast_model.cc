#include "engine/fast_model.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/local_expert_backend.h"
#include "kernels/cpu/elementwise/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/mla/absorb.h"
#include "kernels/cpu/mla/latent_attention.h"
#include "kernels/cpu/numerics.h"

namespace yard::engine {
namespace {

namespace cpu = ::yard::kernels::cpu;

cpu::RouterParams RouterParamsFor(const model::ModelConfig& c) {
  cpu::RouterParams p;
  p.num_experts = c.n_routed_experts;
  p.top_k = c.num_experts_per_tok;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.scoring = c.scoring_func == model::ScoringFunc::kSigmoid ? cpu::RouterScoring::kSigmoid
                                                             : cpu::RouterScoring::kSoftmax;
  switch (c.topk_method) {
    case model::TopkMethod::kGreedy: p.method = cpu::RouterTopk::kGreedy; break;
    case model::TopkMethod::kGroupLimitedGreedy:
      p.method = cpu::RouterTopk::kGroupLimitedGreedy;
      break;
    case model::TopkMethod::kNoauxTc: p.method = cpu::RouterTopk::kNoauxTc; break;
  }
  p.norm_topk_prob = c.norm_topk_prob;
  p.routed_scaling_factor = c.routed_scaling_factor;
  p.scale_after_norm = c.model_type == model::ModelType::kDeepseekV3;
  return p;
}

cpu::RopeParams RopeParamsFor(const model::ModelConfig& c) {
  cpu::RopeParams p;
  p.dim = c.qk_rope_head_dim;
  p.base = c.rope_theta;
  if (c.rope_scaling) {
    const model::YarnScaling& y = *c.rope_scaling;
    p.yarn = cpu::YarnParams{y.factor,    y.original_max_position_embeddings,
                             y.beta_fast, y.beta_slow,
                             y.mscale,    y.mscale_all_dim};
  }
  return p;
}

template <typename T>
T* Sized(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}

}  // namespace

cpu::GemmOptions GemmOptionsFor(const FastModelOptions& options) {
  cpu::GemmOptions gemm;
  gemm.pool = options.pool;
  gemm.precision = options.deterministic ? cpu::ActivationPrecision::kFp32
                                         : cpu::ActivationPrecision::kAuto;
  // Decode batches keep FP32 activations: rounding them to BF16 moves router logits by
  // up to ~1e-2 and flips expert choices well above the FP32 path's near-ties (batched
  // teacher forcing in fast_model_test: max |Δlogit| 20-50x its bound at batch 8 and
  // 32; 25x at batch 1). The rows of prefill chunks (128 tokens and up in a step) take
  // BF16 dot products; a step's decode rows keep FP32 beside them (Forward orders the
  // rows, bf16_row_limit splits the matmuls).
  gemm.bf16_min_rows = 128;
  return gemm;
}

cpu::GemmOptions LmHeadGemmOptions(const cpu::GemmOptions& gemm) {
  cpu::GemmOptions lm_head = gemm;
  // The lm_head feeds the logits alone, no later routing: BF16 activations there move
  // each logit by ~2^-9 of its scale, far inside the oracle's bound, and from a few
  // rows up they halve its compute (the largest matmul of a batched decode step).
  lm_head.bf16_min_rows = 8;
  return lm_head;
}

absl::StatusOr<std::unique_ptr<FastModel>> FastModel::Create(
    const model::ModelConfig& config, const model::Checkpoint& checkpoint,
    PagedLatentCache& cache, const FastModelOptions& options, ExpertBackendInterface* experts) {
  const LatentCacheShape want = LatentCacheShapeFor(config, /*include_mtp=*/false);
  if (cache.latent_dim() != want.latent_dim() || cache.shape().num_layers < want.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV cache holds ", cache.shape().num_layers, " layers of ", cache.latent_dim(),
        " values per token; the model needs ", want.num_layers, " of ", want.latent_dim()));
  }
  if (options.max_context <= 0) {
    return absl::InvalidArgumentError("FastModelOptions.max_context must be > 0");
  }
  ASSIGN_OR_RETURN(ModelViews views, BindModelViews(config, checkpoint));
  for (const LayerViews& layer : views.layers) {
    RETURN_IF_ERROR(cpu::ValidateKvBProjection(
        cpu::KvBProjection{layer.attention.kv_b, config.num_attention_heads,
                           config.qk_nope_head_dim, config.v_head_dim},
        config.kv_lora_rank));
  }
  if (config.n_routed_experts > 0) {
    RETURN_IF_ERROR(cpu::ValidateRouterParams(RouterParamsFor(config)));
  }
  ASSIGN_OR_RETURN(cpu::RopeTable rope, cpu::RopeTable::Create(
                                            RopeParamsFor(config),
                                            std::min(options.max_context,
                                                     config.max_position_embeddings)));
  std::unique_ptr<FastModel> model(
      new FastModel(config, cache, options, std::move(views), std::move(rope)));
  if (experts == nullptr) {
    model->own_experts_ = std::make_unique<LocalExpertBackend>(model->views_, model->gemm_);
    model->experts_ = model->own_experts_.get();
  } else {
    model->experts_ = experts;
  }
  return model;
}

FastModel::FastModel(const model::ModelConfig& config, PagedLatentCache& cache,
                     const FastModelOptions& options, ModelViews views, cpu::RopeTable rope)
    : config_(config),
      cache_(cache),
      options_(options),
      views_(std::move(views)),
      rope_(std::move(rope)),
      router_(RouterParamsFor(config)) {
  gemm_ = GemmOptionsFor(options);
}

absl::StatusOr<ForwardResult> FastModel::Forward(const ForwardBatch& batch) {
  const int64_t hidden = config_.hidden_size;
  const int64_t tokens = batch.num_tokens();
  if (tokens == 0) return ForwardResult{};
  // Prefill chunks first, so that each micro-batch's prefill rows lead and may take
  // BF16 activations while the decode rows after them keep FP32 (GemmOptionsFor).
  ordered_.clear();
  for (const ForwardSequence& seq : batch.sequences) {
    if (seq.tokens.size() > 1) ordered_.push_back(&seq);
  }
  for (const ForwardSequence& seq : batch.sequences) {
    if (seq.tokens.size() <= 1) ordered_.push_back(&seq);
  }
  int64_t* positions = Sized(positions_, tokens);
  float* x = Sized(x_, tokens * hidden);
  last_row_.resize(batch.sequences.size());  // by batch index: the row of its last token
  int64_t t = 0;
  for (const ForwardSequence* ordered : ordered_) {
    const ForwardSequence& seq = *ordered;
    last_row_[ordered - batch.sequences.data()] = t + static_cast<int64_t>(seq.tokens.size()) - 1;
    const int64_t blocks_needed =
        (seq.end_position() + cache_.block_tokens() - 1) / cache_.block_tokens();
    if (seq.tokens.empty() || seq.start_position < 0 ||
        seq.end_position() > rope_.max_positions() ||
        static_cast<int64_t>(seq.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", seq.sequence_id, ": positions [", seq.start_position, ", ",
          seq.end_position(), ") need ", blocks_needed, " blocks and a context of at most ",
          rope_.max_positions(), "; have ", seq.block_table.size(), " blocks"));
    }
    for (size_t i = 0; i < seq.tokens.size(); ++i, ++t) {
      const int32_t id = seq.tokens[i];
      if (id < 0 || id >= config_.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", id, " outside [0, ", config_.vocab_size, ")"));
      }
      positions[t] = seq.start_position + static_cast<int64_t>(i);
      const uint16_t* row = views_.embedding + static_cast<int64_t>(id) * hidden;
      for (int64_t c = 0; c < hidden; ++c) x[t * hidden + c] = cpu::Bf16ToFloat(row[c]);
    }
  }

  // The micro-batches take turns (ping-pong): each finishes its previous MoE layer and
  // runs on up to its next routed experts, so while one's experts are away the other
  // computes its shared experts, combine, attention and router.
  const int parts = SplitBatch(ordered_);
  absl::Status status;
  for (int64_t layer = 0; layer < config_.num_hidden_layers && status.ok(); ++layer) {
    for (int m = 0; m < parts && status.ok(); ++m) {
      MicroBatch& mb = micro_[m];
      float* rows = x + mb.first_token * hidden;
      if (mb.experts_started) status = LayerEnd(mb.experts_layer, mb, rows);
      if (status.ok()) status = LayerBegin(layer, mb, rows);
    }
  }
  for (int m = 0; m < parts; ++m) {
    // Started experts are always finished, also after an error elsewhere.
    MicroBatch& mb = micro_[m];
    if (!mb.experts_started) continue;
    absl::Status end = LayerEnd(mb.experts_layer, mb, x + mb.first_token * hidden);
    if (status.ok()) status = end;
  }
  RETURN_IF_ERROR(status);

  // Final norm and lm_head only for the last token of the sequences that want logits,
  // in the batch's order.
  const int64_t rows = batch.num_logit_rows();
  ForwardResult result;
  if (rows == 0) return result;
  float* last = Sized(last_, rows * hidden);
  int64_t row = 0;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    if (!batch.sequences[s].needs_logits) continue;
    std::memcpy(last + row * hidden, &x[last_row_[s] * hidden], hidden * sizeof(float));
    ++row;
  }
  cpu::RmsNorm(last, rows, hidden, hidden, cpu::NormWeight::Fp32(views_.final_norm.data()),
               static_cast<float>(config_.rms_norm_eps), last, hidden, options_.pool);
  result.logits.resize(rows * config_.vocab_size);
  cpu::Gemm(last, rows, views_.lm_head, result.logits.data(), LmHeadGemmOptions(gemm_));
  return result;
}

int FastModel::SplitBatch(absl::Span<const ForwardSequence* const> sequences) {
  int64_t total = 0;
  for (const ForwardSequence* seq : sequences) total += static_cast<int64_t>(seq->tokens.size());
  size_t split = sequences.size();  // sequences [0, split) go to micro-batch 0
  if (options_.micro_batches >= 2 && sequences.size() >= 2) {
    int64_t tokens = 0;
    split = 1;
    for (size_t s = 0; s + 1 < sequences.size(); ++s) {
      tokens += static_cast<int64_t>(sequences[s]->tokens.size());
      split = s + 1;
      if (2 * tokens >= total) break;
    }
  }
  const int parts = split < sequences.size() ? 2 : 1;
  int64_t first_token = 0;
  for (int m = 0; m < parts; ++m) {
    MicroBatch& mb = micro_[m];
    mb.index = m;
    mb.batch.sequences.clear();
    mb.prefill_tokens = 0;
    for (size_t s = m == 0 ? 0 : split; s < (m == 0 ? split : sequences.size()); ++s) {
      mb.batch.sequences.push_back(*sequences[s]);
      if (sequences[s]->tokens.size() > 1) {
        mb.prefill_tokens += static_cast<int64_t>(sequences[s]->tokens.size());
      }
    }
    mb.first_token = first_token;
    mb.tokens = mb.batch.num_tokens();
    mb.gemm = gemm_;
    mb.gemm.bf16_row_limit = mb.prefill_tokens;
    mb.experts_started = false;
    first_token += mb.tokens;
  }
  return parts;
}

absl::Status FastModel::LayerBegin(int64_t index, MicroBatch& mb, float* x) {
  const LayerViews& layer = views_.layers[index];
  const int64_t hidden = config_.hidden_size;
  const int64_t tokens = mb.tokens;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  float* h = Sized(mb.h, tokens * hidden);
  float* delta = Sized(mb.delta, tokens * hidden);

  cpu::RmsNorm(x, tokens, hidden, hidden, cpu::NormWeight::Fp32(layer.input_norm.data()), eps, h,
               hidden, options_.pool);
  Attention(index, mb, positions_.data() + mb.first_token, h, delta);
  // x += attention; h = RMSNorm(x) in one pass.
  cpu::AddRmsNorm(x, hidden, delta, hidden, tokens, hidden,
                  cpu::NormWeight::Fp32(layer.post_attn_norm.data()), eps, h, hidden,
                  options_.pool);
  if (!layer.moe) {
    Ffn(*layer.dense, h, tokens, mb.gemm, delta);
    for (int64_t i = 0; i < tokens * hidden; ++i) x[i] += delta[i];
    return absl::OkStatus();
  }

  const MoeViews& moe = *layer.moe;
  const int64_t k = config_.num_experts_per_tok;
  // Router logits always take FP32 activations: expert choice compares scores, and a
  // last-bit difference can flip a near-tie.
  cpu::GemmOptions router_gemm = gemm_;
  router_gemm.precision = cpu::ActivationPrecision::kFp32;
  float* logits = Sized(router_logits_, tokens * moe.router.n);
  cpu::Gemm(h, tokens, moe.router, logits, router_gemm);
  int32_t* ids = Sized(mb.route_ids, tokens * k);
  float* weights = Sized(mb.route_weights, tokens * k);
  cpu::Route(router_, logits, tokens, moe.bias.empty() ? nullptr : moe.bias.data(), ids,
             weights, options_.pool);

  ExpertRequest request;
  request.layer = index;
  request.tokens = tokens;
  request.hidden = hidden;
  request.top_k = k;
  request.x = h;
  request.micro_batch = mb.index;
  request.prefill_tokens = mb.prefill_tokens;
  if (options_.dispatch_precision != DispatchPrecision::kFp32) {
    float* rounded = Sized(mb.expert_in, tokens * hidden);
    RoundLikeDispatch(options_.dispatch_precision, h, tokens, hidden, rounded);
    request.x = rounded;
  }
  request.expert_ids = ids;
  RETURN_IF_ERROR(experts_->Start(request));
  mb.experts_started = true;
  mb.experts_layer = index;
  return absl::OkStatus();
}

absl::Status FastModel::LayerEnd(int64_t index, MicroBatch& mb, float* x) {
  const MoeViews& moe = *views_.layers[index].moe;
  const int64_t hidden = config_.hidden_size;
  const int64_t tokens = mb.tokens;
  const int64_t k = config_.num_experts_per_tok;
  float* out = mb.delta.data();
  // The shared experts run while this micro-batch's routed experts are away.
  if (moe.shared) {
    Ffn(*moe.shared, mb.h.data(), tokens, mb.gemm, out);
  } else {
    std::fill(out, out + tokens * hidden, 0.0f);
  }
  float* expert_out = Sized(mb.expert_out, tokens * k * hidden);
  mb.experts_started = false;
  RETURN_IF_ERROR(experts_->Finish(mb.index, expert_out));
  // out = Σ_j w_j·expert_j in top-k order, then + shared: a fixed order, whichever
  // worker or batch computed each expert.
  const float* weights = mb.route_weights.data();
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < hidden; ++c) {
      float routed = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        routed += weights[t * k + j] * expert_out[(t * k + j) * hidden + c];
      }
      out[t * hidden + c] += routed;
    }
  }
  for (int64_t i = 0; i < tokens * hidden; ++i) x[i] += out[i];
  return absl::OkStatus();
}

void FastModel::Attention(int64_t index, const MicroBatch& mb, const int64_t* positions,
                          const float* h, float* out) {
  const ForwardBatch& batch = mb.batch;
  const cpu::GemmOptions& gemm = mb.gemm;
  const AttentionViews& attn = views_.layers[index].attention;
  const int64_t tokens = batch.num_tokens();
  const int64_t heads = config_.num_attention_heads;
  const int64_t nope = config_.qk_nope_head_dim;
  const int64_t rope = config_.qk_rope_head_dim;
  const int64_t qk = nope + rope;
  const int64_t rank = config_.kv_lora_rank;
  const int64_t latent = rank + rope;
  const float eps = static_cast<float>(config_.rms_norm_eps);

  float* q = Sized(q_, tokens * heads * qk);
  if (attn.q_a) {
    float* q_a = Sized(q_a_, tokens * attn.q_a->n);
    cpu::Gemm(h, tokens, *attn.q_a, q_a, gemm);
    cpu::RmsNorm(q_a, tokens, attn.q_a->n, attn.q_a->n,
                 cpu::NormWeight::Fp32(attn.q_a_norm.data()), eps, q_a, attn.q_a->n,
                 options_.pool);
    cpu::Gemm(q_a, tokens, attn.q, q, gemm);
  } else {
    cpu::Gemm(h, tokens, attn.q, q, gemm);
  }
  // [c_kv | k_rope] per token: normalize c_kv, rotate k_rope; the row is then exactly
  // the cache's latent row.
  float* kv_a = Sized(kv_a_, tokens * latent);
  cpu::Gemm(h, tokens, attn.kv_a, kv_a, gemm);
  cpu::RmsNorm(kv_a, tokens, rank, latent, cpu::NormWeight::Fp32(attn.kv_a_norm.data()), eps,
               kv_a, latent, options_.pool);
  cpu::ApplyRope(rope_, positions, tokens, 1, kv_a + rank, latent, rope, options_.pool);
  cpu::ApplyRope(rope_, positions, tokens, heads, q + nope, heads * qk, qk,
                 options_.pool);

  int64_t t = 0;
  for (const ForwardSequence& seq : batch.sequences) {
    for (size_t i = 0; i < seq.tokens.size(); ++i, ++t) {
      uint16_t* row = cache_.MutableRow(index, seq.block_table, positions[t]);
      cpu::FloatToBf16Row(kv_a + t * latent, latent, row);
    }
  }

  const cpu::KvBProjection kv_b{attn.kv_b, heads, nope, config_.v_head_dim};
  float* q_absorbed = Sized(q_absorbed_, tokens * heads * rank);
  cpu::AbsorbQueries(kv_b, q, tokens, heads * qk, qk, q_absorbed, options_.pool);
  float* q_rope = Sized(q_rope_, tokens * heads * rope);
  for (int64_t i = 0; i < tokens * heads; ++i) {
    std::memcpy(q_rope + i * rope, q + i * qk + nope, rope * sizeof(float));
  }

  float* o_latent = Sized(o_latent_, tokens * heads * rank);
  std::vector<cpu::MlaSequenceQueries> queries;
  queries.reserve(batch.sequences.size());
  t = 0;
  for (const ForwardSequence& seq : batch.sequences) {
    cpu::MlaSequenceQueries s;
    s.block_table = seq.block_table.data();
    s.first_position = seq.start_position;
    s.num_queries = static_cast<int64_t>(seq.tokens.size());
    s.q_absorbed = q_absorbed + t * heads * rank;
    s.q_rope = q_rope + t * heads * rope;
    s.out = o_latent + t * heads * rank;
    queries.push_back(s);
    t += s.num_queries;
  }
  cpu::LatentCacheView view;
  view.pool = cache_.LayerBase(index);
  view.num_blocks = cache_.num_blocks();
  view.block_tokens = cache_.block_tokens();
  view.kv_lora_rank = rank;
  view.rope_dim = rope;
  cpu::MlaAttentionOptions mla;
  mla.pool = options_.pool;
  mla.precision = cpu::MlaPrecision::kFp32;
  cpu::MlaAttention(view, queries, heads, static_cast<float>(config_.SoftmaxScale()), mla);

  float* values = Sized(values_, tokens * heads * config_.v_head_dim);
  cpu::ExpandValuesOptions expand;
  expand.gemm = gemm;
  cpu::ExpandValues(kv_b, o_latent, tokens, values, expand);
  cpu::Gemm(values, tokens, attn.o, out, gemm);
}

void FastModel::Ffn(const SwiGluViews& ffn, const float* h, int64_t tokens,
                    const cpu::GemmOptions& gemm, float* out) {
  const int64_t inner = ffn.gate.n;
  float* gate = Sized(ffn_gate_, tokens * inner);
  float* up = Sized(ffn_up_, tokens * inner);
  cpu::Gemm(h, tokens, ffn.gate, gate, gemm);
  cpu::Gemm(h, tokens, ffn.up, up, gemm);
  cpu::SiluMul(gate, inner, up, inner, tokens, inner, gate, inner, options_.pool);
  cpu::Gemm(gate, tokens, ffn.down, out, gemm);
}

}  // namespace yard::engine
