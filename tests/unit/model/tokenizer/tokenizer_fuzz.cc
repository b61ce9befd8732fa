// libFuzzer target for the tokenizer. The first input byte picks the mode:
//   0: the rest is a tokenizer.json: FromJson must not crash; if it loads, a few
//      strings are encoded and decoded with it.
//   1: the rest is a tokenizer_config.json for a fixed small tokenizer.
//   else: the rest is text for a fixed small byte-level tokenizer (all 256
//      bytes in the vocab, DeepSeek's split patterns, a few merges and added
//      tokens): Encode must not crash, and when the text is valid UTF-8,
//      Decode(Encode(text)) == text and streaming decode must agree with Decode.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace {

using yard::model::StreamDecoder;
using yard::model::TokenId;
using yard::model::Tokenizer;

std::string ByteLevelChar(int b) {
  // GPT-2's byte-to-character map, rebuilt here so the fixture needs no file.
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  int shifted = 256;
  for (int i = 0; i < b; ++i) {
    if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE)) ++shifted;
  }
  std::string out;
  yard::model::utf8::AppendCodePoint(static_cast<char32_t>(printable ? b : shifted), &out);
  return out;
}

std::string MakeFixtureJson() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelChar(b)] = b;
  const char* merges[][2] = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"},
                             {"1", "2"}, {"Ġ", "Ġ"}, {"ä", "¸"},   {"Ã", "©"}};
  nlohmann::json merge_list = nlohmann::json::array();
  int next = 256;
  for (const auto& m : merges) {
    merge_list.push_back(std::string(m[0]) + " " + m[1]);
    vocab[std::string(m[0]) + m[1]] = next++;
  }
  auto split = [](const char* regex) {
    return nlohmann::json{{"type", "Split"},
                          {"pattern", {{"Regex", regex}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
  };
  nlohmann::json j = {
      {"added_tokens",
       {{{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
        {{"id", 301}, {"content", "<｜User｜>"}, {"special", false}, {"normalized", true}},
        {{"id", 302}, {"content", "<｜Us"}, {"special", false}, {"normalized", true}}}},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", nlohmann::json::array()}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {split(R"(\p{N}{1,3})"),
          split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
          split(
              R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}}};
  return j.dump();
}

const std::string& FixtureJson() {
  static const std::string* const json = new std::string(MakeFixtureJson());
  return *json;
}

const Tokenizer& Fixture() {
  static const Tokenizer* const tokenizer = [] {
    auto t = Tokenizer::FromJson(FixtureJson(), R"({"bos_token": "<s>", "add_bos_token": true})");
    if (!t.ok()) abort();
    return t->release();
  }();
  return *tokenizer;
}

void CheckRoundTrip(const Tokenizer& tokenizer, const std::string& text, bool exact) {
  auto ids = tokenizer.Encode(text, /*add_special_tokens=*/false);
  if (!ids.ok()) {
    if (yard::model::utf8::IsValid(text) && exact) abort();
    return;
  }
  const std::string decoded = tokenizer.Decode(*ids);
  if (!yard::model::utf8::IsValid(decoded)) abort();
  if (exact && decoded != text) abort();
  StreamDecoder stream(tokenizer);
  std::string streamed;
  for (TokenId id : *ids) {
    const std::string part = stream.Next(id);
    if (!yard::model::utf8::IsValid(part)) abort();
    streamed += part;
  }
  streamed += stream.Flush();
  if (streamed != decoded) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0]) {
    case 0: {
      auto tokenizer = Tokenizer::FromJson(rest, "{}");
      if (tokenizer.ok()) {
        for (const char* text : {"Hello world 123", "  \n\t<s>中文", "é😀"}) {
          CheckRoundTrip(**tokenizer, text, /*exact=*/false);
        }
      }
      break;
    }
    case 1: {
      (void)Tokenizer::FromJson(FixtureJson(), rest);
      break;
    }
    default:
      CheckRoundTrip(Fixture(), rest, /*exact=*/true);
      break;
  }
  return 0;
}
