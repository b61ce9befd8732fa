#include "model/tokenizer/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace yard::model::utf8 {
namespace {

std::string Lossy(const std::string& s) {
  std::string out;
  AppendLossy(s, /*final=*/true, &out);
  return out;
}

TEST(Utf8Test, Validity) {
  EXPECT_TRUE(IsValid(""));
  EXPECT_TRUE(IsValid("plain ascii"));
  EXPECT_TRUE(IsValid("é中😀\U0010FFFF"));
  EXPECT_EQ(FindInvalid("ab\xff"), 2u);
  EXPECT_EQ(FindInvalid("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(FindInvalid("x\xed\xa0\x80"), 1u);     // surrogate U+D800
  EXPECT_EQ(FindInvalid("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FindInvalid("ok\xe4\xb8"), 2u);        // truncated
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  // Each maximal ill-formed subpart is one U+FFFD (Unicode 3.9, "U+FFFD
  // substitution of maximal subparts"), as Rust's from_utf8_lossy does.
  EXPECT_EQ(Lossy("a\xff"
                  "b"),
            "a\uFFFDb");
  EXPECT_EQ(Lossy("\xe4\xb8"
                  "a"),
            "\uFFFDa");                                    // E4 B8 is one subpart
  EXPECT_EQ(Lossy("\xf0\x80\x80"), "\uFFFD\uFFFD\uFFFD");  // F0 80: 80 is out of range
  EXPECT_EQ(Lossy("\xed\xa0\x80"), "\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(Lossy("\xe4\xb8"), "\uFFFD");  // truncated at the end: one
  EXPECT_EQ(Lossy("中"), "中");
}

TEST(Utf8Test, NonFinalLossyHoldsTruncatedTail) {
  std::string out;
  EXPECT_EQ(AppendLossy("ab\xe4\xb8", /*final=*/false, &out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(AppendLossy("\xff\xe4", /*final=*/false, &out), 1u);
  EXPECT_EQ(out, "\uFFFD");
}

TEST(Utf8Test, DecodeAndEncodeCodePoints) {
  const std::string s = "aé中😀";
  size_t pos = 0;
  std::string round_trip;
  for (char32_t expected : {U'a', U'é', U'中', U'😀'}) {
    const char32_t c = DecodeAt(s, &pos);
    EXPECT_EQ(c, expected);
    AppendCodePoint(c, &round_trip);
  }
  EXPECT_EQ(pos, s.size());
  EXPECT_EQ(round_trip, s);
}

}  // namespace
}  // namespace yard::model::utf8
