#include "model/checkpoint/safetensors.h"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model/checkpoint/test_util.h"

namespace yard::model {
namespace {

using ::testing::HasSubstr;
using ::yard::model::testing::FileImage;
using ::yard::model::testing::ReadBytes;
using ::yard::model::testing::ScratchDir;
using ::yard::model::testing::WriteBytes;

std::vector<uint8_t> Pattern(size_t n, int salt) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 31 + salt);
  return out;
}

OwnedTensor Tensor(std::string name, DType dtype, std::vector<int64_t> shape, int salt) {
  OwnedTensor t{{std::move(name), dtype, std::move(shape)}, {}};
  t.bytes = Pattern(t.decl.nbytes(), salt);
  return t;
}

TEST(SafetensorsTest, RoundTrip) {
  const std::string path = ScratchDir("roundtrip") + "/t.safetensors";
  const std::vector<OwnedTensor> tensors = {
      Tensor("w.bf16", DType::kBF16, {3, 5}, 1),
      Tensor("w.f16", DType::kF16, {7}, 2),
      Tensor("a.f32", DType::kF32, {2, 2, 3}, 3),
      Tensor("w.fp8", DType::kF8E4M3, {5, 3}, 4),  // 15 bytes: the next one is unaligned
      Tensor("scalar", DType::kF32, {}, 5),
      Tensor("empty", DType::kBF16, {0, 4}, 6),
  };
  ASSERT_TRUE(WriteSafetensorsFile(path, tensors, {{"format", "pt"}, {"k", "v"}}).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->metadata().at("k"), "v");
  ASSERT_EQ((*file)->tensors().size(), tensors.size());
  EXPECT_EQ((*file)->tensors()[0].name, "a.f32");  // sorted by name
  for (const OwnedTensor& t : tensors) {
    const TensorView* view = (*file)->Find(t.decl.name);
    ASSERT_NE(view, nullptr) << t.decl.name;
    EXPECT_EQ(view->dtype, t.decl.dtype);
    EXPECT_EQ(view->shape, t.decl.shape);
    ASSERT_EQ(view->nbytes, t.bytes.size());
    EXPECT_EQ(std::memcmp(view->data, t.bytes.data(), t.bytes.size()), 0) << t.decl.name;
  }
  EXPECT_EQ((*file)->Find("absent"), nullptr);

  // The data area starts 8-byte aligned, as Hugging Face pads it.
  const std::string bytes = ReadBytes(path);
  absl::StatusOr<SafetensorsHeader> header = ParseSafetensorsHeader(bytes, bytes.size());
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->data_start % 8, 0u);
}

