#include "model/reference/reference_model.h"

#include <algorithm>
#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/reference/moe.h"
#include "model/reference/ops.h"
#include "tests/unit/model/reference/fake_weight_source.h"
#include "tests/unit/model/reference/micro_configs.h"

namespace yard::model {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<ReferenceModel> MakeModel(const ModelConfig& config,
                                          const FakeWeightSource& source) {
  absl::StatusOr<std::unique_ptr<ReferenceModel>> model =
      ReferenceModel::Create(config, source);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// max |a - b| / max |b|.
double RelativeError(absl::Span<const float> a, absl::Span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max<double>(diff, std::fabs(a[i] - b[i]));
    scale = std::max<double>(scale, std::fabs(b[i]));
  }
  return diff / scale;
}

const std::vector<int32_t> kTokens = {0, 17, 42, 63, 5, 5, 9, 30, 1, 2, 60, 33};

class MicroModelTest : public ::testing::TestWithParam<bool /*v3*/> {
 protected:
  void SetUp() override {
    config_ = GetParam() ? MicroV3() : MicroV2();
    source_.FillRandom(config_, 1234);
    model_ = MakeModel(config_, source_);
    ASSERT_NE(model_, nullptr);
  }
  ModelConfig config_;
  FakeWeightSource source_;
  std::unique_ptr<ReferenceModel> model_;
};

TEST_P(MicroModelTest, IncrementalDecodingMatchesRecomputation) {
  absl::StatusOr<ForwardOutput> full = model_->ForwardFull(kTokens, LogitsMode::kAll);
  ASSERT_TRUE(full.ok()) << full.status();
  const int64_t vocab = config_.vocab_size;
  ASSERT_EQ(full->logits.size(), kTokens.size() * vocab);

  ReferenceSession session = model_->NewSession();
  for (size_t i = 0; i < kTokens.size(); ++i) {
    absl::StatusOr<ForwardOutput> step = model_->Forward(session, {kTokens[i]});
    ASSERT_TRUE(step.ok()) << step.status();
    absl::Span<const float> expected(full->logits.data() + i * vocab, vocab);
    EXPECT_LT(RelativeError(step->logits, expected), 1e-5) << "position " << i;
  }
  // Logits must actually differ between positions (the test would be void otherwise).
  EXPECT_GT(RelativeError(absl::MakeConstSpan(full->logits.data(), vocab),
                          absl::MakeConstSpan(full->logits.data() + vocab, vocab)),
            1e-3);
}

TEST_P(MicroModelTest, ChunkedPrefillMatchesRecomputation) {
  absl::StatusOr<ForwardOutput> full = model_->ForwardFull(kTokens, LogitsMode::kAll);
  ASSERT_TRUE(full.ok());
  const int64_t vocab = config_.vocab_size;
  ReferenceSession session = model_->NewSession();
  const std::vector<std::pair<int, int>> chunks = {{0, 5}, {5, 6}, {6, 12}};
  for (auto [begin, end] : chunks) {
    absl::StatusOr<ForwardOutput> out = model_->Forward(
        session, absl::MakeConstSpan(kTokens.data() + begin, end - begin), LogitsMode::kAll);
    ASSERT_TRUE(out.ok());
    ASSERT_EQ(out->hidden.size(), static_cast<size_t>((end - begin) * config_.hidden_size));
    EXPECT_LT(RelativeError(out->logits, absl::MakeConstSpan(
                                             full->logits.data() + begin * vocab,
                                             (end - begin) * vocab)),
              1e-5);
  }
  // kLast gives the last row of kAll.
  absl::StatusOr<ForwardOutput> last = model_->ForwardFull(kTokens, LogitsMode::kLast);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->logits.size(), static_cast<size_t>(vocab));
  EXPECT_LT(RelativeError(last->logits,
                          absl::MakeConstSpan(full->logits.data() + 11 * vocab, vocab)),
            1e-6);
}

TEST_P(MicroModelTest, CachesOnlyLatentAndRopeKey) {
  ReferenceSession session = model_->NewSession();
  ASSERT_TRUE(model_->Forward(session, absl::MakeConstSpan(kTokens.data(), 7)).ok());
  EXPECT_EQ(session.length(), 7);
  const int64_t per_token = config_.kv_lora_rank + config_.qk_rope_head_dim;
  EXPECT_EQ(session.CachedFloats(), config_.num_hidden_layers * 7 * per_token);
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    EXPECT_EQ(session.layer_cache(layer).c_kv.size(), 7u * config_.kv_lora_rank);
    EXPECT_EQ(session.layer_cache(layer).k_rope.size(), 7u * config_.qk_rope_head_dim);
  }
}

