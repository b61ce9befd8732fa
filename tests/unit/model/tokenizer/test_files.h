// Locates the files the tokenizer tests read: the real DeepSeek-V3 tokenizer
// (data/, fetched by `./yard setup`) and this package's fixtures, both under the
// runfiles root, which is the test's working directory.
#ifndef SWITCHYARD_TESTS_UNIT_MODEL_TOKENIZER_TEST_FILES_H_
#define SWITCHYARD_TESTS_UNIT_MODEL_TOKENIZER_TEST_FILES_H_

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "model/tokenizer/tokenizer.h"

namespace yard::model::testing {

inline constexpr char kDeepseekV3Dir[] = "data/tokenizers/deepseek-v3";
inline constexpr char kTestDataDir[] = "tests/unit/model/tokenizer/testdata";

// The file's contents; "" (with a test failure) when it cannot be read.
inline std::string ReadTestFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// The real DeepSeek-V3 tokenizer, loaded once per test binary. Null (with a
// fatal message) when the files are missing.
inline const Tokenizer* DeepseekV3() {
  static const Tokenizer* const tokenizer = [] {
    const std::string probe = std::string(kDeepseekV3Dir) + "/tokenizer.json";
    if (!std::ifstream(probe).good()) {
      ADD_FAILURE() << probe << " is missing: run `./yard setup` to fetch the tokenizer files";
      return static_cast<Tokenizer*>(nullptr);
    }
    auto loaded = Tokenizer::Load(kDeepseekV3Dir);
    if (!loaded.ok()) {
      ADD_FAILURE() << "loading " << kDeepseekV3Dir << ": " << loaded.status();
      return static_cast<Tokenizer*>(nullptr);
    }
    return loaded->release();
  }();
  return tokenizer;
}

}  // namespace yard::model::testing

#endif  // SWITCHYARD_TESTS_UNIT_MODEL_TOKENIZER_TEST_FILES_H_
