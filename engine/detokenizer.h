// How the engine turns generated token ids into text for streaming and stop strings,
// without depending on a tokenizer implementation (model/tokenizer's StreamDecoder
// fits TokenTextStreamInterface directly).
#ifndef SWITCHYARD_ENGINE_DETOKENIZER_H_
#define SWITCHYARD_ENGINE_DETOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>

namespace yard::engine {

// Incremental detokenization of one request's generated tokens. Not thread-safe; one
// per request, used on the engine's thread.
class TokenTextStreamInterface {
 public:
  virtual ~TokenTextStreamInterface() = default;
  // The text completed by `token`; may be empty (e.g. while a UTF-8 character is
  // incomplete). Concatenating every Next() and the final Flush() gives the text of
  // all tokens.
  virtual std::string Next(int32_t token) = 0;
  // Whatever is still held.
  virtual std::string Flush() = 0;
};

// Makes a text stream per request. Must be usable from the engine's thread and outlive
// the engine.
class DetokenizerInterface {
 public:
  virtual ~DetokenizerInterface() = default;
  virtual std::unique_ptr<TokenTextStreamInterface> NewStream() const = 0;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_DETOKENIZER_H_
