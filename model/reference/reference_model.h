// The FP32 reference forward of a DeepSeek-V2/V3 model: plain loops, one token at a
// time, every reduction in double (model/reference/ops.h). It is the oracle that the
// fast engine and the distributed paths are compared against, so it follows
// DESIGN.md "Model math" literally and favours clarity over speed.
//
// Usage:
//   ASSIGN_OR_RETURN(auto model, ReferenceModel::Create(config, checkpoint));
//   ReferenceSession session = model->NewSession();
//   ASSIGN_OR_RETURN(ForwardOutput prompt, model->Forward(session, prompt_tokens));
//   ASSIGN_OR_RETURN(ForwardOutput step, model->Forward(session, {next_token}));
#ifndef SWITCHYARD_MODEL_REFERENCE_REFERENCE_MODEL_H_
#define SWITCHYARD_MODEL_REFERENCE_REFERENCE_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/config.h"
#include "model/reference/mla.h"
#include "model/reference/rope.h"
#include "model/reference/weights.h"
#include "model/weight_source.h"

namespace yard::model {

// The state of one sequence: per decoder layer (and for the MTP block) the latent KV
// cache of every token seen so far — c_kv and k_rope only (reference::LatentCache).
// Not thread-safe; one session per sequence. Created by ReferenceModel::NewSession and
// usable only with the model that created it (or one of the same config).
class ReferenceSession {
 public:
  // Tokens the main model has processed; the next token's position.
  int64_t length() const { return layers_.empty() ? 0 : layers_[0].tokens; }
  // (hidden, token) pairs the MTP module has processed; its next position.
  int64_t mtp_length() const { return mtp_.tokens; }

  // The cache of decoder layer `layer` in [0, num_hidden_layers).
  const reference::LatentCache& layer_cache(int64_t layer) const { return layers_[layer]; }
  const reference::LatentCache& mtp_cache() const { return mtp_; }

  // FP32 values held in all caches (decoder layers and MTP): for L layers and n
  // tokens, L·n·(kv_lora_rank + qk_rope_head_dim) plus the MTP block's share.
  int64_t CachedFloats() const;

 private:
  friend class ReferenceModel;
  explicit ReferenceSession(int64_t num_layers) : layers_(num_layers) {}

  std::vector<reference::LatentCache> layers_;  // [num_hidden_layers]
  reference::LatentCache mtp_;                  // MTP module 0's block
};

// Which positions get logits: the lm_head matvec dominates the reference's cost, so
// prompts usually only need the last one.
enum class LogitsMode { kLast, kAll };

struct ForwardOutput {
  // [rows, vocab_size] fp32, row-major: rows = the number of new tokens with
  // LogitsMode::kAll (in order), or 1 (the last new token) with kLast.
  std::vector<float> logits;
  // [new tokens, hidden_size] fp32: each new token's final-normed hidden state
  // (model.norm output, lm_head's input), which is the MTP module's `h` input.
  std::vector<float> hidden;
  // [new tokens]: per token, the smallest routing margin over its MoE layers
  // (reference::RouteToken's deciding gap; +inf without MoE layers). Where it is
  // within another implementation's numerical noise, that implementation may
  // legitimately pick other experts, so comparisons should not hold it to the
  // oracle's logits there.
  std::vector<double> routing_margin;
};

// Immutable after Create; may be shared across threads, each with its own sessions.
class ReferenceModel {
 public:
  // Reads every weight as FP32 from `source` (which need not outlive the call).
  // Errors: the source's (NotFound for a missing tensor), InvalidArgument naming the
  // tensor for a shape that differs from model/weight_layout.h.
  static absl::StatusOr<std::unique_ptr<ReferenceModel>> Create(
      const ModelConfig& config, const WeightSourceInterface& source);

  const ModelConfig& config() const { return config_; }
  bool has_mtp() const { return weights_.mtp.has_value(); }
  // The rotary frequencies every attention layer uses.
  const reference::Rope& rope() const { return rope_; }

  ReferenceSession NewSession() const { return ReferenceSession(config_.num_hidden_layers); }

  // Runs `tokens` at positions session.length(), +1, ... and appends them to the
  // session's caches. Causal: token i attends to every earlier token of the session
  // and to itself. Errors (the session is left unchanged): InvalidArgument for an
  // empty list, a token id outside [0, vocab_size), a position reaching
  // max_position_embeddings, or a session from a different config.
  // tokens: [n] token ids.
  absl::StatusOr<ForwardOutput> Forward(ReferenceSession& session,
                                        absl::Span<const int32_t> tokens,
                                        LogitsMode mode = LogitsMode::kLast) const;

  // Forward on a fresh session: recomputes the whole sequence from scratch.
  absl::StatusOr<ForwardOutput> ForwardFull(absl::Span<const int32_t> tokens,
                                            LogitsMode mode = LogitsMode::kLast) const;

  // One step of MTP module 0 (V3): draft logits for token t+2 from
  //   h       the main model's final-normed hidden state at position t
  //           (ForwardOutput::hidden), and
  //   token   token t+1 (the one the main model predicted or was given there),
  // as x = eh_proj·[enorm(embed_mtp(token)) | hnorm(h)] (embedding first, as the
  // released checkpoints and vLLM/SGLang order it), then the MTP decoder block,
  // shared_head.norm and shared_head.head.
  //
  // Positions: the MTP block has its own latent cache and runs the shifted sequence
  // of pairs (h_0, token_1), (h_1, token_2), ...; pair t sits at position t, the
  // position of h_t, as vLLM and SGLang pass the target model's positions to their
  // MTP drafters. The caller feeds pairs in order: t = session.mtp_length(), which must
  // be < session.length() (h_t must exist).
  // Errors: FailedPrecondition without an MTP module or out of order; InvalidArgument
  // for a bad token, a wrong-length h, or a position reaching max_position_embeddings.
  // h: [hidden_size] fp32; result: [vocab_size] fp32.
  absl::StatusOr<std::vector<float>> MtpForward(ReferenceSession& session,
                                                absl::Span<const float> h,
                                                int32_t token) const;

 private:
  ReferenceModel(const ModelConfig& config, reference::ModelWeights weights)
      : config_(config), weights_(std::move(weights)), rope_(config) {}

  absl::Status CheckToken(int32_t token) const;
  // One decoder block, in place: x += MLA(RMSNorm(x)); x += FFN(RMSNorm(x)).
  // x: [hidden] fp32.
  // Returns the layer's routing margin (+inf for a dense layer).
  double DecoderLayer(const reference::LayerWeights& layer, int64_t position,
                      reference::LatentCache& cache, absl::Span<float> x) const;
  // lm_head (or the tied embedding) of one final-normed state. h: [hidden] fp32.
  std::vector<float> LmHead(absl::Span<const float> h) const;

  ModelConfig config_;
  reference::ModelWeights weights_;
  reference::Rope rope_;
};

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_REFERENCE_REFERENCE_MODEL_H_
