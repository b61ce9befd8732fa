// UTF-8 helpers for the tokenizer: validation, code point decoding, and lossy
// repair that matches Rust's `String::from_utf8_lossy` (what Hugging Face
// tokenizers uses when decoding), so Decode and StreamDecoder agree with it.
#ifndef SWITCHYARD_MODEL_TOKENIZER_UTF8_H_
#define SWITCHYARD_MODEL_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace yard::model::utf8 {

// What the bytes at some position of a buffer are.
enum class SequenceKind {
  kComplete,   // a well-formed character of `length` bytes
  kInvalid,    // an ill-formed maximal subpart of `length` (>= 1) bytes
  kTruncated,  // the buffer ends inside a well-formed prefix of `length` bytes
};

struct Sequence {
  SequenceKind kind;
  size_t length;
};

// Classifies the bytes of `s` starting at `pos` (< s.size()) per Unicode
// Table 3-7 (no surrogates, no overlongs, nothing above U+10FFFF).
Sequence Classify(absl::string_view s, size_t pos);

// Byte offset of the first ill-formed or truncated sequence, or
// absl::string_view::npos when `s` is valid UTF-8.
size_t FindInvalid(absl::string_view s);

inline bool IsValid(absl::string_view s) { return FindInvalid(s) == absl::string_view::npos; }

// Appends `s` to `out`, replacing each ill-formed maximal subpart by U+FFFD
// (the Unicode "maximal subpart" practice that Rust and WHATWG follow). When
// `final` is false a truncated sequence at the end is not appended; the return
// value is the number of bytes consumed (all of `s` when `final`).
size_t AppendLossy(absl::string_view s, bool final, std::string* out);

// Decodes the character at `*pos` of a valid UTF-8 string and advances `*pos`.
char32_t DecodeAt(absl::string_view s, size_t* pos);

// Appends the UTF-8 encoding of a code point (< 0x110000, not a surrogate).
void AppendCodePoint(char32_t cp, std::string* out);

}  // namespace yard::model::utf8

#endif  // SWITCHYARD_MODEL_TOKENIZER_UTF8_H_
