// Command-line parsing for switchyard's binaries, over Abseil flags: `--help`
// lists the binary's own flags (not Abseil's internal ones) under a usage text.
#ifndef SWITCHYARD_COMMON_CLI_H_
#define SWITCHYARD_COMMON_CLI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace yard {

// Parses argv into the ABSL_FLAGs; returns the positional arguments (argv[0]
// first). `--max-tokens` and `--max_tokens` both set ABSL_FLAG max_tokens. Unknown
// flags print an error and exit(1), as Abseil does.
std::vector<std::string> ParseCommandLine(int argc, char** argv, absl::string_view usage);

// ParseCommandLine, plus `--config FILE` (or --config=FILE): a JSON object whose keys
// are flag names (dashes or underscores) and whose values are strings, numbers or
// booleans, applied before the command line so that flags given there override the
// file. A missing or malformed file prints an error naming it and exits(1).
std::vector<std::string> ParseCommandLineWithConfig(int argc, char** argv,
                                                    absl::string_view usage);

// The "--name=value" arguments a config file's JSON text stands for, in key order;
// InvalidArgument (naming the key) for anything but an object of scalars.
absl::StatusOr<std::vector<std::string>> ConfigFileArguments(absl::string_view json_text);

// Prints "error: <message>" to stderr and returns exit code 1, for `return Fail(..)`.
int Fail(absl::string_view message);

}  // namespace yard

#endif  // SWITCHYARD_COMMON_CLI_H_
