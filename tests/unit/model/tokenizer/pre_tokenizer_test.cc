#include "model/tokenizer/pre_tokenizer.h"

#include <deque>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace yard::model {
namespace {

using ::testing::ElementsAre;
using Json = nlohmann::json;

std::vector<std::string> Split(const Json& config, const std::string& text) {
  auto pre = PreTokenizer::FromJson(config, "pre_tokenizer");
  EXPECT_TRUE(pre.ok()) << pre.status();
  if (!pre.ok()) return {};
  std::deque<std::string> arena;
  std::vector<absl::string_view> pieces;
  EXPECT_TRUE((*pre)->Split(text, &arena, &pieces).ok());
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

Json SplitOn(const std::string& regex, const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", behavior},
          {"invert", invert}};
}

// HF's documented example for SplitDelimiterBehavior: "the-final--countdown".
TEST(PreTokenizerTest, SplitBehaviors) {
  const std::string text = "the-final--countdown";
  EXPECT_THAT(Split(SplitOn("-", "Removed"), text), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(Split(SplitOn("-", "Isolated"), text),
              ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(Split(SplitOn("-", "MergedWithPrevious"), text),
              ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(Split(SplitOn("-", "MergedWithNext"), text),
              ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(Split(SplitOn("-", "Contiguous"), text),
              ElementsAre("the", "-", "final", "--", "countdown"));
}

TEST(PreTokenizerTest, InvertKeepsOnlyMatchesWhenRemoved) {
  EXPECT_THAT(Split(SplitOn(R"(\p{L}+)", "Removed", /*invert=*/true), "ab12cd"),
              ElementsAre("ab", "cd"));
}

TEST(PreTokenizerTest, LiteralStringPattern) {
  const Json config = {{"type", "Split"},
                       {"pattern", {{"String", "."}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
  EXPECT_THAT(Split(config, "a.b"), ElementsAre("a", ".", "b"));  // '.' is not a wildcard
}

TEST(PreTokenizerTest, EmptyMatchesProduceNoPieces) {
  EXPECT_THAT(Split(SplitOn("x*", "Isolated"), "abxc"), ElementsAre("ab", "x", "c"));
}

TEST(PreTokenizerTest, StagesApplySuccessivelyAndLookAheadStaysInsidePieces) {
  // After the digit split, "\s+(?!\S)" sees "  " at the end of the piece "a  "
  // with nothing after it, so it takes both spaces.
  const Json config = {
      {"type", "Sequence"},
      {"pretokenizers",
       {SplitOn(R"(\p{N}+)", "Isolated"), SplitOn(R"( ?\p{L}+|\s+(?!\S)|\s+)", "Isolated")}}};
  EXPECT_THAT(Split(config, "a  1 b"), ElementsAre("a", "  ", "1", " b"));
}

TEST(PreTokenizerTest, ByteLevelPrefixSpaceAndRegex) {
  const Json prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  EXPECT_THAT(Split(prefix, "hi there"), ElementsAre(" hi there"));
  EXPECT_THAT(Split(prefix, " hi"), ElementsAre(" hi"));
  const Json gpt2 = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_THAT(Split(gpt2, "I'm 42  ok"), ElementsAre("I", "'m", " 42", " ", " ok"));
}

TEST(PreTokenizerTest, NullMeansNoSplit) {
  EXPECT_THAT(Split(Json(nullptr), "a b"), ElementsAre("a b"));
}

}  // namespace
}  // namespace yard::model
