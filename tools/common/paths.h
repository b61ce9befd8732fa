// Path conventions shared by the command-line tools.
#ifndef SWITCHYARD_TOOLS_COMMON_PATHS_H_
#define SWITCHYARD_TOOLS_COMMON_PATHS_H_

#include <string>

namespace yard::tools {

// A path given on the command line: absolute paths are kept; relative ones are taken
// from the workspace root under `bazel run` (BUILD_WORKSPACE_DIRECTORY), else from
// the current directory.
std::string ResolveUserPath(const std::string& path);

// Where the tokenizer for a model lives: `flag_value` when set, else the model
// directory when it holds tokenizer.json (as real checkpoints do), else
// $YARD_TOKENIZER_DIR, else data/tokenizers/deepseek-v3 (what `./yard setup` fetches).
std::string FindTokenizerDir(const std::string& flag_value, const std::string& model_dir);

}  // namespace yard::tools

#endif  // SWITCHYARD_TOOLS_COMMON_PATHS_H_
