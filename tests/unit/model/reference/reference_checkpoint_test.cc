// End to end: random tiny-v2/tiny-v3 checkpoints (BF16 and FP8) written by make_model,
// read back through model/checkpoint, run by the reference forward.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"
#include "model/presets.h"
#include "model/reference/reference_model.h"
#include "tools/make_model/random_checkpoint.h"

namespace yard::model {
namespace {

double RelativeError(absl::Span<const float> a, absl::Span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max<double>(diff, std::fabs(a[i] - b[i]));
    scale = std::max<double>(scale, std::fabs(b[i]));
  }
  return diff / scale;
}

struct Case {
  std::string preset;
  RandomWeightDType dtype;
  std::string name;
};

class ReferenceCheckpointTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case& c = GetParam();
    const char* tmp = std::getenv("TEST_TMPDIR");
    ASSERT_NE(tmp, nullptr);
    dir_ = std::string(tmp) + "/" + c.name;
    absl::StatusOr<ModelConfig> preset = PresetConfig(c.preset);
    ASSERT_TRUE(preset.ok());
    RandomCheckpointOptions options;
    options.dtype = c.dtype;
    options.seed = 20240601;
    options.overwrite = true;
    options.progress = ProgressMode::kNever;
    ASSERT_TRUE(WriteRandomCheckpoint(*preset, dir_, options).ok());

    absl::StatusOr<ModelConfig> config = LoadModelConfig(dir_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    ASSERT_EQ(config_.quantization.has_value(), c.dtype == RandomWeightDType::kFP8);
    CheckpointOptions open;
    open.progress = ProgressMode::kNever;
    if (config_.quantization) open.fp8_blocks = *config_.quantization;
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir_, open);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    absl::StatusOr<std::unique_ptr<ReferenceModel>> model =
        ReferenceModel::Create(config_, **checkpoint);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
  }

  // MTP drafts are finite and depend on both h and the next token.
  void CheckMtp();

  std::string dir_;
  ModelConfig config_;
  std::unique_ptr<ReferenceModel> model_;
};

const std::vector<int32_t> kTokens = {0,    17,    42,     1000, 129279, 5,  5,
                                      7777, 64000, 100000, 3,    12,     99, 2024};

TEST_P(ReferenceCheckpointTest, IncrementalMatchesRecomputationAndMtpWorks) {
  const int64_t vocab = config_.vocab_size;
  absl::StatusOr<ForwardOutput> full = model_->ForwardFull(kTokens, LogitsMode::kAll);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->logits.size(), kTokens.size() * vocab);

  ReferenceSession session = model_->NewSession();
  double worst = 0;
  double step_ms = 0;
  for (size_t i = 0; i < kTokens.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<ForwardOutput> step = model_->Forward(session, {kTokens[i]});
    step_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                         start)
                   .count();
    ASSERT_TRUE(step.ok()) << step.status();
    for (float v : step->logits) ASSERT_TRUE(std::isfinite(v));
    const double err =
        RelativeError(step->logits, absl::MakeConstSpan(full->logits.data() + i * vocab, vocab));
    worst = std::max(worst, err);
    EXPECT_LT(err, 1e-5) << "position " << i;
  }
  std::cerr << GetParam().name << ": worst relative error " << worst << ", "
            << step_ms / kTokens.size() << " ms per decode token\n";
  // Random weights still give position-dependent logits.
  EXPECT_GT(RelativeError(absl::MakeConstSpan(full->logits.data(), vocab),
                          absl::MakeConstSpan(full->logits.data() + vocab, vocab)),
            1e-3);
  EXPECT_EQ(session.CachedFloats(), config_.num_hidden_layers *
                                        static_cast<int64_t>(kTokens.size()) *
                                        (config_.kv_lora_rank + config_.qk_rope_head_dim));

  // One test per checkpoint (writing it dominates the run time): MTP drafts, for V3.
  ASSERT_EQ(model_->has_mtp(), config_.num_nextn_predict_layers > 0);
  if (model_->has_mtp()) CheckMtp();
}

void ReferenceCheckpointTest::CheckMtp() {
  absl::StatusOr<ForwardOutput> out =
      model_->ForwardFull(absl::MakeConstSpan(kTokens.data(), 4), LogitsMode::kLast);
  ASSERT_TRUE(out.ok());
  const int64_t hidden = config_.hidden_size;
  auto draft = [&](int t, int32_t token) {
    ReferenceSession s = model_->NewSession();
    EXPECT_TRUE(model_->Forward(s, absl::MakeConstSpan(kTokens.data(), 4)).ok());
    absl::StatusOr<std::vector<float>> logits = model_->MtpForward(
        s, absl::MakeConstSpan(out->hidden.data() + t * hidden, hidden), token);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits.ok() ? *logits : std::vector<float>();
  };
  std::vector<float> base = draft(0, kTokens[1]);
  ASSERT_EQ(base.size(), static_cast<size_t>(config_.vocab_size));
  for (float v : base) ASSERT_TRUE(std::isfinite(v));
  EXPECT_GT(RelativeError(draft(2, kTokens[1]), base), 1e-4);
  EXPECT_GT(RelativeError(draft(0, kTokens[3]), base), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    TinyPresets, ReferenceCheckpointTest,
    ::testing::Values(Case{"tiny-v2", RandomWeightDType::kBF16, "tiny_v2_bf16"},
                      Case{"tiny-v2", RandomWeightDType::kFP8, "tiny_v2_fp8"},
                      Case{"tiny-v3", RandomWeightDType::kBF16, "tiny_v3_bf16"},
                      Case{"tiny-v3", RandomWeightDType::kFP8, "tiny_v3_fp8"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace yard::model
