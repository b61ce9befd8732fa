#include "model/checkpoint/checkpoint.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint/dtype.h"
#include "model/checkpoint/safetensors.h"
#include "tests/unit/model/checkpoint/test_util.h"

namespace yard::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::yard::model::testing::ScratchDir;
using ::yard::model::testing::WriteBytes;

OwnedTensor F32Tensor(std::string name, std::vector<int64_t> shape,
                      const std::vector<float>& values) {
  OwnedTensor t{{std::move(name), DType::kF32, std::move(shape)}, {}};
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

OwnedTensor Bf16Tensor(std::string name, std::vector<int64_t> shape,
                       const std::vector<float>& values) {
  OwnedTensor t{{std::move(name), DType::kBF16, std::move(shape)}, {}};
  for (float v : values) {
    const uint16_t b = F32ToBf16(v);
    t.bytes.push_back(static_cast<uint8_t>(b & 0xFF));
    t.bytes.push_back(static_cast<uint8_t>(b >> 8));
  }
  return t;
}

OwnedTensor F16Tensor(std::string name, std::vector<int64_t> shape,
                      const std::vector<float>& values) {
  OwnedTensor t{{std::move(name), DType::kF16, std::move(shape)}, {}};
  for (float v : values) {
    const uint16_t h = F32ToF16(v);
    t.bytes.push_back(static_cast<uint8_t>(h & 0xFF));
    t.bytes.push_back(static_cast<uint8_t>(h >> 8));
  }
  return t;
}

// A two-shard checkpoint: "a" and "b" in shard 1, "c" in shard 2, plus an index whose
// weight_map is `weight_map_json` (the consistent one by default).
std::string WriteShardedCheckpoint(
    const std::string& name,
    const std::string& weight_map_json =
        R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
        R"("c":"model-00002-of-00002.safetensors"})") {
  const std::string dir = ScratchDir(name);
  EXPECT_TRUE(WriteSafetensorsFile(dir + "/model-00001-of-00002.safetensors",
                                   {F32Tensor("a", {2, 2}, {1, 2, 3, 4}),
                                    Bf16Tensor("b", {3}, {0.5f, -1.0f, 3.0f})})
                  .ok());
  EXPECT_TRUE(WriteSafetensorsFile(dir + "/model-00002-of-00002.safetensors",
                                   {F16Tensor("c", {1, 2}, {0.25f, 65504.0f})})
                  .ok());
  WriteBytes(dir + "/model.safetensors.index.json",
             R"({"metadata":{"total_size":28},"weight_map":)" + weight_map_json + "}");
  return dir;
}

TEST(CheckpointTest, OpensShardedCheckpoint) {
  const std::string dir = WriteShardedCheckpoint("sharded");
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->num_files(), 2);
  EXPECT_THAT((*ckpt)->TensorNames(), ElementsAre("a", "b", "c"));
  EXPECT_EQ((*ckpt)->FileOf("c"), "model-00002-of-00002.safetensors");
  ASSERT_NE((*ckpt)->Find("b"), nullptr);
  EXPECT_EQ((*ckpt)->Find("b")->dtype, DType::kBF16);
  EXPECT_EQ((*ckpt)->Find("zz"), nullptr);

  absl::StatusOr<Fp32Tensor> a = (*ckpt)->ReadFp32("a");
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(a->shape, ElementsAre(2, 2));
  EXPECT_THAT(a->data, ElementsAre(1, 2, 3, 4));
  absl::StatusOr<Fp32Tensor> b = (*ckpt)->ReadFp32("b");
  ASSERT_TRUE(b.ok());
  EXPECT_THAT(b->data, ElementsAre(0.5f, -1.0f, 3.0f));
  absl::StatusOr<Fp32Tensor> c = (*ckpt)->ReadFp32("c");
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->data, ElementsAre(0.25f, 65504.0f));
  EXPECT_EQ((*ckpt)->ReadFp32("zz").status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, SingleFileIsPreferred) {
  const std::string dir = WriteShardedCheckpoint("single_preferred");
  ASSERT_TRUE(
      WriteSafetensorsFile(dir + "/model.safetensors", {F32Tensor("only", {1}, {7})})
          .ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_THAT((*ckpt)->TensorNames(), ElementsAre("only"));
}

TEST(CheckpointTest, EmptyDirIsNotFound) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(ScratchDir("empty"));
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("model.safetensors.index.json"));
}

TEST(CheckpointTest, MissingShard) {
  const std::string dir = WriteShardedCheckpoint(
      "missing_shard",
      R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
      R"("c":"model-00002-of-00002.safetensors","d":"model-00003-of-00003.safetensors"})");
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("model-00003-of-00003.safetensors"));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("missing"));
}

TEST(CheckpointTest, DanglingTensorInIndex) {
  const std::string dir = WriteShardedCheckpoint(
      "dangling",
      R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
      R"("c":"model-00002-of-00002.safetensors","ghost":"model-00002-of-00002.safetensors"})");
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ckpt.status().message(),
              HasSubstr("model-00002-of-00002.safetensors: tensor ghost"));
}

