// A random-weight checkpoint of a preset, written for a test (as `make_model` would,
// with the repository's DeepSeek-V3 tokenizer, a data dependency of the test).
#ifndef SWITCHYARD_TESTS_UTIL_TEST_MODEL_H_
#define SWITCHYARD_TESTS_UTIL_TEST_MODEL_H_

#include <string>

#include "absl/status/status.h"

namespace yard::testing {

inline constexpr const char* kTestTokenizerDir = "data/tokenizers/deepseek-v3";

// Writes `preset` (e.g. "tiny-v3") to `dir`, replacing what is there.
absl::Status WriteTestModel(const std::string& preset, const std::string& dir);

}  // namespace yard::testing

#endif  // SWITCHYARD_TESTS_UTIL_TEST_MODEL_H_
