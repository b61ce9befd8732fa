// make_model's checkpoints, read back through Checkpoint: validation, tampering,
// dequantization accuracy and determinism.
#include "tools/make_model/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint/checkpoint.h"
#include "model/checkpoint/dtype.h"
#include "model/checkpoint/safetensors.h"
#include "model/config.h"
#include "model/presets.h"
#include "model/weight_layout.h"
#include "tests/unit/model/checkpoint/test_util.h"

namespace yard::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::yard::model::testing::ReadBytes;
using ::yard::model::testing::ScratchDir;

ModelConfig TinyV3() {
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny-v3");
  EXPECT_TRUE(config.ok());
  return *config;
}

// tiny-v3 with a small vocabulary: every layer kind, a few MB instead of 200.
ModelConfig SmallV3() {
  ModelConfig c = TinyV3();
  c.vocab_size = 300;
  return c;
}

std::unique_ptr<Checkpoint> OpenOrDie(const std::string& dir,
                                      const CheckpointOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir, options);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  return ckpt.ok() ? *std::move(ckpt) : nullptr;
}

std::string Write(const ModelConfig& config, const std::string& name,
                  RandomCheckpointOptions options = {}) {
  const std::string dir = ScratchDir(name);
  const absl::Status status = WriteRandomCheckpoint(config, dir, options);
  EXPECT_TRUE(status.ok()) << status;
  return dir;
}

// Copies the checkpoint in `src` into a fresh single-file checkpoint after `edit`
// changed its tensor list: the way to get a realistically tampered checkpoint.
std::string Tamper(const std::string& src, const std::string& name,
                   const std::function<void(std::vector<OwnedTensor>&)>& edit) {
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(src);
  std::vector<OwnedTensor> tensors;
  for (const std::string& tensor : ckpt->TensorNames()) {
    const TensorView* view = ckpt->Find(tensor);
    tensors.push_back({{view->name, view->dtype, view->shape},
                       std::vector<uint8_t>(view->data, view->data + view->nbytes)});
  }
  edit(tensors);
  const std::string dir = ScratchDir(name);
  EXPECT_TRUE(WriteSafetensorsFile(dir + "/model.safetensors", tensors).ok());
  fs::copy_file(fs::path(src) / "config.json", fs::path(dir) / "config.json");
  return dir;
}

void Erase(std::vector<OwnedTensor>& tensors, const std::string& name) {
  const auto it = std::find_if(tensors.begin(), tensors.end(),
                               [&](const OwnedTensor& t) { return t.decl.name == name; });
  ASSERT_NE(it, tensors.end()) << name;
  tensors.erase(it);
}

absl::Status ValidateDir(const std::string& dir) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(dir);
  if (ckpt == nullptr) return absl::InternalError("open failed");
  return ckpt->Validate(*config).status();
}

// The real tiny-v3 (129280-token vocabulary) is written once per dtype for the suite.
class TinyV3CheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bf16_dir_ = new std::string(Write(TinyV3(), "tiny_v3_bf16"));
    RandomCheckpointOptions fp8;
    fp8.dtype = RandomWeightDType::kFP8;
    fp8.max_shard_bytes = 60'000'000;  // 4 shards + index, as a real release
    fp8_dir_ = new std::string(Write(TinyV3(), "tiny_v3_fp8", fp8));
  }
  static void TearDownTestSuite() {
    delete bf16_dir_;
    delete fp8_dir_;
  }

  static std::string* bf16_dir_;
  static std::string* fp8_dir_;
};
std::string* TinyV3CheckpointTest::bf16_dir_ = nullptr;
std::string* TinyV3CheckpointTest::fp8_dir_ = nullptr;

