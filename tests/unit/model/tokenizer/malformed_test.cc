// Malformed tokenizer.json / tokenizer_config.json: each must give
// InvalidArgument naming the file and the field, never a crash.
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/tokenizer/test_files.h"

namespace yard::model {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

struct Case {
  std::string name;
  std::function<void(Json&)> mutate;
  std::string expected;  // a substring of the error message
};

Json Tiny(const char* file) {
  return Json::parse(testing::ReadTestFile(std::string(testing::kTestDataDir) + "/" + file));
}

TEST(MalformedTokenizerJsonTest, EachCaseIsInvalidArgumentNamingTheField) {
  const std::vector<Case> cases = {
      {"no model", [](Json& j) { j.erase("model"); }, "tokenizer.json: model: missing"},
      {"model not object", [](Json& j) { j["model"] = 3; }, "tokenizer.json: model: expected"},
      {"unknown model type", [](Json& j) { j["model"]["type"] = "WordPiece"; },
       "model.type: unsupported model type 'WordPiece'"},
      {"model type wrong type", [](Json& j) { j["model"]["type"] = 7; },
       "model.type: expected a string, got number"},
      {"no vocab", [](Json& j) { j["model"].erase("vocab"); }, "model.vocab: missing"},
      {"vocab is array", [](Json& j) { j["model"]["vocab"] = Json::array(); },
       "model.vocab: expected an object, got array"},
      {"vocab id is string", [](Json& j) { j["model"]["vocab"]["a"] = "0"; },
       "model.vocab['a']: expected an integer token id, got string"},
      {"vocab id negative", [](Json& j) { j["model"]["vocab"]["a"] = -1; },
       "model.vocab['a']: token id out of range"},
      {"vocab id float", [](Json& j) { j["model"]["vocab"]["a"] = 0.5; },
       "expected an integer token id, got number"},
      {"duplicate vocab id", [](Json& j) { j["model"]["vocab"]["zz"] = 3; }, "is also the id of"},
      {"huge vocab id", [](Json& j) { j["model"]["vocab"]["zz"] = 2000000000; },
       "model.vocab: largest token id 2000000000 is too large"},
      {"merges not array", [](Json& j) { j["model"]["merges"] = "a b"; },
       "model.merges: expected an array, got string"},
      {"merge without space", [](Json& j) { j["model"]["merges"][1] = "ab"; },
       "tokenizer.json: model.merges[1]: expected \"left right\" with one space"},
      {"merge with two spaces", [](Json& j) { j["model"]["merges"][2] = "a b c"; },
       "model.merges[2]: expected \"left right\""},
      {"merge of number", [](Json& j) { j["model"]["merges"][3] = 17; },
       "model.merges[3]: expected a \"left right\" string or a [left, right] array"},
      {"merge array of three",
       [](Json& j) {
         j["model"]["merges"][8] = {"a", "b", "c"};
       },
       "model.merges[8]: expected"},
      {"merge array of numbers",
       [](Json& j) {
         j["model"]["merges"][8] = {1, 2};
       },
       "model.merges[8]: expected"},
      {"merge left unknown", [](Json& j) { j["model"]["merges"][0] = "z b"; },
       "model.merges[0]: 'z' is not in model.vocab"},
      {"merge right unknown", [](Json& j) { j["model"]["merges"][0] = "a z"; },
       "model.merges[0]: 'z' is not in model.vocab"},
      {"merged token unknown", [](Json& j) { j["model"]["merges"][0] = "c d"; },
       "model.merges[0]: merged token 'cd' is not in model.vocab"},
      {"unk token unknown", [](Json& j) { j["model"]["unk_token"] = "<unk>"; },
       "model.unk_token: '<unk>' is not in model.vocab"},
      {"dropout", [](Json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {"byte fallback", [](Json& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback"},
      {"byte fallback wrong type", [](Json& j) { j["model"]["byte_fallback"] = "no"; },
       "model.byte_fallback: expected a boolean, got string"},
      {"subword prefix", [](Json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
       "model.continuing_subword_prefix: not supported"},
      {"bad regex",
       [](Json& j) { j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = "(unclosed"; },
       "pre_tokenizer.pretokenizers[1].pattern.Regex: regex does not compile at offset"},
      {"regex wrong type",
       [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = Json::array(); },
       "pre_tokenizer.pretokenizers[0].pattern.Regex: expected a string, got array"},
      {"pattern with neither",
       [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = Json::object(); },
       "pre_tokenizer.pretokenizers[0].pattern: expected an object with exactly one"},
      {"unknown behavior",
       [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; },
       "pre_tokenizer.pretokenizers[0].behavior: unknown split behavior 'Sideways'"},
      {"invert wrong type", [](Json& j) { j["pre_tokenizer"]["pretokenizers"][0]["invert"] = 1; },
       "pre_tokenizer.pretokenizers[0].invert: expected a boolean"},
      {"unknown pre-tokenizer",
       [](Json& j) {
         j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
       },
       "pre_tokenizer.pretokenizers[0].type: unsupported pre-tokenizer type 'Whitespace'"},
      {"pretokenizers not array", [](Json& j) { j["pre_tokenizer"]["pretokenizers"] = 5; },
       "pre_tokenizer.pretokenizers: expected an array"},
      {"no ByteLevel", [](Json& j) { j["pre_tokenizer"]["pretokenizers"].erase(2); },
       "pre_tokenizer: byte-level BPE needs a ByteLevel pre-tokenizer"},
      {"deep nesting",
       [](Json& j) {
         Json nested = j["pre_tokenizer"];
         for (int i = 0; i < 20; ++i) {
           nested = {{"type", "Sequence"}, {"pretokenizers", Json::array({nested})}};
         }
         j["pre_tokenizer"] = nested;
       },
       "nested too deeply"},
      {"normalizer",
       [](Json& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       "normalizer: only an empty normalizer Sequence"},
      {"no decoder", [](Json& j) { j.erase("decoder"); }, "tokenizer.json: decoder: missing"},
      {"other decoder", [](Json& j) { j["decoder"]["type"] = "WordPiece"; },
       "decoder.type: unsupported decoder 'WordPiece'"},
      {"added tokens not array", [](Json& j) { j["added_tokens"] = Json::object(); },
       "added_tokens: expected an array"},
      {"added token id string", [](Json& j) { j["added_tokens"][2]["id"] = "102"; },
       "added_tokens[2].id: expected an integer token id"},
      {"added token no content", [](Json& j) { j["added_tokens"][1].erase("content"); },
       "added_tokens[1].content: missing"},
      {"added token empty content", [](Json& j) { j["added_tokens"][1]["content"] = ""; },
       "added_tokens[1].content: empty"},
      {"added token special wrong type", [](Json& j) { j["added_tokens"][0]["special"] = "yes"; },
       "added_tokens[0].special: expected a boolean, got string"},
  };
  const Json base = Tiny("tiny_tokenizer.json");
  const std::string config = Tiny("tiny_tokenizer_config.json").dump();
  ASSERT_TRUE(Tokenizer::FromJson(base.dump(), config).ok());
  for (const Case& c : cases) {
    Json j = base;
    c.mutate(j);
    auto tokenizer = Tokenizer::FromJson(j.dump(), config);
    EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(tokenizer.status().message(), HasSubstr(c.expected)) << c.name;
    EXPECT_THAT(tokenizer.status().message(), HasSubstr("tokenizer.json: ")) << c.name;
  }
}

TEST(MalformedTokenizerJsonTest, NotJsonOrNotAnObject) {
  const std::string config = "{}";
  for (const std::string text : {"", "{", "not json", "[1, 2]", "\"string\"", "{\"a\": }"}) {
    auto tokenizer = Tokenizer::FromJson(text, config);
    EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(tokenizer.status().message(), HasSubstr("tokenizer.json: ")) << text;
  }
}

TEST(MalformedTokenizerConfigTest, EachCaseIsInvalidArgumentNamingTheField) {
  const std::vector<Case> cases = {
      {"bos wrong type", [](Json& j) { j["bos_token"] = 5; },
       "tokenizer_config.json: bos_token: expected a string, got number"},
      {"bos unknown", [](Json& j) { j["bos_token"] = "<bos>"; },
       "tokenizer_config.json: bos_token: '<bos>' is not in the vocabulary"},
      {"eos object without content",
       [](Json& j) {
         j["eos_token"] = {{"lstrip", false}};
       },
       "tokenizer_config.json: eos_token.content: missing"},
      {"eos content wrong type", [](Json& j) { j["eos_token"]["content"] = true; },
       "eos_token.content: expected a string, got boolean"},
      {"add_bos_token string", [](Json& j) { j["add_bos_token"] = "yes"; },
       "tokenizer_config.json: add_bos_token: expected a boolean, got string"},
      {"add_bos_token without bos", [](Json& j) { j.erase("bos_token"); },
       "add_bos_token: true but no bos_token"},
      {"add_eos_token without eos", [](Json& j) { j["eos_token"] = nullptr; },
       "add_eos_token: true but no eos_token"},
  };
  const std::string tokenizer_json = Tiny("tiny_tokenizer.json").dump();
  const Json base = Tiny("tiny_tokenizer_config.json");
  for (const Case& c : cases) {
    Json j = base;
    c.mutate(j);
    auto tokenizer = Tokenizer::FromJson(tokenizer_json, j.dump());
    EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(tokenizer.status().message(), HasSubstr(c.expected)) << c.name;
  }
  for (const std::string text : {"", "nope", "[]", "null"}) {
    auto tokenizer = Tokenizer::FromJson(tokenizer_json, text);
    EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(tokenizer.status().message(), HasSubstr("tokenizer_config.json: ")) << text;
  }
}

}  // namespace
}  // namespace yard::model
