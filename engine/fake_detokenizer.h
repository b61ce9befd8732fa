// A detokenizer over a fixed table of token texts, for engine tests. Token t decodes
// to texts[t] (empty beyond the table); ids listed as `held` emit nothing until the
// next token, like a tokenizer holding an incomplete UTF-8 character.
#ifndef SWITCHYARD_ENGINE_FAKE_DETOKENIZER_H_
#define SWITCHYARD_ENGINE_FAKE_DETOKENIZER_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/detokenizer.h"

namespace yard::engine {

class FakeDetokenizer : public DetokenizerInterface {
 public:
  explicit FakeDetokenizer(std::vector<std::string> texts, std::vector<int32_t> held = {})
      : texts_(std::move(texts)), held_(std::move(held)) {}

  // Token t -> one letter, 'a' + t % 26.
  static std::vector<std::string> Letters(int64_t vocab_size) {
    std::vector<std::string> texts;
    for (int64_t t = 0; t < vocab_size; ++t) texts.push_back(std::string(1, 'a' + t % 26));
    return texts;
  }

  std::unique_ptr<TokenTextStreamInterface> NewStream() const override {
    return std::make_unique<Stream>(*this);
  }

  std::string Text(int32_t token) const {
    return token >= 0 && token < static_cast<int32_t>(texts_.size()) ? texts_[token] : "";
  }

 private:
  class Stream : public TokenTextStreamInterface {
   public:
    explicit Stream(const FakeDetokenizer& owner) : owner_(owner) {}
    std::string Next(int32_t token) override {
      pending_ += owner_.Text(token);
      if (std::find(owner_.held_.begin(), owner_.held_.end(), token) != owner_.held_.end()) {
        return "";
      }
      return Flush();
    }
    std::string Flush() override { return std::exchange(pending_, std::string()); }

   private:
    const FakeDetokenizer& owner_;
    std::string pending_;
  };

  std::vector<std::string> texts_;
  std::vector<int32_t> held_;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_FAKE_DETOKENIZER_H_
