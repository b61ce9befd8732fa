#include "common/cli.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace yard {

std::vector<std::string> ParseCommandLine(int argc, char** argv, absl::string_view usage) {
  absl::FlagsUsageConfig config;
  // Abseil's own flags (--flagfile, --fromenv, ...) would bury ours in --help.
  config.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  // Abseil allows one usage message per process (a test may parse twice).
  static const bool usage_set = [&] {
    absl::SetProgramUsageMessage(
        absl::StrCat(usage, "\n(Flags may be spelled with dashes or underscores.)"));
    return true;
  }();
  (void)usage_set;
  // Abseil only knows --max_tokens; our documented spelling is --max-tokens.
  std::vector<std::string> normalized(argv, argv + argc);
  for (size_t i = 1; i < normalized.size(); ++i) {
    std::string& arg = normalized[i];
    if (arg == "--") break;
    if (arg.size() < 3 || arg[0] != '-' || arg[1] != '-') continue;
    const size_t name_end = std::min(arg.find('='), arg.size());
    std::replace(arg.begin() + 2, arg.begin() + name_end, '-', '_');
  }
  std::vector<char*> pointers;
  for (std::string& arg : normalized) pointers.push_back(arg.data());
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(pointers.size()), pointers.data());
  return std::vector<std::string>(positional.begin(), positional.end());
}

absl::StatusOr<std::vector<std::string>> ConfigFileArguments(absl::string_view json_text) {
  const nlohmann::json config =
      nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError("config file: expected a JSON object of flag values");
  }
  std::vector<std::string> args;
  for (const auto& [key, value] : config.items()) {
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_boolean()) {
      text = value.get<bool>() ? "true" : "false";
    } else if (value.is_number_integer()) {
      text = std::to_string(value.get<int64_t>());
    } else if (value.is_number()) {
      std::ostringstream out;
      out << value.get<double>();
      text = out.str();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("config file: flag '", key, "' must be a string, number or boolean"));
    }
    if (key.empty() || key == "config") {
      return absl::InvalidArgumentError(absl::StrCat("config file: bad key '", key, "'"));
    }
    args.push_back(absl::StrCat("--", key, "=", text));
  }
  return args;
}

std::vector<std::string> ParseCommandLineWithConfig(int argc, char** argv,
                                                    absl::string_view usage) {
  std::vector<std::string> args(argv, argv + argc);
  std::string path;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--config" && i + 1 < args.size()) {
      path = args[i + 1];
      args.erase(args.begin() + i, args.begin() + i + 2);
      break;
    }
    if (absl::StartsWith(args[i], "--config=")) {
      path = args[i].substr(9);
      args.erase(args.begin() + i);
      break;
    }
  }
  if (!path.empty()) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      std::cerr << "error: cannot read config file " << path << "\n";
      std::exit(1);
    }
    absl::StatusOr<std::vector<std::string>> from_file = ConfigFileArguments(text.str());
    if (!from_file.ok()) {
      std::cerr << "error: " << path << ": " << from_file.status().message() << "\n";
      std::exit(1);
    }
    args.insert(args.begin() + 1, from_file->begin(), from_file->end());
  }
  std::vector<char*> pointers;
  for (std::string& arg : args) pointers.push_back(arg.data());
  return ParseCommandLine(static_cast<int>(pointers.size()), pointers.data(),
                          absl::StrCat(usage, "\n--config FILE: a JSON object of flag values; "
                                              "flags on the command line override it."));
}

int Fail(absl::string_view message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

}  // namespace yard
