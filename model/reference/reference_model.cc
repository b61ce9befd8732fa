#include "model/reference/reference_model.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/reference/moe.h"
#include "model/reference/ops.h"

namespace yard::model {

using reference::LatentCache;
using reference::LayerWeights;

int64_t ReferenceSession::CachedFloats() const {
  int64_t n = static_cast<int64_t>(mtp_.c_kv.size() + mtp_.k_rope.size());
  for (const LatentCache& c : layers_) {
    n += static_cast<int64_t>(c.c_kv.size() + c.k_rope.size());
  }
  return n;
}

absl::StatusOr<std::unique_ptr<ReferenceModel>> ReferenceModel::Create(
    const ModelConfig& config, const WeightSourceInterface& source) {
  ASSIGN_OR_RETURN(reference::ModelWeights weights,
                   reference::LoadModelWeights(config, source));
  return std::unique_ptr<ReferenceModel>(new ReferenceModel(config, std::move(weights)));
}

absl::Status ReferenceModel::CheckToken(int32_t token) const {
  if (token < 0 || token >= config_.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token id ", token, " is outside the vocabulary [0, ", config_.vocab_size, ")"));
  }
  return absl::OkStatus();
}

double ReferenceModel::DecoderLayer(const LayerWeights& layer, int64_t position,
                                    LatentCache& cache, absl::Span<float> x) const {
  const double eps = config_.rms_norm_eps;
  std::vector<float> normed = reference::RmsNorm(x, layer.input_norm, eps);
  std::vector<float> attn =
      reference::MlaForward(config_, rope_, layer.attn, normed, position, cache);
  reference::AddScaled(attn, 1.0, x);

  normed = reference::RmsNorm(x, layer.post_attention_norm, eps);
  double margin = std::numeric_limits<double>::infinity();
  std::vector<float> ffn =
      layer.dense ? reference::SwiGlu(*layer.dense, normed)
                  : reference::MoeForward(config_, *layer.moe, normed, nullptr, &margin);
  reference::AddScaled(ffn, 1.0, x);
  return margin;
}

std::vector<float> ReferenceModel::LmHead(absl::Span<const float> h) const {
  return reference::MatVec(weights_.lm_head ? *weights_.lm_head : weights_.embed, h);
}

absl::StatusOr<ForwardOutput> ReferenceModel::Forward(ReferenceSession& session,
                                                      absl::Span<const int32_t> tokens,
                                                      LogitsMode mode) const {
  // Validate everything before touching the session, so an error leaves it usable.
  if (tokens.empty()) return absl::InvalidArgumentError("Forward: no tokens");
  if (static_cast<int64_t>(session.layers_.size()) != config_.num_hidden_layers) {
    return absl::InvalidArgumentError(
        "Forward: the session belongs to a model with a different number of layers");
  }
  for (int32_t token : tokens) RETURN_IF_ERROR(CheckToken(token));
  const int64_t start = session.length();
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (start + n > config_.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "position ", start + n - 1, " is beyond max_position_embeddings ",
        config_.max_position_embeddings));
  }

  const int64_t hidden = config_.hidden_size;
  // x: [n, hidden] fp32, the residual stream of the new tokens.
  std::vector<float> x(n * hidden);
  for (int64_t i = 0; i < n; ++i) {
    absl::Span<const float> row = weights_.embed.row(tokens[i]);
    std::copy(row.begin(), row.end(), x.begin() + i * hidden);
  }
  // Layer by layer over the new tokens; inside a layer tokens go in order, each
  // appending its latent before the next attends, which makes the chunk causal.
  ForwardOutput out;
  out.routing_margin.assign(n, std::numeric_limits<double>::infinity());
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    for (int64_t i = 0; i < n; ++i) {
      const double margin = DecoderLayer(weights_.layers[layer], start + i,
                                         session.layers_[layer],
                                         absl::MakeSpan(x.data() + i * hidden, hidden));
      out.routing_margin[i] = std::min(out.routing_margin[i], margin);
    }
  }

  out.hidden.resize(n * hidden);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> h = reference::RmsNorm(
        absl::MakeConstSpan(x.data() + i * hidden, hidden), weights_.final_norm,
        config_.rms_norm_eps);
    std::copy(h.begin(), h.end(), out.hidden.begin() + i * hidden);
  }
  const int64_t first_row = mode == LogitsMode::kAll ? 0 : n - 1;
  out.logits.reserve((n - first_row) * config_.vocab_size);
  for (int64_t i = first_row; i < n; ++i) {
    std::vector<float> logits =
        LmHead(absl::MakeConstSpan(out.hidden.data() + i * hidden, hidden));
    out.logits.insert(out.logits.end(), logits.begin(), logits.end());
  }
  return out;
}

absl::StatusOr<ForwardOutput> ReferenceModel::ForwardFull(absl::Span<const int32_t> tokens,
                                                          LogitsMode mode) const {
  ReferenceSession session = NewSession();
  return Forward(session, tokens, mode);
}

absl::StatusOr<std::vector<float>> ReferenceModel::MtpForward(ReferenceSession& session,
                                                              absl::Span<const float> h,
                                                              int32_t token) const {
  if (!weights_.mtp) {
    return absl::FailedPreconditionError(
        "MtpForward: the model has no MTP module (num_nextn_predict_layers = 0)");
  }
  RETURN_IF_ERROR(CheckToken(token));
  const int64_t hidden = config_.hidden_size;
  if (static_cast<int64_t>(h.size()) != hidden) {
    return absl::InvalidArgumentError(absl::StrCat("MtpForward: h has ", h.size(),
                                                   " values, expected hidden_size ", hidden));
  }
  const int64_t position = session.mtp_length();
  if (position >= session.length()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "MtpForward: pair ", position, " needs the main model's hidden state at position ",
        position, ", but the session holds ", session.length(), " tokens"));
  }
  if (position >= config_.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "position ", position, " is beyond max_position_embeddings ",
        config_.max_position_embeddings));
  }

  const reference::MtpWeights& mtp = *weights_.mtp;
  const double eps = config_.rms_norm_eps;
  // [enorm(emb) | hnorm(h)]: [2 * hidden] fp32, embedding first.
  std::vector<float> both = reference::RmsNorm(mtp.embed.row(token), mtp.enorm, eps);
  std::vector<float> h_normed = reference::RmsNorm(h, mtp.hnorm, eps);
  both.insert(both.end(), h_normed.begin(), h_normed.end());
  std::vector<float> x = reference::MatVec(mtp.eh_proj, both);
  DecoderLayer(mtp.block, position, session.mtp_, absl::MakeSpan(x));
  std::vector<float> out = reference::RmsNorm(x, mtp.head_norm, eps);
  return reference::MatVec(mtp.head, out);
}

}  // namespace yard::model