TEST(SafetensorsTest, WriterChecksDeclarations) {
  const std::string dir = ScratchDir("writer");
  EXPECT_EQ(SafetensorsWriter::Create(dir + "/a",
                                      {{"x", DType::kF32, {1}}, {"x", DType::kF32, {2}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SafetensorsWriter::Create(dir + "/b", {{"x", DType::kF32, {-1}}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsWriter::Create(dir + "/c", {{"__metadata__", DType::kF32, {1}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::unique_ptr<SafetensorsWriter>> w =
      SafetensorsWriter::Create(dir + "/d", {{"x", DType::kF32, {2}}});
  ASSERT_TRUE(w.ok());
  const float values[3] = {1, 2, 3};
  EXPECT_EQ((*w)->Append(values, 12).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*w)->Append(values, 4).ok());
  EXPECT_EQ((*w)->Finish().code(), absl::StatusCode::kFailedPrecondition);
  w->reset();
  // An unfinished writer leaves nothing behind.
  EXPECT_FALSE(std::filesystem::exists(dir + "/d"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/d.tmp"));
}

// Each malformed header is rejected with InvalidArgument mentioning `needle`.
struct MalformedCase {
  const char* label;
  std::string image;
  const char* needle;
};

std::vector<MalformedCase> MalformedCases() {
  const std::string data16(16, '\0');
  return {
      {"empty file", "", "too short"},
      {"short length", std::string(5, '\0'), "too short"},
      {"header past end", FileImage("{}", "", 100), "past the end"},
      {"huge header length", FileImage("{}", "", int64_t{1} << 62), "exceeds the limit"},
      {"truncated header", FileImage(R"({"x":{"dtype":"F32")", "", 40), "past the end"},
      {"bad json", FileImage(R"({"x": {"dtype": "F32",)"), "well-formed"},
      {"not utf8", FileImage("{\"\xff\xfe\":{}}"), "well-formed"},
      {"array header", FileImage(R"([1,2,3])"), "not a JSON object"},
      {"string header", FileImage(R"("hello")"), "not a JSON object"},
      {"tiny header", FileImage(" "), "not a JSON object"},
      {"tensor not object", FileImage(R"({"x": 3})"), "tensor x"},
      {"unknown dtype",
       FileImage(R"({"x":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", data16),
       "unsupported dtype \"I64\""},
      {"missing dtype", FileImage(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", data16),
       "dtype"},
      {"missing shape",
       FileImage(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", data16), "shape"},
      {"offsets past end",
       FileImage(R"({"x":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", data16),
       "outside the data area"},
      {"offsets reversed",
       FileImage(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", data16),
       "outside the data area"},
      {"offsets arity",
       FileImage(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data16),
       "data_offsets"},
      {"negative offset",
       FileImage(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", data16),
       "non-negative"},
      {"size mismatch",
       FileImage(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data16),
       "needs 12"},
      {"negative shape",
       FileImage(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data16),
       "non-negative integers"},
      {"fractional shape",
       FileImage(R"({"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data16),
       "non-negative integers"},
      {"overflowing shape",
       FileImage(
           R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
           data16),
       "overflows"},
      {"huge dim",
       FileImage(
           R"({"x":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})",
           data16),
       "non-negative integers"},
      {"overlap",
       FileImage(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 data16),
       "overlaps"},
      {"metadata not object", FileImage(R"({"__metadata__": [1]})"), "__metadata__"},
      {"metadata not strings", FileImage(R"({"__metadata__": {"a": 1}})"),
       "__metadata__.a"},
      {"deep nesting", FileImage(std::string(5000, '[') + std::string(5000, ']')),
       "nests too deeply"},
  };
}

TEST(SafetensorsTest, MalformedHeadersAreRejected) {
  for (const MalformedCase& c : MalformedCases()) {
    absl::StatusOr<SafetensorsHeader> header =
        ParseSafetensorsHeader(c.image, c.image.size());
    ASSERT_FALSE(header.ok()) << c.label;
    EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
    EXPECT_THAT(header.status().message(), HasSubstr(c.needle)) << c.label;
  }
}

TEST(SafetensorsTest, MalformedFilesAreRejectedNamingTheFile) {
  const std::string dir = ScratchDir("malformed");
  int i = 0;
  for (const MalformedCase& c : MalformedCases()) {
    const std::string path = dir + "/case" + std::to_string(i++) + ".safetensors";
    WriteBytes(path, c.image);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << c.label;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
    EXPECT_THAT(file.status().message(), HasSubstr(path)) << c.label;
    EXPECT_THAT(file.status().message(), HasSubstr(c.needle)) << c.label;
  }
}

TEST(SafetensorsTest, TruncatedDataIsRejected) {
  const std::string path = ScratchDir("truncated") + "/t.safetensors";
  ASSERT_TRUE(WriteSafetensorsFile(path, {Tensor("w", DType::kBF16, {64, 64}, 1)}).ok());
  std::string bytes = ReadBytes(path);
  bytes.resize(bytes.size() - 1);
  WriteBytes(path, bytes);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("tensor w"));
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(
      SafetensorsFile::Open(ScratchDir("missing") + "/nope.safetensors").status().code(),
      absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, HeaderParserNeedsOnlyThePrefix) {
  const std::string image =
      FileImage(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  // The data is not given, but the file size says it is there.
  absl::StatusOr<SafetensorsHeader> header =
      ParseSafetensorsHeader(image, image.size() + 16);
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->tensors.size(), 1u);
  EXPECT_EQ(header->tensors[0].shape, std::vector<int64_t>{4});
  EXPECT_EQ(header->data_start, image.size());
}

}  // namespace
}  // namespace yard::model
