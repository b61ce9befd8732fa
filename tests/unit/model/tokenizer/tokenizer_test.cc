// Hand-checkable behaviour of the tokenizer on testdata/tiny_tokenizer.json, a
// 26-token byte-level BPE whose merges and added tokens are chosen so that each
// test's ids can be worked out on paper.
#include "model/tokenizer/tokenizer.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model/tokenizer/test_files.h"

namespace yard::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::unique_ptr<Tokenizer> LoadTiny() {
  const std::string dir = testing::kTestDataDir;
  auto tokenizer = Tokenizer::FromJson(testing::ReadTestFile(dir + "/tiny_tokenizer.json"),
                                       testing::ReadTestFile(dir + "/tiny_tokenizer_config.json"));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

class TinyTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = LoadTiny();
    ASSERT_NE(tokenizer_, nullptr);
  }

  std::vector<TokenId> Encode(const std::string& text) {
    auto ids = tokenizer_->Encode(text, /*add_special_tokens=*/false);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<TokenId>{};
  }

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(TinyTokenizerTest, MergesLowestRankFirst) {
  EXPECT_THAT(Encode("abc"), ElementsAre(11));  // a b c -> ab c -> abc
  // (a,b) outranks (b,c): b c ab -> bc ab; then no merge joins them.
  EXPECT_THAT(Encode("bcab"), ElementsAre(10, 9));
  // (a,b) outranks (Ġ,a), so "Ġa" never forms and "Ġa b" never applies.
  EXPECT_THAT(Encode(" ab"), ElementsAre(4, 9));
  // Equal ranks merge leftmost first: aa a.
  EXPECT_THAT(Encode("aaa"), ElementsAre(14, 0));
  EXPECT_THAT(Encode(" a"), ElementsAre(12));
}

TEST_F(TinyTokenizerTest, PreTokenizerSplitsDigitsAndWhitespace) {
  EXPECT_THAT(Encode("123123"), ElementsAre(16, 16));  // \p{N}{1,3}: 123 | 123
  EXPECT_THAT(Encode("12"), ElementsAre(15));
  EXPECT_THAT(Encode("a\nb"), ElementsAre(0, 5, 1));
  // "a", "  " (\s+), "b": the space before b is not taken by " ?\p{L}+"
  // because \s+ matched both spaces first.
  EXPECT_THAT(Encode("a  b"), ElementsAre(0, 4, 4, 1));
  EXPECT_THAT(Encode(""), IsEmpty());
}

TEST_F(TinyTokenizerTest, ArrayFormMergesWork) {
  EXPECT_THAT(Encode("é"), ElementsAre(19));  // C3 A9 -> "Ã" "©" -> "Ã©"
}

TEST_F(TinyTokenizerTest, BytesMissingFromVocabAreDroppedAsInHf) {
  EXPECT_THAT(Encode("4"), IsEmpty());
  EXPECT_THAT(Encode("a4b"), ElementsAre(0, 1));
}

TEST_F(TinyTokenizerTest, AddedTokensMatchLongestFirst) {
  EXPECT_THAT(Encode("a<us>b<usr>"), ElementsAre(0, 102, 1, 103));
  EXPECT_THAT(Encode("<s>abc</s>"), ElementsAre(100, 11, 101));
  // "<us" is not a token: plain text.
  EXPECT_THAT(Encode("<us"), ElementsAre(20, 23, 22));
}

TEST_F(TinyTokenizerTest, AddedTokenStripFlags) {
  // lstrip swallows the spaces before "[L]".
  EXPECT_THAT(Encode("a  [L]b"), ElementsAre(0, 104, 1));
  // rstrip swallows the spaces after "[R]".
  EXPECT_THAT(Encode("[R]  a"), ElementsAre(105, 0));
  // single_word: only where no word character touches it.
  EXPECT_THAT(Encode("dd"), ElementsAre(106));
  EXPECT_THAT(Encode(" dd "), ElementsAre(4, 106, 4));
  EXPECT_THAT(Encode("add"), ElementsAre(0, 3, 3));
  EXPECT_THAT(Encode("dd1"), ElementsAre(3, 3, 6));
}

TEST_F(TinyTokenizerTest, AddSpecialTokensFollowsConfig) {
  auto ids = tokenizer_->Encode("ab");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(100, 9, 101));
  ids = tokenizer_->Encode("");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(100, 101));
}

