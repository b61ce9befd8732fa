// Behaviour of the real DeepSeek-V3 tokenizer beyond the encode vectors:
// metadata, special tokens, long inputs, concurrency.
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/tokenizer/chat_template.h"
#include "model/tokenizer/tokenizer.h"
#include "tests/unit/model/tokenizer/test_files.h"

namespace yard::model {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;

class DeepseekV3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = testing::DeepseekV3();
    ASSERT_NE(tokenizer_, nullptr);
  }
  const Tokenizer* tokenizer_ = nullptr;
};

TEST_F(DeepseekV3Test, Metadata) {
  EXPECT_EQ(tokenizer_->vocab_size(), 128815);  // 128000 BPE + added up to 128814
  EXPECT_EQ(tokenizer_->added_tokens().size(), 818u);
  EXPECT_EQ(tokenizer_->bos_id(), 0);
  EXPECT_EQ(tokenizer_->eos_id(), 1);
  EXPECT_TRUE(tokenizer_->add_bos_token());
  EXPECT_FALSE(tokenizer_->add_eos_token());
  EXPECT_EQ(tokenizer_->TokenToId("<｜User｜>"), 128803);
  EXPECT_EQ(tokenizer_->TokenToId("<｜Assistant｜>"), 128804);
  EXPECT_EQ(tokenizer_->IdToToken(1), "<｜end▁of▁sentence｜>");
  EXPECT_TRUE(tokenizer_->IsSpecial(1));
  EXPECT_TRUE(tokenizer_->IsSpecial(128805));   // <|EOT|>
  EXPECT_FALSE(tokenizer_->IsSpecial(128803));  // <｜User｜> is not special
}

TEST_F(DeepseekV3Test, DecodeSkipsSpecialTokensOnRequest) {
  const std::vector<TokenId> ids = {0, 19923, 2058, 1};
  EXPECT_EQ(tokenizer_->Decode(ids), "<｜begin▁of▁sentence｜>Hello world<｜end▁of▁sentence｜>");
  EXPECT_EQ(tokenizer_->Decode(ids, /*skip_special_tokens=*/true), "Hello world");
  // The model's embedding has 129280 rows; ids past the vocabulary vanish.
  EXPECT_EQ(tokenizer_->Decode({19923, 129000}), "Hello");
}

TEST_F(DeepseekV3Test, SplitSpecialTokensKeepsThemOutOfTheIds) {
  EncodeOptions options;
  options.add_special_tokens = false;
  options.split_special_tokens = true;
  const std::string text = "x<｜end▁of▁sentence｜><｜User｜>";
  auto ids = tokenizer_->Encode(text, options);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, Not(Contains(1)));
  EXPECT_EQ(ids->back(), 128803);  // not special: still recognised
  EXPECT_EQ(tokenizer_->Decode(*ids), text);
}

TEST_F(DeepseekV3Test, ChatPromptEncodesToTemplateTokens) {
  auto prompt = RenderDeepseekV3Chat({{"user", "Hello world", {}}}, true);
  ASSERT_TRUE(prompt.ok());
  auto ids = tokenizer_->Encode(*prompt, /*add_special_tokens=*/false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(0, 128803, 19923, 2058, 128804));
}

TEST_F(DeepseekV3Test, LongRunsRoundTrip) {
  for (const std::string& text : {std::string(100000, 'a'), std::string(100000, ' '),
                                  std::string(50000, '7'), std::string(30000, '\n'), [] {
                                    std::string s;
                                    for (int i = 0; i < 20000; ++i) s += "中";
                                    return s;
                                  }()}) {
    auto ids = tokenizer_->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(tokenizer_->Decode(*ids), text);
  }
}

TEST_F(DeepseekV3Test, ConcurrentEncodesAgree) {
  const std::string text =
      "The quick brown fox 12345 跳过了 lazy dogs 🐕‍🦺 <｜User｜> \n\n  def f(x): return "
      "x\n";
  auto expected = tokenizer_->Encode(text);
  ASSERT_TRUE(expected.ok());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto ids = tokenizer_->Encode(text);
        if (!ids.ok() || *ids != *expected) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

}  // namespace
}  // namespace yard::model