TEST_P(MicroModelTest, RejectsBadTokensAndPositions) {
  ReferenceSession session = model_->NewSession();
  absl::Status s = model_->Forward(session, {1, static_cast<int32_t>(config_.vocab_size)})
                       .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("token id 64"));
  EXPECT_EQ(model_->Forward(session, {-1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->Forward(session, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session.length(), 0);  // errors leave the session unchanged

  // max_position_embeddings = 32: positions 0..31 fit, 32 does not.
  std::vector<int32_t> many(31, 3);
  ASSERT_TRUE(model_->Forward(session, many).ok());
  s = model_->Forward(session, {4, 4}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("max_position_embeddings"));
  EXPECT_EQ(session.length(), 31);
  EXPECT_TRUE(model_->Forward(session, {4}).ok());
  EXPECT_EQ(model_->Forward(session, {4}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(V2AndV3, MicroModelTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "V3" : "V2"; });

TEST(ReferenceModelCreateTest, ShapeMismatchNamesTheTensor) {
  ModelConfig c = MicroV3();
  FakeWeightSource source;
  source.FillRandom(c, 1);
  source.Set("model.layers.1.mlp.gate.weight", {7, 24}, std::vector<float>(7 * 24));
  absl::Status s = ReferenceModel::Create(c, source).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("tensor model.layers.1.mlp.gate.weight: shape [7,24], expected [8,24]"));
}

TEST(ReferenceModelCreateTest, ValueCountMismatchIsAnError) {
  ModelConfig c = MicroV3();
  FakeWeightSource source;
  source.FillRandom(c, 1);
  source.Mutable("model.norm.weight").data.pop_back();
  absl::Status s = ReferenceModel::Create(c, source).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model.norm.weight"));
}

TEST(ReferenceModelCreateTest, MissingTensorIsNotFound) {
  ModelConfig c = MicroV3();
  FakeWeightSource source;
  source.FillRandom(c, 1);
  source.Erase("model.layers.2.mlp.experts.5.up_proj.weight");
  absl::Status s = ReferenceModel::Create(c, source).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("model.layers.2.mlp.experts.5.up_proj.weight"));
}

// With every o_proj zero the attention adds nothing, so the final state is
// embed + dense FFN (layer 0) + MoE FFN (layers 1, 2), each of the RMSNorm'd stream:
// computed here from the building blocks, it pins which layer uses which FFN.
TEST(ReferenceModelWiringTest, DenseThenMoeLayers) {
  ModelConfig c = MicroV3();
  c.num_nextn_predict_layers = 0;
  FakeWeightSource source;
  source.FillRandom(c, 7);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    Fp32Tensor& o = source.Mutable(LayerPrefix(layer) + "self_attn.o_proj.weight");
    std::fill(o.data.begin(), o.data.end(), 0.0f);
  }
  auto model = MakeModel(c, source);
  ASSERT_NE(model, nullptr);
  absl::StatusOr<ForwardOutput> out = model->ForwardFull({11});
  ASSERT_TRUE(out.ok());

  auto read = [&](const std::string& name) { return *source.ReadFp32(name); };
  auto matrix = [&](const std::string& name) {
    Fp32Tensor t = read(name);
    return reference::Matrix{t.shape[0], t.shape[1], t.data};
  };
  auto swiglu = [&](const std::string& p) {
    return reference::SwiGluWeights{matrix(p + "gate_proj.weight"),
                                    matrix(p + "up_proj.weight"),
                                    matrix(p + "down_proj.weight")};
  };
  const double eps = c.rms_norm_eps;
  reference::Matrix embed = matrix("model.embed_tokens.weight");
  std::vector<float> x(embed.row(11).begin(), embed.row(11).end());
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = LayerPrefix(layer);
    std::vector<float> n =
        reference::RmsNorm(x, read(p + "post_attention_layernorm.weight").data, eps);
    std::vector<float> ffn;
    if (layer == 0) {
      ffn = reference::SwiGlu(swiglu(p + "mlp."), n);
    } else {
      reference::MoeWeights moe;
      moe.gate = matrix(p + "mlp.gate.weight");
      moe.e_score_correction_bias = read(p + "mlp.gate.e_score_correction_bias").data;
      for (int e = 0; e < c.n_routed_experts; ++e) {
        moe.experts.push_back(swiglu(p + "mlp.experts." + std::to_string(e) + "."));
      }
      moe.shared = swiglu(p + "mlp.shared_experts.");
      ffn = reference::MoeForward(c, moe, n);
    }
    reference::AddScaled(ffn, 1.0, absl::MakeSpan(x));
  }
  std::vector<float> expected = reference::RmsNorm(x, read("model.norm.weight").data, eps);
  EXPECT_LT(RelativeError(out->hidden, expected), 1e-6);
  std::vector<float> logits = reference::MatVec(matrix("lm_head.weight"), expected);
  EXPECT_LT(RelativeError(out->logits, logits), 1e-6);
}

