// Byte-level BPE tokenizer for DeepSeek-V2/V3, driven by the model's Hugging Face
// `tokenizer.json` and `tokenizer_config.json` (HF tokenizers semantics):
//
//   text --added tokens (leftmost-longest, before anything else)--> segments
//        --pre_tokenizer (regex Splits, ByteLevel)--> pieces
//        --BPE over bytes, merges by rank--> ids
//
// Supported: identity normalizers (null / empty Sequence), pre-tokenizers Split,
// ByteLevel and Sequence, model BPE (merges as "a b" strings or [a, b] arrays),
// decoder ByteLevel. Anything else is rejected with InvalidArgument rather than
// silently encoding differently from HF. The `post_processor` is ignored: as in
// transformers' LlamaTokenizerFast, BOS/EOS come from tokenizer_config.json.
//
// Text to encode must be valid UTF-8 (Encode returns InvalidArgument otherwise,
// naming the byte offset): HF only accepts Rust strings, so there is no reference
// behaviour to match for invalid bytes, and a request that carries them is broken.
#ifndef SWITCHYARD_MODEL_TOKENIZER_TOKENIZER_H_
#define SWITCHYARD_MODEL_TOKENIZER_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace yard::model {

using TokenId = int32_t;

class AddedTokenMatcher;
class PreTokenizer;
class Regex;

// One entry of tokenizer.json's `added_tokens`.
struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;      // skipped by Decode(skip_special_tokens = true)
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // the match swallows whitespace on its right
  bool single_word = false;  // matches only when not inside a word
  bool normalized = true;    // matched after normalization (second pass)
};

struct EncodeOptions {
  // Prepend the BOS token if tokenizer_config.json's add_bos_token is true, and
  // append EOS if add_eos_token is: what transformers does for a prompt.
  bool add_special_tokens = true;
  // When true, added tokens marked `special` in the text are encoded as plain
  // text instead of as their ids (HF's split_special_tokens), e.g. for
  // untrusted text that must not inject "<｜end▁of▁sentence｜>". Non-special
  // added tokens such as "<｜User｜>" are still recognised, as in HF.
  bool split_special_tokens = false;
};

// Immutable after Load/FromJson; all methods are const and safe to call from
// any number of threads at once.
class Tokenizer {
 public:
  // Reads `dir`/tokenizer.json and `dir`/tokenizer_config.json.
  // NotFound if a file is missing; InvalidArgument naming the file and field
  // if one is malformed.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);

  // The same from the two files' contents. `tokenizer_config_json` may be "{}"
  // (no BOS/EOS handling).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      absl::string_view tokenizer_json, absl::string_view tokenizer_config_json);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // InvalidArgument if `text` is not valid UTF-8; ResourceExhausted if a regex
  // hits PCRE2's match limit (only possible with pathological patterns).
  absl::StatusOr<std::vector<TokenId>> Encode(absl::string_view text,
                                              const EncodeOptions& options) const;
  absl::StatusOr<std::vector<TokenId>> Encode(absl::string_view text,
                                              bool add_special_tokens = true) const {
    EncodeOptions options;
    options.add_special_tokens = add_special_tokens;
    return Encode(text, options);
  }

  // ByteLevel decoding as HF does it: each token's characters are mapped back
  // to bytes (a token with a character outside the byte map, like
  // "<｜User｜>", contributes its UTF-8 as is), and ill-formed UTF-8 in the
  // result becomes U+FFFD. Ids with no token (e.g. the model's padding rows
  // past vocab_size()) contribute nothing, as in HF.
  std::string Decode(absl::Span<const TokenId> ids, bool skip_special_tokens = false) const;

  // The token string as stored in the vocabulary (byte-level form, "Ġworld"),
  // or the added token's content. nullopt for an id with no token.
  std::optional<std::string> IdToToken(TokenId id) const;
  // The inverse of IdToToken; added tokens take precedence, as in HF.
  std::optional<TokenId> TokenToId(absl::string_view token) const;

  // The raw bytes `id` decodes to (see Decode), appended to `out`; nothing for
  // an id with no token, or for a special token when `skip_special_tokens`.
  void AppendTokenBytes(TokenId id, bool skip_special_tokens, std::string* out) const;

  bool IsSpecial(TokenId id) const;

  // From tokenizer_config.json; nullopt when it names no such token.
  std::optional<TokenId> bos_id() const { return bos_id_; }
  std::optional<TokenId> eos_id() const { return eos_id_; }
  bool add_bos_token() const { return add_bos_token_; }
  bool add_eos_token() const { return add_eos_token_; }

  // One past the largest id of the vocabulary and the added tokens (HF's
  // get_vocab_size(with_added_tokens=true)); some ids below may be unused.
  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  const std::vector<AddedToken>& added_tokens() const { return added_tokens_; }

 private:
  struct MergeResult {
    int32_t rank;
    TokenId id;
  };

  Tokenizer();
  absl::Status ParseTokenizerJson(absl::string_view text);
  absl::Status ParseConfigJson(absl::string_view text);
  absl::Status Finish();

  // Appends the ids of one pre-tokenized piece (raw bytes) to `out`.
  void EncodePiece(absl::string_view piece, std::vector<TokenId>* out) const;
  // Appends the ids of text that contains no added token to `out`.
  absl::Status EncodeOrdinary(absl::string_view text, std::vector<TokenId>* out) const;

  // Model.
  absl::flat_hash_map<std::string, TokenId> vocab_;
  absl::flat_hash_map<uint64_t, MergeResult> merges_;  // (left << 32 | right) -> result
  std::array<TokenId, 256> byte_ids_;                  // -1: byte not in vocab
  std::optional<TokenId> unk_id_;
  bool ignore_merges_ = false;  // a piece found whole in the vocab skips BPE
  std::unique_ptr<PreTokenizer> pre_tokenizer_;

  // Added tokens.
  std::vector<AddedToken> added_tokens_;
  absl::flat_hash_map<std::string, TokenId> added_ids_;
  std::unique_ptr<AddedTokenMatcher> raw_matcher_;         // normalized == false
  std::unique_ptr<AddedTokenMatcher> normalized_matcher_;  // normalized == true
  std::unique_ptr<Regex> word_char_;                       // only when some token is single_word

  // Indexed by id: the token string, its decoded bytes, and flags (present,
  // special); ids no token uses are absent.
  std::vector<std::string> tokens_;
  std::vector<std::string> token_bytes_;
  std::vector<uint8_t> token_flags_;

  // tokenizer_config.json.
  std::optional<TokenId> bos_id_;
  std::optional<TokenId> eos_id_;
  bool add_bos_token_ = false;
  bool add_eos_token_ = false;
};

// Turns a stream of generated ids into text, one id at a time, never emitting
// part of a UTF-8 character: bytes of an incomplete character are held until
// the ids that complete it arrive. The concatenation of every Next() and the
// final Flush() equals Decode(all ids, skip_special_tokens).
//
// Not thread-safe: one per sequence, used by one thread at a time. The
// tokenizer must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

  // The text completed by `id`; empty while a character is incomplete.
  std::string Next(TokenId id);
  // Whatever is held (an incomplete character becomes U+FFFD, as in Decode);
  // the decoder is then empty and can start a new stream.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  const bool skip_special_tokens_;
  std::string pending_;  // a proper prefix of a UTF-8 character, at most 3 bytes
};

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_TOKENIZER_TOKENIZER_H_
