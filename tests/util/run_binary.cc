#include "tests/util/run_binary.h"

#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace yard::testing {

std::string TestTmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr && dir[0] != '\0' ? dir : "/tmp";
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

RunResult RunBinary(const std::string& command, const std::string& input) {
  static std::atomic<int> counter{0};
  const std::string base = TestTmpDir() + "/run_binary_" + std::to_string(counter++);
  {
    std::ofstream in(base + ".in", std::ios::binary);
    in << input;
  }
  const std::string line =
      command + " <" + base + ".in >" + base + ".out 2>" + base + ".err";
  const int status = std::system(line.c_str());
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadWholeFile(base + ".out");
  result.err = ReadWholeFile(base + ".err");
  return result;
}

}  // namespace yard::testing
