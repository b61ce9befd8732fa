// Runs one of our binaries from a test (through /bin/sh) and captures what it printed.
#ifndef SWITCHYARD_TESTS_UTIL_RUN_BINARY_H_
#define SWITCHYARD_TESTS_UTIL_RUN_BINARY_H_

#include <string>

namespace yard::testing {

struct RunResult {
  int exit_code = -1;  // the process's exit status; -1 if it did not exit normally
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs `command` (a shell command line, e.g. "tools/tokenize/tokenize --help") with
// `input` on stdin; the files it uses live in $TEST_TMPDIR.
RunResult RunBinary(const std::string& command, const std::string& input = "");

// The whole contents of a file ("" if it cannot be read).
std::string ReadWholeFile(const std::string& path);

// $TEST_TMPDIR, or /tmp outside Bazel.
std::string TestTmpDir();

}  // namespace yard::testing

#endif  // SWITCHYARD_TESTS_UTIL_RUN_BINARY_H_
