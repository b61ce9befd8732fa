// The FP32 reference forward against golden logits from an independent implementation:
// make_golden.py in this directory, a float64 pure-Python DeepSeek-V2/V3 forward in the
// structure of Hugging Face's modeling code (see its header for what it computes and
// how to regenerate golden_logits.json). The reference's own tests compare its
// incremental decoding with full recomputation, which share every formula; this test
// is the one that catches a mistake in the formulas themselves (RoPE pairing, YaRN,
// softmax scale, routing, the MTP concat order, ...).
//
// Per preset (tiny-v2, tiny-v3), the test writes the same random BF16 checkpoint the
// golden was made from (make_model, the JSON's seed), checks a few raw weights against
// the JSON (so a changed checkpoint generator reads as that, not as a forward bug), and
// for scale 1 and 16 (ScaledWeightSource below) requires the main logits at the last
// position, and for tiny-v3 MTP module 0's last draft logits, to match: max|Δ| over the
// stored ids ≤ 1e-5 · max|golden|, and the same argmax over the whole vocabulary.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "model/checkpoint/checkpoint.h"
#include "model/config.h"
#include "model/presets.h"
#include "model/reference/reference_model.h"
#include "model/weight_source.h"
#include "nlohmann/json.hpp"
#include "tools/make_model/random_checkpoint.h"

namespace yard::model {
namespace {

using Json = nlohmann::json;

constexpr char kGoldenFile[] = "tests/unit/model/reference/golden/golden_logits.json";
constexpr double kTolerance = 1e-5;
constexpr int kScale = 16;

// The tensors scaled by kScale, by name suffix, in every layer (MTP's included): queries
// (q_proj for V2, q_b_proj for V3), kv_a_proj_with_mqa (its k_pe rows; the c_kv rows are
// re-normalized by kv_a_layernorm), kv_b_proj (k_nope and v) and the MoE router gate.
// Random N(0, 0.02) weights leave attention nearly uniform and routing nearly
// indifferent; ×16 makes both decisive, so position and routing mistakes show. Must
// equal make_golden.py's SCALED_SUFFIXES; the test checks the JSON's copy.
const std::vector<std::string>& ScaledSuffixes() {
  static const std::vector<std::string> suffixes = {
      "self_attn.q_proj.weight",
      "self_attn.q_b_proj.weight",
      "self_attn.kv_a_proj_with_mqa.weight",
      "self_attn.kv_b_proj.weight",
      "mlp.gate.weight",
  };
  return suffixes;
}

// A view of another source with the ScaledSuffixes() tensors multiplied by `scale` (a
// power of two, so exact). Borrows `base`, which must outlive it.
class ScaledWeightSource : public WeightSourceInterface {
 public:
  ScaledWeightSource(const WeightSourceInterface& base, float scale) : base_(base), scale_(scale) {}

  absl::StatusOr<Fp32Tensor> ReadFp32(const std::string& name) const override {
    absl::StatusOr<Fp32Tensor> tensor = base_.ReadFp32(name);
    if (!tensor.ok()) return tensor;
    for (const std::string& suffix : ScaledSuffixes()) {
      if (absl::EndsWith(name, suffix)) {
        for (float& value : tensor->data) value *= scale_;
        break;
      }
    }
    return tensor;
  }

