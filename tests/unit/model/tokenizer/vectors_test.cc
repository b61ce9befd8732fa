// Agreement of the tokenizer with an independent implementation on the real
// DeepSeek-V3 files (encode_vectors.json, made by make_vectors.mjs: ids without
// BOS), plus round trips and streaming over the same strings.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/utf8.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/tokenizer/test_files.h"

namespace yard::model {
namespace {

using ::testing::ElementsAreArray;

struct Vector {
  std::string text;
  std::vector<TokenId> ids;
};

const std::vector<Vector>& Vectors() {
  static const std::vector<Vector>* const vectors = [] {
    auto* out = new std::vector<Vector>();
    const nlohmann::json root = nlohmann::json::parse(
        testing::ReadTestFile("tests/unit/model/tokenizer/encode_vectors.json"), nullptr, false);
    if (root.is_discarded() || !root.contains("cases")) {
      ADD_FAILURE() << "encode_vectors.json is not valid";
      return out;
    }
    EXPECT_EQ(root.value("includes_bos", true), false);
    for (const auto& c : root["cases"]) {
      out->push_back({c["text"].get<std::string>(), c["ids"].get<std::vector<TokenId>>()});
    }
    return out;
  }();
  return *vectors;
}

class VectorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = testing::DeepseekV3();
    ASSERT_NE(tokenizer_, nullptr);
    ASSERT_GE(Vectors().size(), 300u);
  }
  const Tokenizer* tokenizer_ = nullptr;
};

TEST_F(VectorsTest, EncodeMatchesIndependentImplementation) {
  int mismatches = 0;
  for (const Vector& v : Vectors()) {
    auto ids = tokenizer_->Encode(v.text, /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_THAT(*ids, ElementsAreArray(v.ids)) << "text: " << nlohmann::json(v.text).dump();
    if (*ids != v.ids) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(VectorsTest, AddSpecialTokensPrependsBos) {
  for (const Vector& v : Vectors()) {
    auto ids = tokenizer_->Encode(v.text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_FALSE(ids->empty());
    EXPECT_EQ(ids->front(), 0);
    EXPECT_EQ(std::vector<TokenId>(ids->begin() + 1, ids->end()), v.ids);
  }
}

TEST_F(VectorsTest, DecodeInvertsEncode) {
  for (const Vector& v : Vectors()) {
    EXPECT_EQ(tokenizer_->Decode(v.ids), v.text);
  }
}

TEST_F(VectorsTest, StreamingDecodeEmitsOnlyWholeCharacters) {
  for (const Vector& v : Vectors()) {
    for (bool skip : {false, true}) {
      StreamDecoder stream(*tokenizer_, skip);
      std::string all;
      for (TokenId id : v.ids) {
        const std::string part = stream.Next(id);
        EXPECT_TRUE(utf8::IsValid(part)) << "text: " << nlohmann::json(v.text).dump();
        all += part;
      }
      const std::string rest = stream.Flush();
      EXPECT_TRUE(utf8::IsValid(rest));
      all += rest;
      EXPECT_EQ(all, tokenizer_->Decode(v.ids, skip));
    }
  }
}

}  // namespace
}  // namespace yard::model