TEST(CheckpointTest, TensorInWrongShard) {
  const std::string dir = WriteShardedCheckpoint(
      "wrong_shard",
      R"({"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors",)"
      R"("c":"model-00002-of-00002.safetensors"})");
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("tensor b"));
}

TEST(CheckpointTest, TensorMissingFromIndex) {
  const std::string dir = WriteShardedCheckpoint(
      "unlisted",
      R"({"a":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"})");
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("tensor b: not listed"));
}

TEST(CheckpointTest, DuplicateTensorAcrossShards) {
  const std::string dir = WriteShardedCheckpoint("duplicate");
  ASSERT_TRUE(WriteSafetensorsFile(dir + "/model-00002-of-00002.safetensors",
                                   {F16Tensor("c", {1, 2}, {0.25f, 1.0f}),
                                    F32Tensor("a", {2, 2}, {1, 2, 3, 4})})
                  .ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("tensor a: also stored in"));
}

TEST(CheckpointTest, BadIndexFiles) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "well-formed"},
      {"[]", "not a JSON object"},
      {R"({"metadata":{}})", "weight_map"},
      {R"({"weight_map":{}})", "empty"},
      {R"({"weight_map":{"a":3}})", "tensor a"},
      {R"({"weight_map":{"a":"../model-00001-of-00002.safetensors"}})",
       "not a file name"},
      {R"({"weight_map":{"a":"model-00001-of-00002.safetensors"},"metadata":5})",
       "metadata"},
  };
  const std::string dir = WriteShardedCheckpoint("bad_index");
  for (const auto& [index, needle] : cases) {
    WriteBytes(dir + "/model.safetensors.index.json", index);
    absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
    ASSERT_FALSE(ckpt.ok()) << index;
    EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument) << index;
    EXPECT_THAT(ckpt.status().message(), HasSubstr(needle)) << index;
    EXPECT_THAT(ckpt.status().message(), HasSubstr("model.safetensors.index.json"));
  }
}

TEST(CheckpointTest, CorruptShardNamesTheFile) {
  const std::string dir = WriteShardedCheckpoint("corrupt_shard");
  WriteBytes(dir + "/model-00002-of-00002.safetensors", "garbage!garbage!");
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("model-00002-of-00002.safetensors"));
}

// FP8 dequantization uses the scale of each element's own block, partial edge blocks
// included: scales here differ by powers of two per block, so a wrong block index
// gives a wrong (not merely imprecise) value.
TEST(CheckpointTest, Fp8BlockDequantization) {
  const int64_t rows = 130, cols = 260;  // blocks: 2 x 3, the last row/column partial
  OwnedTensor w{{"w.weight", DType::kF8E4M3, {rows, cols}}, {}};
  for (int64_t i = 0; i < rows * cols; ++i) {
    uint8_t code = static_cast<uint8_t>((i * 7919) % 256);
    if ((code & 0x7F) == 0x7F) code = 0x3C;  // no NaNs
    w.bytes.push_back(code);
  }
  std::vector<float> scales;
  for (int i = 0; i < 6; ++i) scales.push_back(std::ldexp(1.0f, i - 2));
  const std::string dir = ScratchDir("fp8");
  ASSERT_TRUE(
      WriteSafetensorsFile(
          dir + "/model.safetensors",
          {w, F32Tensor("w.weight_scale_inv", {2, 3}, scales),
           F32Tensor("v.weight_scale_inv", {1, 1}, {1.0f}),
           OwnedTensor{{"v.weight", DType::kF8E4M3, {4}}, {0x38, 0x38, 0x38, 0x38}},
           OwnedTensor{{"u.weight", DType::kF8E4M3, {2, 2}}, {0x38, 0x38, 0x38, 0x38}}})
          .ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<Fp32Tensor> out = (*ckpt)->ReadFp32("w.weight");
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_THAT(out->shape, ElementsAre(rows, cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float expected =
          Fp8E4M3ToF32(w.bytes[r * cols + c]) * scales[(r / 128) * 3 + c / 128];
      ASSERT_EQ(out->data[r * cols + c], expected) << r << "," << c;
    }
  }
  // A 1-D FP8 tensor has no block layout; a 2-D one without its scale is an error.
  EXPECT_THAT((*ckpt)->ReadFp32("v.weight").status().message(), HasSubstr("not 2-D"));
  EXPECT_THAT((*ckpt)->ReadFp32("u.weight").status().message(),
              HasSubstr("without u.weight_scale_inv"));
  // Blocks of 64 need a [3, 5] scale.
  CheckpointOptions options;
  options.fp8_blocks = {64, 64};
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt64 = Checkpoint::Open(dir, options);
  ASSERT_TRUE(ckpt64.ok());
  EXPECT_THAT((*ckpt64)->ReadFp32("w.weight").status().message(),
              HasSubstr("expected [3,5]"));
}

}  // namespace
}  // namespace yard::model
