#include "common/cli.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gtest/gtest.h"

ABSL_FLAG(int32_t, max_tokens, 1, "test flag");
ABSL_FLAG(std::string, some_text, "", "test flag");

namespace yard {
namespace {

TEST(CliTest, DashesAndUnderscoresSetTheSameFlag) {
  std::vector<std::string> args = {"prog", "--max-tokens=7", "--some-text", "a-b--c",
                                   "positional", "--", "--not-a-flag"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::vector<std::string> rest =
      ParseCommandLine(static_cast<int>(argv.size()), argv.data(), "usage");
  EXPECT_EQ(absl::GetFlag(FLAGS_max_tokens), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_some_text), "a-b--c");  // values are left alone
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[1], "positional");
  EXPECT_EQ(rest[2], "--not-a-flag");  // after "--" nothing is a flag
}

}  // namespace
}  // namespace yard
