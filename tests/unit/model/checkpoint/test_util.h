// Helpers shared by the checkpoint tests: scratch directories and raw file bytes.
#ifndef SWITCHYARD_TESTS_UNIT_MODEL_CHECKPOINT_TEST_UTIL_H_
#define SWITCHYARD_TESTS_UNIT_MODEL_CHECKPOINT_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace yard::model::testing {

// A fresh directory under $TEST_TMPDIR named after `name`.
inline std::string ScratchDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir =
      std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / ("ckpt_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// A safetensors file image: u64 length of `header` (or `length_override`), the header
// text, then `data`.
inline std::string FileImage(const std::string& header, const std::string& data = "",
                             int64_t length_override = -1) {
  const uint64_t n =
      length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

}  // namespace yard::model::testing

#endif  // SWITCHYARD_TESTS_UNIT_MODEL_CHECKPOINT_TEST_UTIL_H_
