#include "model/tokenizer/pre_tokenizer.h"

#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/tokenizer/json_util.h"

namespace yard::model {
namespace {

using json_util::Child;
using json_util::Index;
using json_util::Invalid;
using json_util::Json;

// GPT-2's split pattern, which HF's ByteLevel pre-tokenizer applies when
// `use_regex` is true. It is part of ByteLevel's definition, not of the file.
constexpr absl::string_view kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Nested Sequences deeper than this are rejected, so a hostile file cannot
// exhaust the stack.
constexpr int kMaxDepth = 8;

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) {
    return absl::StrCat("PCRE2 error ", code);
  }
  return reinterpret_cast<const char*>(buffer);
}

absl::StatusOr<SplitBehavior> ParseBehavior(const Json& v, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string* name, json_util::AsString(v, path));
  if (*name == "Removed") return SplitBehavior::kRemoved;
  if (*name == "Isolated") return SplitBehavior::kIsolated;
  if (*name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (*name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (*name == "Contiguous") return SplitBehavior::kContiguous;
  return Invalid(path, absl::StrCat("unknown split behavior ", json_util::Quote(*name)));
}

struct Span {
  size_t begin;
  size_t end;
  bool is_match;
};

// HF's SplitDelimiterBehavior applied to the matches and gaps of one piece,
// in order. Returns the spans to keep (possibly empty ones; callers drop them).
std::vector<Span> ApplyBehavior(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  out.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return std::vector<Span>(out.rbegin(), out.rend());
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    }
  }
  return spans;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(absl::string_view pattern, bool literal) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // Without UCP, \s \d \w and POSIX classes would be ASCII-only, unlike Oniguruma.
  // (PCRE2 rejects UCP together with LITERAL, where it would mean nothing.)
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("regex does not compile at offset ",
                                                   error_offset, ": ", Pcre2Message(error_code)));
  }
  // JIT makes matching several times faster; where it is unavailable (or runs
  // out of memory) the interpreter gives the same results.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Regex>(new Regex(code));
}

Regex::~Regex() { pcre2_code_free(code_); }

absl::Status Regex::FindAll(absl::string_view subject, pcre2_match_data* match_data,
                            std::vector<std::pair<size_t, size_t>>* out) const {
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  while (start <= subject.size()) {
    // The subject was validated once up front; re-checking it on every call
    // would make splitting quadratic.
    int rc =
        pcre2_match(code_, data, subject.size(), start, PCRE2_NO_UTF_CHECK, match_data, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // JIT code backtracks on a small fixed stack; the interpreter keeps its
      // backtracking state on the heap and can finish what JIT could not.
      rc = pcre2_match(code_, data, subject.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       match_data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("regex matching failed: ", Pcre2Message(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      out->emplace_back(begin, end);
      start = end;
    } else {
      // An empty match: step over one character and search again.
      if (begin >= subject.size()) break;
      start = begin + 1;
      while (start < subject.size() && (static_cast<uint8_t>(subject[start]) & 0xC0) == 0x80) {
        ++start;
      }
    }
  }
  return absl::OkStatus();
}

bool Regex::Matches(absl::string_view subject) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match_data(
      pcre2_match_data_create(1, nullptr));
  if (match_data == nullptr) return false;
  return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                     PCRE2_NO_UTF_CHECK, match_data.get(), nullptr) >= 0;
}

PreTokenizer::~PreTokenizer() = default;

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const Json& value,
                                                                     absl::string_view path) {
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  if (!value.is_null()) RETURN_IF_ERROR(ParseStep(value, std::string(path), 0, pre.get()));
  return pre;
}