TEST_F(TinyV3CheckpointTest, Bf16Validates) {
  EXPECT_TRUE(fs::exists(*bf16_dir_ + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(*bf16_dir_ + "/model.safetensors.index.json"));
  absl::StatusOr<ModelConfig> config = LoadModelConfig(*bf16_dir_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->quantization.has_value());
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(*bf16_dir_);
  absl::StatusOr<ValidationReport> report = ckpt->Validate(*config);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->unexpected_tensors.empty());
  EXPECT_EQ(report->tensors_checked,
            static_cast<int64_t>(ExpectedWeights(*config).size()));

  const TensorView* bias = ckpt->Find("model.layers.1.mlp.gate.e_score_correction_bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->dtype, DType::kF32);
  EXPECT_EQ(ckpt->Find("model.layers.1.self_attn.q_a_proj.weight")->dtype, DType::kBF16);
}

TEST_F(TinyV3CheckpointTest, Fp8Validates) {
  EXPECT_TRUE(fs::exists(*fp8_dir_ + "/model-00001-of-00004.safetensors"));
  EXPECT_TRUE(fs::exists(*fp8_dir_ + "/model.safetensors.index.json"));
  absl::StatusOr<ModelConfig> config = LoadModelConfig(*fp8_dir_);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->quantization.has_value());
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(*fp8_dir_);
  EXPECT_EQ(ckpt->num_files(), 4);
  absl::StatusOr<ValidationReport> report = ckpt->Validate(*config);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->unexpected_tensors.empty());

  const TensorView* w = ckpt->Find("model.layers.2.mlp.experts.3.down_proj.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::kF8E4M3);
  const TensorView* s =
      ckpt->Find("model.layers.2.mlp.experts.3.down_proj.weight_scale_inv");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->dtype, DType::kF32);
  EXPECT_EQ(s->shape, (std::vector<int64_t>{2, 1}));  // [192, 96] in 128x128 blocks
  EXPECT_EQ(ckpt->Find("model.embed_tokens.weight")->dtype, DType::kBF16);
  EXPECT_EQ(ckpt->Find("model.layers.3.eh_proj.weight")->dtype, DType::kBF16);
  EXPECT_EQ(ckpt->Find("model.layers.1.mlp.gate.weight")->dtype, DType::kBF16);
  EXPECT_EQ(ckpt->Find("model.layers.1.mlp.gate.e_score_correction_bias")->dtype,
            DType::kF32);

  // Without quantization_config the FP8 weights are not acceptable.
  ModelConfig plain = *config;
  plain.quantization.reset();
  absl::StatusOr<ValidationReport> bad = ckpt->Validate(plain);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("no quantization_config"));
  EXPECT_THAT(bad.status().message(), HasSubstr("more problems"));
}

TEST_F(TinyV3CheckpointTest, WrongConfigNamesFileTensorAndShapes) {
  ModelConfig other = TinyV3();
  other.n_routed_experts = 8;
  other.n_group = 2;
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(*bf16_dir_);
  absl::StatusOr<ValidationReport> report = ckpt->Validate(other);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(),
              HasSubstr("model.safetensors: tensor model.layers.1.mlp.gate.weight: "
                        "shape [16,192], expected [8,192]"));
}

// The unquantized weights read back as the generator's values rounded to BF16.
TEST_F(TinyV3CheckpointTest, Bf16ValuesMatchGenerator) {
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(*bf16_dir_);
  for (const WeightSpec& spec : ExpectedWeights(TinyV3())) {
    if (spec.name != "model.layers.0.input_layernorm.weight" &&
        spec.name != "model.layers.1.self_attn.kv_b_proj.weight" &&
        spec.name != "model.layers.1.mlp.gate.e_score_correction_bias") {
      continue;
    }
    const std::vector<float> original = RandomWeightValues(spec, kDefaultRandomSeed);
    absl::StatusOr<Fp32Tensor> read = ckpt->ReadFp32(spec.name);
    ASSERT_TRUE(read.ok()) << read.status();
    ASSERT_EQ(read->data.size(), original.size());
    for (size_t i = 0; i < original.size(); ++i) {
      const float expected =
          spec.always_fp32 ? original[i] : Bf16ToF32(F32ToBf16(original[i]));
      ASSERT_EQ(read->data[i], expected) << spec.name << "[" << i << "]";
    }
  }
}

