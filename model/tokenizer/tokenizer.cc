#include "model/tokenizer/tokenizer.h"

#include <algorithm>
#include <deque>
#include <exception>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/tokenizer/json_util.h"
#include "model/tokenizer/pre_tokenizer.h"
#include "model/tokenizer/utf8.h"

namespace yard::model {
namespace {

using json_util::Child;
using json_util::Index;
using json_util::Invalid;
using json_util::Json;
using json_util::Quote;

constexpr uint8_t kPresent = 1;
constexpr uint8_t kSpecial = 2;

// Ids are stored densely, so a file must not name absurdly large ids.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the
// other 68 bytes (controls, space, DEL, NBSP, soft hyphen) are moved, in byte
// order, to U+0100 onwards so that every byte is a visible character.
struct ByteLevelTables {
  std::array<char32_t, 256> byte_to_char;
  std::array<int16_t, 324> char_to_byte;  // -1: not a byte-level character

  ByteLevelTables() {
    char_to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      byte_to_char[b] = c;
      char_to_byte[c] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables* const tables = new ByteLevelTables();
  return *tables;
}

std::string ToByteLevel(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8::AppendCodePoint(Tables().byte_to_char[b], &out);
  return out;
}

// HF's ByteLevel decoder for one token: its characters mapped back to bytes,
// or its UTF-8 unchanged if any character is not a byte-level one.
std::string TokenBytes(absl::string_view token) {
  std::string bytes;
  size_t pos = 0;
  while (pos < token.size()) {
    const char32_t c = utf8::DecodeAt(token, &pos);
    const int b = c < Tables().char_to_byte.size() ? Tables().char_to_byte[c] : -1;
    if (b < 0) return std::string(token);
    bytes.push_back(static_cast<char>(b));
  }
  return bytes;
}

// Rust's char::is_whitespace (the Unicode White_Space property), which HF
// uses for added tokens' lstrip/rstrip.
bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Byte length of the whitespace run ending at `end` / starting at `begin`.
size_t WhiteSpaceBefore(absl::string_view text, size_t end) {
  size_t start = end;
  while (start > 0) {
    size_t cp_start = start - 1;
    while (cp_start > 0 && (static_cast<uint8_t>(text[cp_start]) & 0xC0) == 0x80) --cp_start;
    size_t pos = cp_start;
    if (!IsWhiteSpace(utf8::DecodeAt(text, &pos))) break;
    start = cp_start;
  }
  return end - start;
}

size_t WhiteSpaceAfter(absl::string_view text, size_t begin) {
  size_t pos = begin;
  while (pos < text.size()) {
    size_t next = pos;
    if (!IsWhiteSpace(utf8::DecodeAt(text, &next))) break;
    pos = next;
  }
  return pos - begin;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return contents.str();
}

absl::Status WithFile(absl::string_view file, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(file, ": ", status.message()));
}

absl::StatusOr<Json> ParseJson(absl::string_view text) {
  Json root = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a JSON object at the top level, got ", json_util::TypeName(root)));
  }
  return root;
}

}  // namespace

