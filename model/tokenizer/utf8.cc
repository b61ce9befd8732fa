#include "model/tokenizer/utf8.h"

#include <cstdint>

namespace yard::model::utf8 {
namespace {

constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool IsContinuation(uint8_t b) { return b >= 0x80 && b <= 0xBF; }

}  // namespace

Sequence Classify(absl::string_view s, size_t pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + pos;
  const size_t avail = s.size() - pos;
  const uint8_t lead = p[0];
  if (lead < 0x80) return {SequenceKind::kComplete, 1};
  size_t need;
  // The second byte's range is narrower than 80..BF for some leads: that is
  // what excludes overlongs, surrogates and code points above U+10FFFF.
  uint8_t lo = 0x80, hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return {SequenceKind::kInvalid, 1};
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= avail) return {SequenceKind::kTruncated, i};
    const uint8_t b = p[i];
    const bool ok = (i == 1) ? (b >= lo && b <= hi) : IsContinuation(b);
    if (!ok) return {SequenceKind::kInvalid, i};
  }
  return {SequenceKind::kComplete, need};
}

size_t FindInvalid(absl::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII fast path: most tokenizer input is ASCII.
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Sequence seq = Classify(s, pos);
    if (seq.kind != SequenceKind::kComplete) return pos;
    pos += seq.length;
  }
  return absl::string_view::npos;
}

size_t AppendLossy(absl::string_view s, bool final, std::string* out) {
  size_t pos = 0;
  size_t run_start = 0;  // start of the pending run of valid bytes
  while (pos < s.size()) {
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Sequence seq = Classify(s, pos);
    if (seq.kind == SequenceKind::kComplete) {
      pos += seq.length;
      continue;
    }
    out->append(s.data() + run_start, pos - run_start);
    if (seq.kind == SequenceKind::kTruncated && !final) return pos;
    out->append(kReplacement.data(), kReplacement.size());
    pos += seq.length;
    run_start = pos;
  }
  out->append(s.data() + run_start, pos - run_start);
  return pos;
}

char32_t DecodeAt(absl::string_view s, size_t* pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + *pos;
  const uint8_t lead = p[0];
  if (lead < 0x80) {
    *pos += 1;
    return lead;
  }
  if (lead < 0xE0) {
    *pos += 2;
    return (char32_t{lead & 0x1Fu} << 6) | (p[1] & 0x3Fu);
  }
  if (lead < 0xF0) {
    *pos += 3;
    return (char32_t{lead & 0x0Fu} << 12) | (char32_t{p[1] & 0x3Fu} << 6) | (p[2] & 0x3Fu);
  }
  *pos += 4;
  return (char32_t{lead & 0x07u} << 18) | (char32_t{p[1] & 0x3Fu} << 12) |
         (char32_t{p[2] & 0x3Fu} << 6) | (p[3] & 0x3Fu);
}

void AppendCodePoint(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace yard::model::utf8