TEST(ReferenceModelWiringTest, TiedEmbeddingsServeAsHead) {
  ModelConfig c = MicroV2();
  c.tie_word_embeddings = true;
  FakeWeightSource source;
  source.FillRandom(c, 3);
  ASSERT_FALSE(source.Has("lm_head.weight"));
  auto model = MakeModel(c, source);
  ASSERT_NE(model, nullptr);
  absl::StatusOr<ForwardOutput> out = model->ForwardFull({1, 2, 3});
  ASSERT_TRUE(out.ok());
  Fp32Tensor e = *source.ReadFp32("model.embed_tokens.weight");
  std::vector<float> expected = reference::MatVec(
      reference::Matrix{e.shape[0], e.shape[1], e.data},
      absl::MakeConstSpan(out->hidden.data() + 2 * c.hidden_size, c.hidden_size));
  EXPECT_LT(RelativeError(out->logits, expected), 1e-6);
}

class MtpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = MicroV3();
    source_.FillRandom(config_, 99);
  }
  ModelConfig config_;
  FakeWeightSource source_;
};

TEST_F(MtpTest, FiniteAndDependsOnBothInputs) {
  auto model = MakeModel(config_, source_);
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(model->has_mtp());
  ReferenceSession session = model->NewSession();
  absl::StatusOr<ForwardOutput> out = model->Forward(session, {3, 8, 21});
  ASSERT_TRUE(out.ok());
  const int64_t hidden = config_.hidden_size;
  auto h = [&](int t) { return absl::MakeConstSpan(out->hidden.data() + t * hidden, hidden); };

  auto run = [&](int t, int32_t token) {
    ReferenceSession s = model->NewSession();
    EXPECT_TRUE(model->Forward(s, {3, 8, 21}).ok());
    absl::StatusOr<std::vector<float>> logits = model->MtpForward(s, h(t), token);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return *logits;
  };
  std::vector<float> base = run(0, 8);
  ASSERT_EQ(base.size(), static_cast<size_t>(config_.vocab_size));
  for (float v : base) ASSERT_TRUE(std::isfinite(v));
  EXPECT_GT(RelativeError(run(1, 8), base), 1e-3);   // other h
  EXPECT_GT(RelativeError(run(0, 9), base), 1e-3);   // other token

  // Pairs in order, with their own cache; pair t needs h_t from the main model.
  ASSERT_TRUE(model->MtpForward(session, h(0), 8).ok());
  ASSERT_TRUE(model->MtpForward(session, h(1), 21).ok());
  EXPECT_EQ(session.mtp_length(), 2);
  EXPECT_EQ(session.mtp_cache().c_kv.size(), 2u * config_.kv_lora_rank);
  EXPECT_EQ(session.mtp_cache().k_rope.size(), 2u * config_.qk_rope_head_dim);
  ASSERT_TRUE(model->MtpForward(session, h(2), 5).ok());
  EXPECT_EQ(model->MtpForward(session, h(2), 5).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(model->MtpForward(session, h(2), -3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model->MtpForward(session, absl::MakeConstSpan(out->hidden.data(), 3), 5)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MtpTest, EmbeddingComesFirstInEhProj) {
  // Zero eh_proj's second half (the columns that take hnorm(h)): the draft must then
  // ignore h and still depend on the token.
  Fp32Tensor& eh = source_.Mutable(LayerPrefix(config_.num_hidden_layers) + "eh_proj.weight");
  const int64_t hidden = config_.hidden_size;
  for (int64_t r = 0; r < hidden; ++r) {
    std::fill(eh.data.begin() + r * 2 * hidden + hidden, eh.data.begin() + (r + 1) * 2 * hidden,
              0.0f);
  }
  auto model = MakeModel(config_, source_);
  ASSERT_NE(model, nullptr);
  auto draft = [&](float h_value, int32_t token) {
    ReferenceSession s = model->NewSession();
    EXPECT_TRUE(model->Forward(s, {1}).ok());
    std::vector<float> h(hidden, h_value);
    h[0] = -h_value;
    return *model->MtpForward(s, h, token);
  };
  EXPECT_LT(RelativeError(draft(0.5f, 4), draft(-2.0f, 4)), 1e-7);
  EXPECT_GT(RelativeError(draft(0.5f, 4), draft(0.5f, 6)), 1e-3);
}

TEST(MtpAbsentTest, FailedPrecondition) {
  ModelConfig c = MicroV2();
  FakeWeightSource source;
  source.FillRandom(c, 5);
  auto model = MakeModel(c, source);
  ASSERT_NE(model, nullptr);
  EXPECT_FALSE(model->has_mtp());
  ReferenceSession s = model->NewSession();
  ASSERT_TRUE(model->Forward(s, {1}).ok());
  std::vector<float> h(c.hidden_size, 1.0f);
  EXPECT_EQ(model->MtpForward(s, h, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace yard::model