TEST_F(TinyV3CheckpointTest, Fp8DequantizationIsAccurate) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(*fp8_dir_);
  ASSERT_TRUE(config.ok());
  const Fp8Quantization q = *config->quantization;
  std::unique_ptr<Checkpoint> ckpt = OpenOrDie(*fp8_dir_, {.fp8_blocks = q});
  int checked = 0;
  for (const WeightSpec& spec : ExpectedWeights(*config)) {
    // Every layer kind; shapes with partial blocks (96, 192, 320, 64 columns).
    if (!spec.fp8_when_quantized ||
        !(absl::StrContains(spec.name, "layers.0.") ||
          absl::StrContains(spec.name, "experts.5.") ||
          absl::StrContains(spec.name, "layers.3.self_attn"))) {
      continue;
    }
    ++checked;
    const std::vector<float> w = RandomWeightValues(spec, kDefaultRandomSeed);
    absl::StatusOr<Fp32Tensor> read = ckpt->ReadFp32(spec.name);
    ASSERT_TRUE(read.ok()) << read.status();
    const int64_t rows = spec.shape[0], cols = spec.shape[1];
    const std::vector<int64_t> scale_shape = ScaleShape(spec.shape, q);
    for (int64_t br = 0; br < scale_shape[0]; ++br) {
      for (int64_t bc = 0; bc < scale_shape[1]; ++bc) {
        float amax = 0, read_amax = 0;
        const int64_t r1 = std::min(rows, (br + 1) * q.block_rows);
        const int64_t c1 = std::min(cols, (bc + 1) * q.block_cols);
        for (int64_t r = br * q.block_rows; r < r1; ++r) {
          for (int64_t c = bc * q.block_cols; c < c1; ++c) {
            amax = std::max(amax, std::fabs(w[r * cols + c]));
            read_amax = std::max(read_amax, std::fabs(read->data[r * cols + c]));
          }
        }
        // The block's largest value maps to 448 * scale = amax: this pins the scale
        // of every block, partial ones included, to its own block.
        EXPECT_NEAR(read_amax, amax, 1e-6f * amax)
            << spec.name << " block " << br << "," << bc;
        const float scale = amax / 448.0f;
        for (int64_t r = br * q.block_rows; r < r1; ++r) {
          for (int64_t c = bc * q.block_cols; c < c1; ++c) {
            const float x = w[r * cols + c];
            // e4m3: 3 mantissa bits (relative error <= 2^-4); subnormals 2^-9 * scale.
            const float bound = 0x1p-4f * std::fabs(x) + 0x1p-10f * scale + 1e-9f;
            ASSERT_LE(std::fabs(read->data[r * cols + c] - x), bound)
                << spec.name << "[" << r << "," << c << "]";
          }
        }
      }
    }
  }
  EXPECT_GE(checked, 12);
}

TEST(RandomCheckpointTest, TamperedCheckpointsFailNamingTheTensor) {
  const std::string bf16 = Write(SmallV3(), "small_bf16");
  ASSERT_TRUE(ValidateDir(bf16).ok());
  RandomCheckpointOptions fp8_options;
  fp8_options.dtype = RandomWeightDType::kFP8;
  const std::string fp8 = Write(SmallV3(), "small_fp8", fp8_options);
  ASSERT_TRUE(ValidateDir(fp8).ok());

  const std::string wrong_shape = Tamper(bf16, "wrong_shape", [](auto& tensors) {
    for (OwnedTensor& t : tensors) {
      if (t.decl.name == "model.layers.2.mlp.gate.weight") {
        t.decl.shape = {8, 192};
        t.bytes.resize(t.decl.nbytes());
      }
    }
  });
  EXPECT_THAT(ValidateDir(wrong_shape).message(),
              HasSubstr("model.safetensors: tensor model.layers.2.mlp.gate.weight: "
                        "shape [8,192], expected [16,192]"));

  const std::string missing = Tamper(bf16, "missing", [](auto& tensors) {
    Erase(tensors, "model.layers.1.self_attn.kv_a_layernorm.weight");
  });
  EXPECT_THAT(ValidateDir(missing).message(),
              HasSubstr("tensor model.layers.1.self_attn.kv_a_layernorm.weight: missing "
                        "(expected BF16 [64])"));

  const std::string no_scale = Tamper(fp8, "no_scale", [](auto& tensors) {
    Erase(tensors, "model.layers.3.self_attn.o_proj.weight_scale_inv");
  });
  EXPECT_THAT(
      ValidateDir(no_scale).message(),
      HasSubstr("tensor model.layers.3.self_attn.o_proj.weight_scale_inv: missing"));

  const std::string bf16_bias = Tamper(bf16, "bf16_bias", [](auto& tensors) {
    for (OwnedTensor& t : tensors) {
      if (t.decl.name == "model.layers.1.mlp.gate.e_score_correction_bias") {
        t.decl.dtype = DType::kBF16;
        t.bytes.resize(t.decl.nbytes());
      }
    }
  });
  EXPECT_THAT(ValidateDir(bf16_bias).message(),
              HasSubstr("tensor model.layers.1.mlp.gate.e_score_correction_bias: dtype "
                        "BF16, expected F32"));

  const std::string fp8_norm = Tamper(fp8, "fp8_norm", [](auto& tensors) {
    for (OwnedTensor& t : tensors) {
      if (t.decl.name == "model.norm.weight") {
        t.decl.dtype = DType::kF8E4M3;
        t.bytes.resize(t.decl.nbytes());
      }
    }
  });
  EXPECT_THAT(ValidateDir(fp8_norm).message(),
              HasSubstr("tensor model.norm.weight: dtype F8_E4M3"));

  // Extra tensors are allowed and reported.
  const std::string extra = Tamper(bf16, "extra", [](auto& tensors) {
    tensors.push_back(
        {{"model.rotary_emb.inv_freq", DType::kF32, {4}}, std::vector<uint8_t>(16, 0)});
  });
  absl::StatusOr<ModelConfig> config = LoadModelConfig(extra);
  ASSERT_TRUE(config.ok());
  absl::StatusOr<ValidationReport> report = OpenOrDie(extra)->Validate(*config);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->unexpected_tensors,
              ::testing::ElementsAre("model.rotary_emb.inv_freq"));
}

