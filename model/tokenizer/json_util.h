// Checked access to nlohmann::json values for the tokenizer's file parsers.
// nlohmann's accessors throw on a type mismatch; these check the type first and
// turn every mismatch into InvalidArgument naming the field ("model.merges[17]"),
// so no exception can leave the parsers.
#ifndef SWITCHYARD_MODEL_TOKENIZER_JSON_UTIL_H_
#define SWITCHYARD_MODEL_TOKENIZER_JSON_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace yard::model::json_util {

using Json = nlohmann::json;

// "model" + "merges" -> "model.merges"; the root path is "".
inline std::string Child(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}
inline std::string Index(absl::string_view path, size_t i) {
  return absl::StrCat(path, "[", i, "]");
}

inline absl::Status Invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(path.empty() ? std::string(what)
                                                 : absl::StrCat(path, ": ", what));
}

// A short quoted excerpt of untrusted text for an error message.
inline std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 40;
  if (s.size() <= kMax) return absl::StrCat("'", s, "'");
  // Cut on a character boundary so the message stays valid UTF-8.
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat("'", s.substr(0, cut), "...'");
}

inline const char* TypeName(const Json& v) { return v.type_name(); }

// The member `key` of object `obj`, or null when absent.
inline const Json* Find(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

inline absl::StatusOr<const Json*> Required(const Json& obj, const char* key,
                                            absl::string_view path) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Invalid(Child(path, key), "missing");
  return v;
}

inline absl::StatusOr<const std::string*> AsString(const Json& v, absl::string_view path) {
  if (!v.is_string()) return Invalid(path, absl::StrCat("expected a string, got ", TypeName(v)));
  return v.get_ptr<const std::string*>();
}

inline absl::StatusOr<const std::string*> RequiredString(const Json& obj, const char* key,
                                                         absl::string_view path) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Invalid(Child(path, key), "missing");
  return AsString(*v, Child(path, key));
}

// An absent or null member reads as `fallback`.
inline absl::StatusOr<bool> OptionalBool(const Json& obj, const char* key, bool fallback,
                                         absl::string_view path) {
  const Json* v = Find(obj, key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_boolean()) {
    return Invalid(Child(path, key), absl::StrCat("expected a boolean, got ", TypeName(*v)));
  }
  return *v->get_ptr<const bool*>();
}

// A token id: an integer in [0, 2^31).
inline absl::StatusOr<int32_t> AsTokenId(const Json& v, absl::string_view path) {
  if (v.is_number_unsigned()) {
    const uint64_t u = *v.get_ptr<const uint64_t*>();
    if (u <= INT32_MAX) return static_cast<int32_t>(u);
  } else if (v.is_number_integer()) {
    const int64_t i = *v.get_ptr<const int64_t*>();
    if (i >= 0 && i <= INT32_MAX) return static_cast<int32_t>(i);
  } else {
    return Invalid(path, absl::StrCat("expected an integer token id, got ", TypeName(v)));
  }
  return Invalid(path, "token id out of range [0, 2^31)");
}

}  // namespace yard::model::json_util

#endif  // SWITCHYARD_MODEL_TOKENIZER_JSON_UTIL_H_
