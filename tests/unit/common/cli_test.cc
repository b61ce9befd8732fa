#include "common/cli.h"

#include <cstdlib>
#include <fstream>
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

TEST(CliTest, ConfigFileSetsFlagsAndTheCommandLineWins) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/flags.json";
  std::ofstream(path) << R"({"max-tokens": 11, "some_text": "from file"})";
  std::vector<std::string> args = {"prog", "--some-text=cli", "--config", path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ParseCommandLineWithConfig(static_cast<int>(argv.size()), argv.data(), "usage");
  EXPECT_EQ(absl::GetFlag(FLAGS_max_tokens), 11);
  EXPECT_EQ(absl::GetFlag(FLAGS_some_text), "cli");
}

TEST(CliTest, ConfigFileArgumentsRejectWhatIsNotAnObjectOfScalars) {
  auto ok = ConfigFileArguments(R"({"a": "x", "b": true, "c": 3, "d": 0.5})");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, (std::vector<std::string>{"--a=x", "--b=true", "--c=3", "--d=0.5"}));
  for (const char* bad : {"", "[1]", "3", "{\"a\": [1]}", "{\"a\": {}}", "{\"a\": null}",
                          "{\"config\": \"x\"}", "{\"\": 1}", "{\"a\": 1"}) {
    auto result = ConfigFileArguments(bad);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace yard
