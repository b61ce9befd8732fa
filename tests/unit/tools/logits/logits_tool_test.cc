// tools/logits: token-list parsing, the float32 file, and the binary end to end
// against the reference forward in-process.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/presets.h"
#include "tests/util/run_binary.h"
#include "tools/logits/logits_lib.h"
#include "tools/make_model/random_checkpoint.h"

namespace yard::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) { return ::yard::testing::ReadWholeFile(path); }

std::string TmpDir() { return ::yard::testing::TestTmpDir(); }

TEST(ParseTokenListTest, Valid) {
  EXPECT_THAT(*ParseTokenList("0,17,42"), ElementsAre(0, 17, 42));
  EXPECT_THAT(*ParseTokenList(" 5 , 2147483647"), ElementsAre(5, 2147483647));
}

TEST(ParseTokenListTest, Malformed) {
  for (const char* bad : {"", " ", "1,,2", "1,", "x", "1,2a", "-1", "2147483648", "1.5",
                          "0x10"}) {
    absl::StatusOr<std::vector<int32_t>> r = ParseTokenList(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
  }
  EXPECT_THAT(ParseTokenList("1,abc").status().message(), HasSubstr("token 1 ('abc')"));
}

TEST(WriteFloat32FileTest, LittleEndianBytes) {
  const std::string path = TmpDir() + "/floats.bin";
  ASSERT_TRUE(WriteFloat32File(path, {1.0f, -2.5f}).ok());
  const std::string bytes = ReadFile(path);
  // 1.0f = 0x3F800000, -2.5f = 0xC0200000, least significant byte first.
  EXPECT_EQ(bytes, std::string("\x00\x00\x80\x3F\x00\x00\x20\xC0", 8));
}

TEST(LogitsBinaryTest, WritesTheReferenceLastLogits) {
  const std::string model = TmpDir() + "/tiny_v2";
  model::RandomCheckpointOptions options;
  options.progress = model::ProgressMode::kNever;
  ASSERT_TRUE(
      model::WriteRandomCheckpoint(*model::PresetConfig("tiny-v2"), model, options).ok());

  const std::string out = TmpDir() + "/logits.bin";
  const std::string log = TmpDir() + "/logits.log";
  const std::string binary = "tools/logits/logits --engine=reference";
  int rc = std::system((binary + " --model=" + model + " --tokens=0,17,42 --out=" + out +
                        " 2>" + log)
                           .c_str());
  ASSERT_EQ(rc, 0) << ReadFile(log);

  absl::StatusOr<std::vector<float>> expected = ReferenceLastLogits(model, {0, 17, 42});
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(expected->size(), 129280u);
  const std::string bytes = ReadFile(out);
  ASSERT_EQ(bytes.size(), expected->size() * 4);
  EXPECT_EQ(std::memcmp(bytes.data(), expected->data(), bytes.size()), 0);

  // Bad input: clear errors and a failing exit code.
  rc = std::system((binary + " --model=" + model + " --tokens=0,x --out=" + out + " 2>" + log)
                       .c_str());
  EXPECT_NE(rc, 0);
  EXPECT_THAT(ReadFile(log), HasSubstr("--tokens: token 1 ('x')"));
  rc = std::system((binary + " --model=" + model + " --tokens=0,129280 --out=" + out +
                    " 2>" + log)
                       .c_str());
  EXPECT_NE(rc, 0);
  EXPECT_THAT(ReadFile(log), HasSubstr("token id 129280 is outside the vocabulary"));
  rc = std::system((binary + " --model=" + TmpDir() + "/nope --tokens=1 --out=" + out +
                    " 2>" + log)
                       .c_str());
  EXPECT_NE(rc, 0);
  EXPECT_THAT(ReadFile(log), HasSubstr("config.json"));
}

TEST(LogitsBinaryTest, HelpDocumentsEveryFlag) {
  const std::string log = TmpDir() + "/help.log";
  // Abseil exits non-zero after --help; only the text matters.
  const int rc = std::system(("tools/logits/logits --help >" + log + " 2>&1").c_str());
  EXPECT_NE(rc, -1);
  const std::string help = ReadFile(log);
  EXPECT_THAT(help, HasSubstr("--model"));
  EXPECT_THAT(help, HasSubstr("--tokens"));
  EXPECT_THAT(help, HasSubstr("--out"));
  EXPECT_THAT(help, HasSubstr("little-endian"));
}

TEST(LogitsBinaryTest, FastEngineWritesTheFastModelLogits) {
  const std::string model = TmpDir() + "/tiny_v3_fast";
  model::RandomCheckpointOptions options;
  options.progress = model::ProgressMode::kNever;
  ASSERT_TRUE(
      model::WriteRandomCheckpoint(*model::PresetConfig("tiny-v3"), model, options).ok());
  const std::string out = TmpDir() + "/fast_logits.bin";
  const std::string log = TmpDir() + "/fast_logits.log";
  const int rc = std::system(("tools/logits/logits --engine=fast --deterministic --model=" +
                              model + " --tokens=0,17,42,9000 --out=" + out + " 2>" + log)
                                 .c_str());
  ASSERT_EQ(rc, 0) << ReadFile(log);
  absl::StatusOr<std::vector<float>> fast = FastLastLogits(model, {0, 17, 42, 9000}, true);
  ASSERT_TRUE(fast.ok()) << fast.status();
  const std::string bytes = ReadFile(out);
  ASSERT_EQ(bytes.size(), fast->size() * 4);
  EXPECT_EQ(std::memcmp(bytes.data(), fast->data(), bytes.size()), 0);
  // And it is the model's: close to the reference (the full comparison is in
  // tests/unit/engine/fast_model_test).
  absl::StatusOr<std::vector<float>> reference = ReferenceLastLogits(model, {0, 17, 42, 9000});
  ASSERT_TRUE(reference.ok());
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < reference->size(); ++i) {
    max_abs = std::max(max_abs, double(std::fabs((*reference)[i])));
    max_diff = std::max(max_diff, double(std::fabs((*reference)[i] - (*fast)[i])));
  }
  EXPECT_LT(max_diff, 0.05 * max_abs);
}

}  // namespace
}  // namespace yard::tools
