// tools/tokenize end to end: JSON lines in, ids out, one output line per input line,
// malformed lines answered with an error line while the rest still work.
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/util/run_binary.h"

namespace yard::tools {
namespace {

using ::testing::HasSubstr;
using ::yard::testing::RunBinary;

constexpr char kTokenizerDir[] = "data/tokenizers/deepseek-v3";
const std::string kTool =
    std::string("tools/tokenize/tokenize --tokenizer=") + kTokenizerDir;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream s(text);
  for (std::string line; std::getline(s, line);) lines.push_back(line);
  return lines;
}

class TokenizeToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = model::Tokenizer::Load(kTokenizerDir);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status() << " (run ./yard setup)";
    tokenizer_ = std::move(*tokenizer);
  }
  std::unique_ptr<model::Tokenizer> tokenizer_;
};

TEST_F(TokenizeToolTest, EncodesEachLineLikeTheLibrary) {
  const std::vector<std::string> texts = {"Hello, world!", "数字 12345 and emoji 🚀",
                                          "  spaces\n\tand tabs", ""};
  std::string input;
  for (const std::string& t : texts) input += nlohmann::json{{"text", t}}.dump() + "\n";
  testing::RunResult r = RunBinary(kTool, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    nlohmann::json got = nlohmann::json::parse(lines[i]);
    std::vector<model::TokenId> expected = *tokenizer_->Encode(texts[i]);
    EXPECT_EQ(got["ids"].get<std::vector<model::TokenId>>(), expected) << texts[i];
    EXPECT_EQ(expected.front(), *tokenizer_->bos_id());
  }
}

TEST_F(TokenizeToolTest, MalformedLinesGetErrorsAndTheRestIsServed) {
  const std::string input =
      "not json\n"
      "{\"text\": 5}\n"
      "[1, 2]\n"
      "{\"other\": \"x\"}\n"
      "{\"text\": \"ok\"}\n";
  testing::RunResult r = RunBinary(kTool, input);
  EXPECT_EQ(r.exit_code, 1);  // some line failed
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  for (int i = 0; i < 4; ++i) {
    nlohmann::json line = nlohmann::json::parse(lines[i]);
    EXPECT_TRUE(line.contains("error")) << lines[i];
    EXPECT_THAT(line["error"].get<std::string>(), HasSubstr("line " + std::to_string(i + 1)));
  }
  nlohmann::json last = nlohmann::json::parse(lines[4]);
  EXPECT_EQ(last["ids"].get<std::vector<model::TokenId>>(), *tokenizer_->Encode("ok"));
}

TEST_F(TokenizeToolTest, HelpDocumentsEveryFlag) {
  testing::RunResult r = RunBinary("tools/tokenize/tokenize --help");
  for (const char* flag : {"tokenizer", "add_special_tokens", "split_special_tokens",
                           "decode", "skip_special_tokens"}) {
    EXPECT_THAT(r.out + r.err, HasSubstr(flag));
  }
}

TEST_F(TokenizeToolTest, MissingTokenizerDirectoryIsAClearError) {
  testing::RunResult r = RunBinary("tools/tokenize/tokenize --tokenizer=/nonexistent", "");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("/nonexistent"));
}

}  // namespace
}  // namespace yard::tools