absl::Status PreTokenizer::ParseStep(const Json& value, const std::string& path, int depth,
                                     PreTokenizer* out) {
  if (!value.is_object()) {
    return Invalid(path, absl::StrCat("expected an object, got ", json_util::TypeName(value)));
  }
  if (depth > kMaxDepth) return Invalid(path, "Sequences nested too deeply");
  ASSIGN_OR_RETURN(const std::string* type, json_util::RequiredString(value, "type", path));
  if (*type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, json_util::Required(value, "pretokenizers", path));
    const std::string list_path = Child(path, "pretokenizers");
    if (!list->is_array()) return Invalid(list_path, "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParseStep((*list)[i], Index(list_path, i), depth + 1, out));
    }
    return absl::OkStatus();
  }
  if (*type == "Split") {
    Step step;
    ASSIGN_OR_RETURN(const Json* pattern, json_util::Required(value, "pattern", path));
    const std::string pattern_path = Child(path, "pattern");
    const Json* regex = json_util::Find(*pattern, "Regex");
    const Json* literal = json_util::Find(*pattern, "String");
    if ((regex == nullptr) == (literal == nullptr)) {
      return Invalid(pattern_path, "expected an object with exactly one of 'Regex' or 'String'");
    }
    const std::string text_path = Child(pattern_path, regex != nullptr ? "Regex" : "String");
    ASSIGN_OR_RETURN(const std::string* text,
                     json_util::AsString(regex != nullptr ? *regex : *literal, text_path));
    auto compiled = Regex::Compile(*text, /*literal=*/regex == nullptr);
    if (!compiled.ok()) return Invalid(text_path, compiled.status().message());
    step.regex = std::move(compiled).value();
    ASSIGN_OR_RETURN(const Json* behavior, json_util::Required(value, "behavior", path));
    ASSIGN_OR_RETURN(step.behavior, ParseBehavior(*behavior, Child(path, "behavior")));
    ASSIGN_OR_RETURN(step.invert, json_util::OptionalBool(value, "invert", false, path));
    out->steps_.push_back(std::move(step));
    return absl::OkStatus();
  }
  if (*type == "ByteLevel") {
    // The byte-to-character mapping itself is folded into the BPE model (it
    // works on bytes), so only the prefix space and the regex remain here.
    Step step;
    ASSIGN_OR_RETURN(step.add_prefix_space,
                     json_util::OptionalBool(value, "add_prefix_space", true, path));
    ASSIGN_OR_RETURN(bool use_regex, json_util::OptionalBool(value, "use_regex", true, path));
    if (use_regex) {
      auto compiled = Regex::Compile(kByteLevelPattern, /*literal=*/false);
      if (!compiled.ok()) return compiled.status();
      step.regex = std::move(compiled).value();
    }
    out->steps_.push_back(std::move(step));
    out->has_byte_level_ = true;
    return absl::OkStatus();
  }
  return Invalid(Child(path, "type"),
                 absl::StrCat("unsupported pre-tokenizer type ", json_util::Quote(*type)));
}

absl::Status PreTokenizer::Split(absl::string_view text, std::deque<std::string>* arena,
                                 std::vector<absl::string_view>* pieces) const {
  pieces->clear();
  if (text.empty()) return absl::OkStatus();
  pieces->push_back(text);
  if (steps_.empty()) return absl::OkStatus();
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match_data(
      pcre2_match_data_create(1, nullptr));
  if (match_data == nullptr) return absl::ResourceExhaustedError("out of memory for regex");
  std::vector<absl::string_view> next;
  std::vector<std::pair<size_t, size_t>> matches;
  std::vector<Span> spans;
  for (const Step& step : steps_) {
    next.clear();
    for (absl::string_view piece : *pieces) {
      if (step.add_prefix_space && piece.front() != ' ') {
        arena->push_back(absl::StrCat(" ", piece));
        piece = arena->back();
      }
      if (step.regex == nullptr) {
        next.push_back(piece);
        continue;
      }
      matches.clear();
      RETURN_IF_ERROR(step.regex->FindAll(piece, match_data.get(), &matches));
      spans.clear();
      size_t previous = 0;
      for (const auto& [begin, end] : matches) {
        if (begin > previous) spans.push_back({previous, begin, step.invert});
        spans.push_back({begin, end, !step.invert});
        previous = end;
      }
      if (previous < piece.size()) spans.push_back({previous, piece.size(), step.invert});
      if (step.behavior != SplitBehavior::kIsolated) {
        spans = ApplyBehavior(std::move(spans), step.behavior);
      }
      for (const Span& s : spans) {
        if (s.end > s.begin) next.push_back(piece.substr(s.begin, s.end - s.begin));
      }
    }
    pieces->swap(next);
  }
  return absl::OkStatus();
}

}  // namespace yard::model