 private:
  const WeightSourceInterface& base_;
  const float scale_;
};

const Json& Golden() {
  static const Json* const golden = [] {
    std::ifstream in(kGoldenFile);
    EXPECT_TRUE(in.good()) << "cannot open " << kGoldenFile;
    return new Json(Json::parse(in, nullptr, /*allow_exceptions=*/false));
  }();
  return *golden;
}

// Compares `logits` ([vocab] fp32) with a golden record {argmax, ids, values}.
void ExpectMatches(const std::string& what, absl::Span<const float> logits, const Json& golden) {
  const std::vector<int64_t> ids = golden.at("ids").get<std::vector<int64_t>>();
  const std::vector<double> values = golden.at("values").get<std::vector<double>>();
  ASSERT_EQ(ids.size(), values.size());
  ASSERT_GE(ids.size(), 32u);
  double diff = 0, scale = 0;
  int64_t worst = -1;
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_LT(ids[i], static_cast<int64_t>(logits.size()));
    const double d = std::fabs(logits[ids[i]] - values[i]);
    if (d > diff) {
      diff = d;
      worst = ids[i];
    }
    scale = std::max(scale, std::fabs(values[i]));
  }
  const double relative = diff / scale;
  std::cout << "  " << what << ": relative error " << relative << " (max |golden| " << scale
            << ")\n";
  EXPECT_LE(relative, kTolerance) << what << ", worst at id " << worst;
  const int64_t argmax = std::max_element(logits.begin(), logits.end()) - logits.begin();
  EXPECT_EQ(argmax, golden.at("argmax").get<int64_t>()) << what;
}

void CheckPreset(const std::string& preset) {
  const Json& golden = Golden();
  ASSERT_TRUE(golden.is_object()) << kGoldenFile << " is not valid JSON";
  ASSERT_EQ(golden.at("scaled_suffixes").get<std::vector<std::string>>(), ScaledSuffixes())
      << "make_golden.py and this test scale different tensors";
  ASSERT_EQ(golden.at("dtype").get<std::string>(), "bf16");
  const std::vector<int32_t> tokens = golden.at("tokens").get<std::vector<int32_t>>();
  const int32_t mtp_next_token = golden.at("mtp_next_token").get<int32_t>();
  ASSERT_FALSE(tokens.empty());

  std::vector<const Json*> cases;
  for (const Json& c : golden.at("cases")) {
    if (c.at("preset").get<std::string>() == preset) cases.push_back(&c);
  }
  ASSERT_EQ(cases.size(), 2u) << "want scales 1 and " << kScale << " for " << preset;

  // The checkpoint the golden was computed from.
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string dir = std::string(tmp) + "/" + preset;
  absl::StatusOr<ModelConfig> config = PresetConfig(preset);
  ASSERT_TRUE(config.ok()) << config.status();
  RandomCheckpointOptions options;
  options.dtype = RandomWeightDType::kBF16;
  options.seed = golden.at("seed").get<uint64_t>();
  options.overwrite = true;
  options.progress = ProgressMode::kNever;
  ASSERT_TRUE(WriteRandomCheckpoint(*config, dir, options).ok());
  CheckpointOptions open;
  open.progress = ProgressMode::kNever;
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir, open);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  for (const Json* c : cases) {
    const int scale = c->at("scale").get<int>();
    ASSERT_TRUE(scale == 1 || scale == kScale) << scale;
    SCOPED_TRACE(preset + " x" + std::to_string(scale));
    std::cout << preset << " x" << scale << ":\n";
    for (const Json& probe : c->at("probes")) {
      const std::string name = probe.at("tensor").get<std::string>();
      absl::StatusOr<Fp32Tensor> tensor = (*checkpoint)->ReadFp32(name);
      ASSERT_TRUE(tensor.ok()) << tensor.status();
      const int64_t index = probe.at("index").get<int64_t>();
      ASSERT_LT(index, tensor->size()) << name;
      ASSERT_EQ(static_cast<double>(tensor->data[index]), probe.at("value").get<double>())
          << name << "[" << index << "]: make_model no longer writes the weights the "
          << "golden was made from; regenerate it (make_golden.py)";
    }

    ScaledWeightSource scaled(**checkpoint, static_cast<float>(scale));
    absl::StatusOr<std::unique_ptr<ReferenceModel>> model = ReferenceModel::Create(*config, scaled);
    ASSERT_TRUE(model.ok()) << model.status();
    ReferenceSession session = (*model)->NewSession();
    absl::StatusOr<ForwardOutput> out = (*model)->Forward(session, tokens);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->logits.size(), static_cast<size_t>(config->vocab_size));
    ExpectMatches("main logits", out->logits, c->at("logits"));

    ASSERT_EQ((*model)->has_mtp(), c->contains("mtp_logits"));
    if (!(*model)->has_mtp()) continue;
    // Pairs (h_t, token t+1) for every position, the last with mtp_next_token.
    const int64_t hidden = config->hidden_size;
    std::vector<float> draft;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const int32_t next = t + 1 < tokens.size() ? tokens[t + 1] : mtp_next_token;
      absl::StatusOr<std::vector<float>> logits = (*model)->MtpForward(
          session, absl::MakeConstSpan(out->hidden).subspan(t * hidden, hidden), next);
      ASSERT_TRUE(logits.ok()) << logits.status();
      draft = std::move(*logits);
    }
    ExpectMatches("mtp logits", draft, c->at("mtp_logits"));
  }
}

TEST(ReferenceGoldenTest, TinyV2MatchesIndependentImplementation) { CheckPreset("tiny-v2"); }

TEST(ReferenceGoldenTest, TinyV3MatchesIndependentImplementation) { CheckPreset("tiny-v3"); }

}  // namespace
}  // namespace yard::model