TEST(RandomCheckpointTest, SameSeedSameBytesAcrossSharding) {
  RandomCheckpointOptions fp8;
  fp8.dtype = RandomWeightDType::kFP8;
  const std::string a = Write(SmallV3(), "det_a", fp8);
  const std::string b = Write(SmallV3(), "det_b", fp8);
  EXPECT_EQ(ReadBytes(a + "/model.safetensors"), ReadBytes(b + "/model.safetensors"));
  EXPECT_EQ(ReadBytes(a + "/config.json"), ReadBytes(b + "/config.json"));

  RandomCheckpointOptions other_seed = fp8;
  other_seed.seed = 7;
  const std::string c = Write(SmallV3(), "det_c", other_seed);
  EXPECT_NE(ReadBytes(a + "/model.safetensors"), ReadBytes(c + "/model.safetensors"));

  RandomCheckpointOptions sharded = fp8;
  sharded.max_shard_bytes = 300'000;
  const std::string d = Write(SmallV3(), "det_sharded", sharded);
  std::unique_ptr<Checkpoint> single_ckpt = OpenOrDie(a);
  std::unique_ptr<Checkpoint> sharded_ckpt = OpenOrDie(d);
  EXPECT_GT(sharded_ckpt->num_files(), 5);
  ASSERT_EQ(single_ckpt->TensorNames(), sharded_ckpt->TensorNames());
  for (const std::string& name : single_ckpt->TensorNames()) {
    const TensorView* x = single_ckpt->Find(name);
    const TensorView* y = sharded_ckpt->Find(name);
    ASSERT_EQ(x->dtype, y->dtype) << name;
    ASSERT_EQ(x->shape, y->shape) << name;
    ASSERT_EQ(std::memcmp(x->data, y->data, x->nbytes), 0) << name;
  }
  absl::StatusOr<ModelConfig> config = LoadModelConfig(d);
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(sharded_ckpt->Validate(*config).ok());
}

TEST(RandomCheckpointTest, RefusesNonEmptyDirUnlessOverwrite) {
  RandomCheckpointOptions sharded;
  sharded.max_shard_bytes = 1'000'000;
  const std::string dir = Write(SmallV3(), "overwrite", sharded);
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));

  const absl::Status refused = WriteRandomCheckpoint(SmallV3(), dir, {});
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--force"));

  const std::string keep = dir + "/notes.txt";
  testing::WriteBytes(keep, "mine");
  RandomCheckpointOptions overwrite;
  overwrite.overwrite = true;
  ASSERT_TRUE(WriteRandomCheckpoint(SmallV3(), dir, overwrite).ok());
  // The old shards and index are gone, so the directory is one consistent checkpoint.
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir + "/model-00001-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(keep));
  EXPECT_TRUE(ValidateDir(dir).ok());
}

TEST(RandomCheckpointTest, CopiesTokenizer) {
  const std::string tok = ScratchDir("tokenizer_src");
  testing::WriteBytes(tok + "/tokenizer.json", "{\"model\":{}}");
  testing::WriteBytes(tok + "/tokenizer_config.json", "{}");
  RandomCheckpointOptions options;
  options.tokenizer_dir = tok;
  const std::string dir = Write(SmallV3(), "with_tokenizer", options);
  EXPECT_EQ(ReadBytes(dir + "/tokenizer.json"), "{\"model\":{}}");
  EXPECT_EQ(ReadBytes(dir + "/tokenizer_config.json"), "{}");

  options.tokenizer_dir = ScratchDir("no_tokenizer");
  const std::string out = ScratchDir("tok_missing");
  EXPECT_EQ(WriteRandomCheckpoint(SmallV3(), out, options).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(out));  // refused before writing anything
}

TEST(RandomCheckpointTest, TinyV2Validates) {
  ModelConfig v2 = *PresetConfig("tiny-v2");
  v2.vocab_size = 300;
  EXPECT_TRUE(ValidateDir(Write(v2, "tiny_v2_bf16")).ok());
  RandomCheckpointOptions fp8;
  fp8.dtype = RandomWeightDType::kFP8;
  EXPECT_TRUE(ValidateDir(Write(v2, "tiny_v2_fp8", fp8)).ok());
}

}  // namespace
}  // namespace yard::model
