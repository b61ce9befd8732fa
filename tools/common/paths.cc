#include "tools/common/paths.h"

#include <cstdlib>
#include <filesystem>

namespace yard::tools {

std::string ResolveUserPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  if (workspace != nullptr && workspace[0] != '\0') return std::string(workspace) + "/" + path;
  return path;
}

std::string FindTokenizerDir(const std::string& flag_value, const std::string& model_dir) {
  if (!flag_value.empty()) return ResolveUserPath(flag_value);
  std::error_code ignored;
  if (!model_dir.empty() &&
      std::filesystem::exists(model_dir + "/tokenizer.json", ignored)) {
    return model_dir;
  }
  const char* env = std::getenv("YARD_TOKENIZER_DIR");
  if (env != nullptr && env[0] != '\0') return ResolveUserPath(env);
  return ResolveUserPath("data/tokenizers/deepseek-v3");
}

}  // namespace yard::tools