// Finds added tokens in text: a byte trie walked from each position, taking
// the leftmost position where any token starts and the longest token there
// (HF's aho-corasick with MatchKind::LeftmostLongest).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() : terminal_(1, -1) { first_byte_.fill(false); }

  void Add(absl::string_view content, int index) {
    int32_t node = 0;
    first_byte_[static_cast<uint8_t>(content[0])] = true;
    for (unsigned char b : content) {
      auto [it, inserted] =
          edges_.try_emplace(Key(node, b), static_cast<int32_t>(terminal_.size()));
      if (inserted) terminal_.push_back(-1);
      node = it->second;
    }
    // A later duplicate replaces an earlier one, as a later entry of HF's map would.
    terminal_[node] = index;
  }

  bool empty() const { return terminal_.size() == 1; }

  // The leftmost-longest match in text[from, end) among tokens that `accept`;
  // false if none.
  template <typename Accept>
  bool Find(absl::string_view text, size_t from, const Accept& accept, size_t* begin, size_t* end,
            int* index) const {
    for (size_t start = from; start < text.size(); ++start) {
      if (!first_byte_[static_cast<uint8_t>(text[start])]) continue;
      int32_t node = 0;
      int best = -1;
      size_t best_end = 0;
      for (size_t pos = start; pos < text.size(); ++pos) {
        auto it = edges_.find(Key(node, static_cast<uint8_t>(text[pos])));
        if (it == edges_.end()) break;
        node = it->second;
        if (terminal_[node] >= 0 && accept(terminal_[node])) {
          best = terminal_[node];
          best_end = pos + 1;
        }
      }
      if (best >= 0) {
        *begin = start;
        *end = best_end;
        *index = best;
        return true;
      }
    }
    return false;
  }

 private:
  static uint64_t Key(int32_t node, uint8_t byte) {
    return (static_cast<uint64_t>(node) << 8) | byte;
  }

  absl::flat_hash_map<uint64_t, int32_t> edges_;  // (node, byte) -> child node
  std::vector<int> terminal_;                     // node -> added token index, or -1
  std::array<bool, 256> first_byte_;
};

