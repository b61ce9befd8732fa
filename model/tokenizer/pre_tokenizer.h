// The pre-tokenization stage of a Hugging Face `tokenizer.json`: regex `Split`s
// and `ByteLevel`, applied in sequence, each stage splitting every piece that
// the previous stage produced. Regexes run on PCRE2 (UTF + UCP, JIT when the
// platform has it); HF uses Oniguruma, whose syntax the DeepSeek patterns share.
#ifndef SWITCHYARD_MODEL_TOKENIZER_PRE_TOKENIZER_H_
#define SWITCHYARD_MODEL_TOKENIZER_PRE_TOKENIZER_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json_fwd.hpp"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;

namespace yard::model {

// A compiled PCRE2 pattern. Immutable; matching from many threads at once is
// safe as long as each thread passes its own match data.
class Regex {
 public:
  // `literal` compiles `pattern` as a plain string (HF's {"String": ...}).
  // The error message is PCRE2's, with the offset into the pattern.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(absl::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte offsets of the successive non-overlapping
  // matches in `subject` (valid UTF-8). Empty matches are skipped, as they
  // produce no piece in HF either. Fails only if PCRE2 gives up (match limit).
  absl::Status FindAll(absl::string_view subject, pcre2_real_match_data_8* match_data,
                       std::vector<std::pair<size_t, size_t>>* out) const;

  // Whether the pattern matches anywhere in `subject` (valid UTF-8).
  bool Matches(absl::string_view subject) const;

 private:
  explicit Regex(pcre2_real_code_8* code) : code_(code) {}
  pcre2_real_code_8* code_;  // owned
};

// HF's SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits text into the pieces that BPE then encodes one by one. Immutable after
// FromJson; safe to share between threads.
class PreTokenizer {
 public:
  // Parses the `pre_tokenizer` value of tokenizer.json (null, or a Split,
  // ByteLevel or Sequence of them). `path` names the value in error messages,
  // e.g. "tokenizer.json: pre_tokenizer".
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& value,
                                                                absl::string_view path);
  ~PreTokenizer();

  // Splits `text` (valid UTF-8) into non-empty pieces that are views into
  // `text` or into strings appended to `*arena` (ByteLevel's prefix space).
  // Both must outlive the pieces.
  absl::Status Split(absl::string_view text, std::deque<std::string>* arena,
                     std::vector<absl::string_view>* pieces) const;

  // Whether a ByteLevel step is present: byte-level BPE needs one.
  bool has_byte_level() const { return has_byte_level_; }

 private:
  struct Step {
    std::unique_ptr<Regex> regex;  // null: no split (ByteLevel without use_regex)
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel: prepend ' ' to each piece
  };

  PreTokenizer() = default;
  static absl::Status ParseStep(const nlohmann::json& value, const std::string& path, int depth,
                                PreTokenizer* out);

  std::vector<Step> steps_;
  bool has_byte_level_ = false;
};

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_TOKENIZER_PRE_TOKENIZER_H_
