// The engine's detokenizer over model/tokenizer: one StreamDecoder per request.
#ifndef SWITCHYARD_ENGINE_TOKENIZER_DETOKENIZER_H_
#define SWITCHYARD_ENGINE_TOKENIZER_DETOKENIZER_H_

#include <memory>
#include <string>

#include "engine/detokenizer.h"
#include "model/tokenizer/tokenizer.h"

namespace yard::engine {

// Borrows the tokenizer, which must outlive it and every stream it made. Special
// tokens are left out of the text, as chat clients expect.
class TokenizerDetokenizer : public DetokenizerInterface {
 public:
  explicit TokenizerDetokenizer(const model::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  std::unique_ptr<TokenTextStreamInterface> NewStream() const override {
    return std::make_unique<Stream>(tokenizer_);
  }

 private:
  class Stream : public TokenTextStreamInterface {
   public:
    explicit Stream(const model::Tokenizer& tokenizer)
        : decoder_(tokenizer, /*skip_special_tokens=*/true) {}
    std::string Next(int32_t token) override { return decoder_.Next(token); }
    std::string Flush() override { return decoder_.Flush(); }

   private:
    model::StreamDecoder decoder_;
  };

  const model::Tokenizer& tokenizer_;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_TOKENIZER_DETOKENIZER_H_