Tokenizer::Tokenizer() { byte_ids_.fill(-1); }
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFile(absl::StrCat(dir, "/tokenizer.json")));
  ASSIGN_OR_RETURN(std::string config_json, ReadFile(absl::StrCat(dir, "/tokenizer_config.json")));
  return FromJson(tokenizer_json, config_json);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    absl::string_view tokenizer_json, absl::string_view tokenizer_config_json) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  // The parsers check every type before access, so nothing should throw; this
  // is the backstop that keeps an exception (or bad_alloc) from escaping.
  try {
    RETURN_IF_ERROR(WithFile("tokenizer.json", tokenizer->ParseTokenizerJson(tokenizer_json)));
    RETURN_IF_ERROR(
        WithFile("tokenizer_config.json", tokenizer->ParseConfigJson(tokenizer_config_json)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer files: ", e.what()));
  }
  return tokenizer;
}

absl::Status Tokenizer::ParseTokenizerJson(absl::string_view text) {
  ASSIGN_OR_RETURN(Json root, ParseJson(text));

  // Normalizer: only the identity is supported (DeepSeek's empty Sequence).
  if (const Json* normalizer = json_util::Find(root, "normalizer");
      normalizer != nullptr && !normalizer->is_null()) {
    ASSIGN_OR_RETURN(const std::string* type,
                     json_util::RequiredString(*normalizer, "type", "normalizer"));
    const Json* list = json_util::Find(*normalizer, "normalizers");
    if (*type != "Sequence" || list == nullptr || !list->is_array() || !list->empty()) {
      return Invalid("normalizer", "only an empty normalizer Sequence is supported");
    }
  }

  const Json* pre = json_util::Find(root, "pre_tokenizer");
  ASSIGN_OR_RETURN(pre_tokenizer_,
                   PreTokenizer::FromJson(pre != nullptr ? *pre : Json(nullptr), "pre_tokenizer"));
  if (!pre_tokenizer_->has_byte_level()) {
    return Invalid("pre_tokenizer", "byte-level BPE needs a ByteLevel pre-tokenizer");
  }

  ASSIGN_OR_RETURN(const Json* decoder, json_util::Required(root, "decoder", ""));
  ASSIGN_OR_RETURN(const std::string* decoder_type,
                   json_util::RequiredString(*decoder, "type", "decoder"));
  if (*decoder_type != "ByteLevel") {
    return Invalid("decoder.type",
                   absl::StrCat("unsupported decoder ", Quote(*decoder_type), " (want ByteLevel)"));
  }

  // The model.
  ASSIGN_OR_RETURN(const Json* model, json_util::Required(root, "model", ""));
  if (!model->is_object()) return Invalid("model", "expected an object");
  ASSIGN_OR_RETURN(const std::string* model_type,
                   json_util::RequiredString(*model, "type", "model"));
  if (*model_type != "BPE") {
    return Invalid("model.type",
                   absl::StrCat("unsupported model type ", Quote(*model_type), " (want BPE)"));
  }
  if (const Json* dropout = json_util::Find(*model, "dropout");
      dropout != nullptr && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return Invalid("model.dropout", "BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const Json* v = json_util::Find(*model, key);
    if (v != nullptr && !v->is_null() && !(v->is_string() && v->empty())) {
      return Invalid(Child("model", key), "not supported");
    }
  }
  ASSIGN_OR_RETURN(bool byte_fallback,
                   json_util::OptionalBool(*model, "byte_fallback", false, "model"));
  if (byte_fallback) return Invalid("model.byte_fallback", "not supported");
  ASSIGN_OR_RETURN(ignore_merges_,
                   json_util::OptionalBool(*model, "ignore_merges", false, "model"));

  ASSIGN_OR_RETURN(const Json* vocab, json_util::Required(*model, "vocab", "model"));
  if (!vocab->is_object()) {
    return Invalid("model.vocab",
                   absl::StrCat("expected an object, got ", json_util::TypeName(*vocab)));
  }
  vocab_.reserve(vocab->size());
  absl::flat_hash_map<TokenId, const std::string*> seen_ids;
  seen_ids.reserve(vocab->size());
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string path = absl::StrCat("model.vocab[", Quote(it.key()), "]");
    ASSIGN_OR_RETURN(TokenId id, json_util::AsTokenId(it.value(), path));
    if (auto [seen, inserted] = seen_ids.try_emplace(id, &it.key()); !inserted) {
      return Invalid(path, absl::StrCat("id ", id, " is also the id of ", Quote(*seen->second)));
    }
    vocab_.emplace(it.key(), id);
    max_id = std::max<int64_t>(max_id, id);
  }

  ASSIGN_OR_RETURN(const Json* merges, json_util::Required(*model, "merges", "model"));
  if (!merges->is_array()) {
    return Invalid("model.merges",
                   absl::StrCat("expected an array, got ", json_util::TypeName(*merges)));
  }
  merges_.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& entry = (*merges)[i];
    const std::string path = Index("model.merges", i);
    std::string left, right;
    if (entry.is_string()) {
      // "a b": byte-level tokens never contain a space (it is 'Ġ'), so exactly
      // one separates the halves.
      const std::string& s = *entry.get_ptr<const std::string*>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Invalid(path,
                       absl::StrCat("expected \"left right\" with one space, got ", Quote(s)));
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {
      left = *entry[0].get_ptr<const std::string*>();
      right = *entry[1].get_ptr<const std::string*>();
    } else {
      return Invalid(path, absl::StrCat("expected a \"left right\" string or a [left, right] "
                                        "array of strings, got ",
                                        json_util::TypeName(entry)));
    }
    auto l = vocab_.find(left);
    auto r = vocab_.find(right);
    auto merged = vocab_.find(absl::StrCat(left, right));
    if (l == vocab_.end())
      return Invalid(path, absl::StrCat(Quote(left), " is not in model.vocab"));
    if (r == vocab_.end()) {
      return Invalid(path, absl::StrCat(Quote(right), " is not in model.vocab"));
    }
    if (merged == vocab_.end()) {
      return Invalid(path, absl::StrCat("merged token ", Quote(absl::StrCat(left, right)),
                                        " is not in model.vocab"));
    }
    // A repeated pair takes its last rank, as HF's map construction does.
    merges_[(static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second)] =
        MergeResult{static_cast<int32_t>(i), merged->second};
  }

  if (const Json* unk = json_util::Find(*model, "unk_token"); unk != nullptr && !unk->is_null()) {
    ASSIGN_OR_RETURN(const std::string* name, json_util::AsString(*unk, "model.unk_token"));
    auto it = vocab_.find(*name);
    if (it == vocab_.end()) {
      return Invalid("model.unk_token", absl::StrCat(Quote(*name), " is not in model.vocab"));
    }
    unk_id_ = it->second;
  }

  // Added tokens.
  if (const Json* added = json_util::Find(root, "added_tokens");
      added != nullptr && !added->is_null()) {
    if (!added->is_array()) return Invalid("added_tokens", "expected an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const Json& entry = (*added)[i];
      const std::string path = Index("added_tokens", i);
      if (!entry.is_object()) return Invalid(path, "expected an object");
      AddedToken token;
      ASSIGN_OR_RETURN(const Json* id, json_util::Required(entry, "id", path));
      ASSIGN_OR_RETURN(token.id, json_util::AsTokenId(*id, Child(path, "id")));
      ASSIGN_OR_RETURN(const std::string* content,
                       json_util::RequiredString(entry, "content", path));
      if (content->empty()) return Invalid(Child(path, "content"), "empty");
      token.content = *content;
      ASSIGN_OR_RETURN(token.special, json_util::OptionalBool(entry, "special", false, path));
      ASSIGN_OR_RETURN(token.lstrip, json_util::OptionalBool(entry, "lstrip", false, path));
      ASSIGN_OR_RETURN(token.rstrip, json_util::OptionalBool(entry, "rstrip", false, path));
      ASSIGN_OR_RETURN(token.single_word,
                       json_util::OptionalBool(entry, "single_word", false, path));
      ASSIGN_OR_RETURN(token.normalized,
                       json_util::OptionalBool(entry, "normalized", !token.special, path));
      max_id = std::max<int64_t>(max_id, token.id);
      added_tokens_.push_back(std::move(token));
    }
  }

  // Ids index dense tables; refuse sizes no real vocabulary has, so a hostile
  // file cannot make us allocate gigabytes.
  const int64_t count = static_cast<int64_t>(vocab_.size() + added_tokens_.size());
  if (max_id > kMaxTokenId || max_id >= 2 * count + 65536) {
    return Invalid("model.vocab", absl::StrCat("largest token id ", max_id, " is too large for ",
                                               count, " tokens"));
  }
  return Finish();
}

absl::Status Tokenizer::Finish() {
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max<int64_t>(max_id, id);
  for (const AddedToken& t : added_tokens_) max_id = std::max<int64_t>(max_id, t.id);
  const size_t size = static_cast<size_t>(max_id + 1);
  tokens_.assign(size, std::string());
  token_flags_.assign(size, 0);
  for (const auto& [token, id] : vocab_) {
    tokens_[id] = token;
    token_flags_[id] = kPresent;
  }
  raw_matcher_ = std::make_unique<AddedTokenMatcher>();
  normalized_matcher_ = std::make_unique<AddedTokenMatcher>();
  for (size_t i = 0; i < added_tokens_.size(); ++i) {
    const AddedToken& t = added_tokens_[i];
    if (t.single_word && word_char_ == nullptr) {
      // Rust's char::is_alphanumeric, plus '_', as HF's word test.
      ASSIGN_OR_RETURN(word_char_, Regex::Compile(R"([\p{Alphabetic}\p{N}_])", false));
    }
    tokens_[t.id] = t.content;
    token_flags_[t.id] = kPresent | (t.special ? kSpecial : 0);
    added_ids_[t.content] = t.id;
    (t.normalized ? normalized_matcher_ : raw_matcher_)->Add(t.content, static_cast<int>(i));
  }
  token_bytes_.resize(size);
  for (size_t id = 0; id < size; ++id) {
    if (token_flags_[id] & kPresent) token_bytes_[id] = TokenBytes(tokens_[id]);
  }
  for (int b = 0; b < 256; ++b) {
    std::string c;
    utf8::AppendCodePoint(Tables().byte_to_char[b], &c);
    auto it = vocab_.find(c);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::ParseConfigJson(absl::string_view text) {
  ASSIGN_OR_RETURN(Json root, ParseJson(text));
  ASSIGN_OR_RETURN(add_bos_token_, json_util::OptionalBool(root, "add_bos_token", false, ""));
  ASSIGN_OR_RETURN(add_eos_token_, json_util::OptionalBool(root, "add_eos_token", false, ""));
  // bos_token / eos_token: a string, or an AddedToken object {"content": ...}.
  auto resolve = [&](const char* key, std::optional<TokenId>* out) -> absl::Status {
    const Json* v = json_util::Find(root, key);
    if (v == nullptr || v->is_null()) return absl::OkStatus();
    const std::string* content;
    if (v->is_object()) {
      ASSIGN_OR_RETURN(content, json_util::RequiredString(*v, "content", key));
    } else {
      ASSIGN_OR_RETURN(content, json_util::AsString(*v, key));
    }
    *out = TokenToId(*content);
    if (!out->has_value()) {
      return Invalid(key, absl::StrCat(Quote(*content), " is not in the vocabulary"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(resolve("bos_token", &bos_id_));
  RETURN_IF_ERROR(resolve("eos_token", &eos_id_));
  if (add_bos_token_ && !bos_id_) return Invalid("add_bos_token", "true but no bos_token");
  if (add_eos_token_ && !eos_id_) return Invalid("add_eos_token", "true but no eos_token");
  return absl::OkStatus();
}

std::optional<std::string> Tokenizer::IdToToken(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !(token_flags_[id] & kPresent)) {
    return std::nullopt;
  }
  return tokens_[id];
}

std::optional<TokenId> Tokenizer::TokenToId(absl::string_view token) const {
  if (auto it = added_ids_.find(token); it != added_ids_.end()) return it->second;
  if (auto it = vocab_.find(token); it != vocab_.end()) return it->second;
  return std::nullopt;
}

bool Tokenizer::IsSpecial(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < token_flags_.size() && (token_flags_[id] & kSpecial);
}

void Tokenizer::EncodePiece(absl::string_view piece, std::vector<TokenId>* out) const {
  if (piece.size() == 1) {
    const TokenId id = byte_ids_[static_cast<uint8_t>(piece[0])];
    if (id >= 0) {
      out->push_back(id);
    } else if (unk_id_) {
      out->push_back(*unk_id_);
    }
    return;
  }
  if (ignore_merges_) {
    if (auto it = vocab_.find(ToByteLevel(piece)); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  // Symbols in a doubly linked list; a min-heap of candidate merges keyed by
  // (rank, position), so the lowest-ranked pair merges first and ties go to
  // the leftmost, as in HF's BPE::merge_word. O(n log n) for long pieces.
  struct Symbol {
    TokenId id;
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;
    TokenId left_id;
    TokenId right_id;
    TokenId merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (unsigned char b : piece) {
    TokenId id = byte_ids_[b];
    if (id < 0) {
      if (!unk_id_) continue;  // HF drops characters it cannot represent
      id = *unk_id_;
    }
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
  }
  std::vector<Candidate> heap;
  auto push_pair = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const uint64_t key =
        (static_cast<uint64_t>(symbols[left].id) << 32) | static_cast<uint32_t>(symbols[right].id);
    auto it = merges_.find(key);
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, symbols[left].id, symbols[right].id, it->second.id});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[c.left];
    // Stale when either side has merged since: merged tokens are longer, so
    // an unchanged pair of ids means an unchanged pair of symbols.
    if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
    const int32_t right = left.next;
    left.id = c.merged_id;
    left.next = symbols[right].next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    symbols[right].id = -1;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(c.left);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    out->push_back(symbols[i].id);
  }
}

absl::Status Tokenizer::EncodeOrdinary(absl::string_view text, std::vector<TokenId>* out) const {
  std::deque<std::string> arena;
  std::vector<absl::string_view> pieces;
  RETURN_IF_ERROR(pre_tokenizer_->Split(text, &arena, &pieces));
  for (absl::string_view piece : pieces) EncodePiece(piece, out);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenId>> Tokenizer::Encode(absl::string_view text,
                                                       const EncodeOptions& options) const {
  if (const size_t bad = utf8::FindInvalid(text); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is not valid UTF-8 (ill-formed sequence at byte ", bad, ")"));
  }
  std::vector<TokenId> ids;
  if (options.add_special_tokens && add_bos_token_) ids.push_back(*bos_id_);

  auto accept = [&](int index) {
    return !(options.split_special_tokens && added_tokens_[index].special);
  };
  // Splits text[begin, end) around the matches of `matcher`, passing each
  // stretch without a match to `gap` and emitting each match's id. The
  // lstrip/rstrip/single_word rules follow HF's AddedVocabulary::find_matches.
  auto split = [&](const AddedTokenMatcher& matcher, absl::string_view text,
                   const auto& gap) -> absl::Status {
    size_t offset = 0;  // end of the last emitted match
    size_t search = 0;
    size_t begin, end;
    int index;
    while (!matcher.empty() && matcher.Find(text, search, accept, &begin, &end, &index)) {
      const AddedToken& token = added_tokens_[index];
      search = end;
      if (token.single_word) {
        // Not when glued to a word character on either side.
        auto is_word = [&](size_t at, bool before) {
          size_t cp_begin = at, cp_end = at;
          if (before) {
            if (at == 0) return false;
            cp_begin = at - 1;
            while (cp_begin > 0 && (static_cast<uint8_t>(text[cp_begin]) & 0xC0) == 0x80) {
              --cp_begin;
            }
          } else {
            if (at >= text.size()) return false;
            utf8::DecodeAt(text, &cp_end);
          }
          return word_char_->Matches(text.substr(cp_begin, cp_end - cp_begin));
        };
        if (is_word(begin, true) || is_word(end, false)) continue;
      }
      if (token.lstrip) begin = std::max(begin - WhiteSpaceBefore(text, begin), offset);
      if (token.rstrip) end += WhiteSpaceAfter(text, end);
      search = end;
      if (begin > offset) RETURN_IF_ERROR(gap(text.substr(offset, begin - offset)));
      ids.push_back(token.id);
      offset = end;
    }
    if (offset < text.size()) RETURN_IF_ERROR(gap(text.substr(offset)));
    return absl::OkStatus();
  };
  auto ordinary = [&](absl::string_view part) { return EncodeOrdinary(part, &ids); };
  // Two passes as in HF: tokens matched on raw text first, then the ones
  // matched on normalized text in what is left (the normalizer is identity).
  RETURN_IF_ERROR(split(*raw_matcher_, text, [&](absl::string_view part) {
    return split(*normalized_matcher_, part, ordinary);
  }));

  if (options.add_special_tokens && add_eos_token_) ids.push_back(*eos_id_);
  return ids;
}

void Tokenizer::AppendTokenBytes(TokenId id, bool skip_special_tokens, std::string* out) const {
  if (id < 0 || static_cast<size_t>(id) >= token_flags_.size()) return;
  const uint8_t flags = token_flags_[id];
  if (!(flags & kPresent) || (skip_special_tokens && (flags & kSpecial))) return;
  out->append(token_bytes_[id]);
}

std::string Tokenizer::Decode(absl::Span<const TokenId> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (TokenId id : ids) AppendTokenBytes(id, skip_special_tokens, &bytes);
  std::string text;
  text.reserve(bytes.size());
  utf8::AppendLossy(bytes, /*final=*/true, &text);
  return text;
}

std::string StreamDecoder::Next(TokenId id) {
  tokenizer_.AppendTokenBytes(id, skip_special_tokens_, &pending_);
  std::string text;
  const size_t consumed = utf8::AppendLossy(pending_, /*final=*/false, &text);
  pending_.erase(0, consumed);
  return text;
}

std::string StreamDecoder::Flush() {
  std::string text;
  utf8::AppendLossy(pending_, /*final=*/true, &text);
  pending_.clear();
  return text;
}

}  // namespace yard::model