TEST_F(TinyTokenizerTest, SplitSpecialTokensEncodesThemAsText) {
  EncodeOptions options;
  options.add_special_tokens = false;
  options.split_special_tokens = true;
  auto ids = tokenizer_->Encode("<s><us>", options);
  ASSERT_TRUE(ids.ok());
  // "<s>" (special) becomes < s >; "<us>" (not special) stays a token.
  EXPECT_THAT(*ids, ElementsAre(20, 22, 21, 102));
}

TEST_F(TinyTokenizerTest, RejectsInvalidUtf8) {
  for (const std::string bad : {"a\xff"
                                "b",
                                "\xc3", "\xed\xa0\x80", "\xc0\xaf"}) {
    auto ids = tokenizer_->Encode(bad);
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ids.status().message(), HasSubstr("not valid UTF-8"));
  }
  EXPECT_THAT(tokenizer_->Encode("a\xff").status().message(), HasSubstr("byte 1"));
}

TEST_F(TinyTokenizerTest, Decode) {
  EXPECT_EQ(tokenizer_->Decode({11, 4, 12}), "abc  a");
  EXPECT_EQ(tokenizer_->Decode({100, 0, 102, 101}), "<s>a<us></s>");
  EXPECT_EQ(tokenizer_->Decode({100, 0, 102, 101}, /*skip_special_tokens=*/true), "a<us>");
  // Ids without a token (a hole, past the end, negative) decode to nothing.
  EXPECT_EQ(tokenizer_->Decode({50, 0, 100000, -1}), "a");
  // A lone lead byte is an incomplete character: U+FFFD, as HF's lossy decode.
  EXPECT_EQ(tokenizer_->Decode({17}), "\uFFFD");
  EXPECT_EQ(tokenizer_->Decode({17, 0}), "\uFFFDa");
  EXPECT_EQ(tokenizer_->Decode({17, 18}), "é");
}

TEST_F(TinyTokenizerTest, StreamDecoderHoldsIncompleteCharacters) {
  StreamDecoder stream(*tokenizer_);
  EXPECT_EQ(stream.Next(0), "a");
  EXPECT_EQ(stream.Next(17), "");  // C3: first byte of é
  EXPECT_EQ(stream.Next(18), "é");
  EXPECT_EQ(stream.Flush(), "");
  EXPECT_EQ(stream.Next(17), "");
  EXPECT_EQ(stream.Flush(), "\uFFFD");  // the stream ended inside a character
  EXPECT_EQ(stream.Next(17), "");
  EXPECT_EQ(stream.Next(0), "\uFFFDa");  // C3 then 'a' can never complete
}

TEST_F(TinyTokenizerTest, StreamDecoderSkipsSpecialTokens) {
  StreamDecoder stream(*tokenizer_, /*skip_special_tokens=*/true);
  EXPECT_EQ(stream.Next(100), "");
  EXPECT_EQ(stream.Next(11), "abc");
  EXPECT_EQ(stream.Next(101), "");
  EXPECT_EQ(stream.Flush(), "");
}

TEST_F(TinyTokenizerTest, Vocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), 107);
  EXPECT_EQ(tokenizer_->IdToToken(13), "Ġab");
  EXPECT_EQ(tokenizer_->IdToToken(103), "<usr>");
  EXPECT_EQ(tokenizer_->IdToToken(50), std::nullopt);
  EXPECT_EQ(tokenizer_->IdToToken(107), std::nullopt);
  EXPECT_EQ(tokenizer_->TokenToId("Ġab"), 13);
  EXPECT_EQ(tokenizer_->TokenToId("<usr>"), 103);
  EXPECT_EQ(tokenizer_->TokenToId("zzz"), std::nullopt);
  EXPECT_EQ(tokenizer_->bos_id(), 100);
  EXPECT_EQ(tokenizer_->eos_id(), 101);
  EXPECT_TRUE(tokenizer_->IsSpecial(100));
  EXPECT_FALSE(tokenizer_->IsSpecial(102));
  EXPECT_FALSE(tokenizer_->IsSpecial(0));
  EXPECT_EQ(tokenizer_->added_tokens().size(), 7u);
}

TEST(TokenizerLoadTest, MissingDirectoryIsNotFound) {
  auto tokenizer = Tokenizer::Load("/nonexistent/tokenizer/dir");
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("tokenizer.json"));
}

TEST(TokenizerLoadTest, EmptyConfigMeansNoBosOrEos) {
  auto tokenizer = Tokenizer::FromJson(
      testing::ReadTestFile(std::string(testing::kTestDataDir) + "/tiny_tokenizer.json"), "{}");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->bos_id(), std::nullopt);
  auto ids = (*tokenizer)->Encode("ab");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(9));
}

}  // namespace
}  // namespace yard::model
