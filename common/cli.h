// Command-line parsing for switchyard's binaries, over Abseil flags: `--help`
// lists the binary's own flags (not Abseil's internal ones) under a usage text.
#ifndef SWITCHYARD_COMMON_CLI_H_
#define SWITCHYARD_COMMON_CLI_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace yard {

// Parses argv into the ABSL_FLAGs; returns the positional arguments (argv[0]
// first). `--max-tokens` and `--max_tokens` both set ABSL_FLAG max_tokens. Unknown
// flags print an error and exit(1), as Abseil does.
std::vector<std::string> ParseCommandLine(int argc, char** argv, absl::string_view usage);

// Prints "error: <message>" to stderr and returns exit code 1, for `return Fail(..)`.
int Fail(absl::string_view message);

}  // namespace yard

#endif  // SWITCHYARD_COMMON_CLI_H_
