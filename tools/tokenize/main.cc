// tokenize: DeepSeek tokenizer on JSON lines, for scripts and for checking the
// C++ tokenizer against others.
//
//   encode (default): each input line {"text": "..."} or
//     {"messages": [...], "add_generation_prompt": true} (rendered with the
//     DeepSeek-V3 chat template, which already adds BOS) -> {"ids": [...]}
//   --decode: each input line {"ids": [...]} -> {"text": "..."}
//
// Exactly one output line per input line, in order: a line that cannot be
// handled (not JSON, wrong fields, invalid UTF-8) gives {"error": "line N: ..."}
// and processing continues. The exit status is 1 if any line failed or the
// tokenizer could not be loaded, else 0.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "model/tokenizer/chat_template.h"
#include "model/tokenizer/tokenizer.h"
#include "tools/common/paths.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, tokenizer, "",
          "Directory with tokenizer.json and tokenizer_config.json. Default: $YARD_TOKENIZER_DIR "
          "if set, else data/tokenizers/deepseek-v3 under the workspace "
          "($BUILD_WORKSPACE_DIRECTORY under `bazel run`, else the current directory).");
ABSL_FLAG(bool, add_special_tokens, true,
          "Add BOS/EOS as tokenizer_config.json asks (add_bos_token, add_eos_token), as "
          "transformers does by default. Ignored for \"messages\" lines, whose template adds BOS.");
ABSL_FLAG(bool, split_special_tokens, false,
          "Encode special-token strings found in the text (e.g. <｜end▁of▁sentence｜>) as "
          "plain text instead of as their ids.");
ABSL_FLAG(bool, decode, false,
          "Decode instead: read {\"ids\": [...]} lines and write {\"text\": \"...\"} lines.");
ABSL_FLAG(bool, skip_special_tokens, false, "With --decode: leave special tokens out of the text.");

namespace yard {
namespace {

using Json = nlohmann::json;
using model::TokenId;
using model::Tokenizer;

// Serializes without throwing: invalid UTF-8 in a message becomes U+FFFD.
std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<Json> EncodeLine(const Tokenizer& tokenizer, const Json& request) {
  model::EncodeOptions options;
  options.add_special_tokens = absl::GetFlag(FLAGS_add_special_tokens);
  options.split_special_tokens = absl::GetFlag(FLAGS_split_special_tokens);
  std::string text;
  if (const auto it = request.find("text"); it != request.end()) {
    if (!it->is_string()) return absl::InvalidArgumentError("\"text\" must be a string");
    text = *it->get_ptr<const std::string*>();
  } else if (const auto m = request.find("messages"); m != request.end()) {
    bool add_generation_prompt = false;
    if (const auto g = request.find("add_generation_prompt"); g != request.end()) {
      if (!g->is_boolean()) {
        return absl::InvalidArgumentError("\"add_generation_prompt\" must be a boolean");
      }
      add_generation_prompt = *g->get_ptr<const bool*>();
    }
    auto messages = model::ChatMessagesFromJson(Dump(*m));
    if (!messages.ok()) return messages.status();
    const std::optional<TokenId> bos = tokenizer.bos_id();
    auto rendered =
        model::RenderDeepseekV3Chat(*messages, add_generation_prompt,
                                    bos ? tokenizer.IdToToken(*bos).value_or("") : std::string());
    if (!rendered.ok()) return rendered.status();
    text = *std::move(rendered);
    options.add_special_tokens = false;
  } else {
    return absl::InvalidArgumentError("expected an object with \"text\" or \"messages\"");
  }
  auto ids = tokenizer.Encode(text, options);
  if (!ids.ok()) return ids.status();
  return Json{{"ids", *ids}};
}

absl::StatusOr<Json> DecodeLine(const Tokenizer& tokenizer, const Json& request) {
  const auto it = request.find("ids");
  if (it == request.end() || !it->is_array()) {
    return absl::InvalidArgumentError("expected an object with an \"ids\" array");
  }
  std::vector<TokenId> ids;
  for (const Json& id : *it) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= tokenizer.vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"ids\" must hold integers in [0, ", tokenizer.vocab_size(), ")"));
    }
    ids.push_back(static_cast<TokenId>(id.get<int64_t>()));
  }
  return Json{{"text", tokenizer.Decode(ids, absl::GetFlag(FLAGS_skip_special_tokens))}};
}

int Run() {
  const std::string dir = tools::FindTokenizerDir(absl::GetFlag(FLAGS_tokenizer), "");
  auto tokenizer = Tokenizer::Load(dir);
  if (!tokenizer.ok()) {
    return Fail(absl::StrCat("loading tokenizer from ", dir, ": ", tokenizer.status().ToString(),
                             " (run `./yard setup` to fetch the DeepSeek-V3 files)"));
  }
  const bool decode = absl::GetFlag(FLAGS_decode);
  bool any_failed = false;
  std::string line;
  for (int64_t line_number = 1; std::getline(std::cin, line); ++line_number) {
    const Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    absl::StatusOr<Json> response =
        request.is_discarded() ? absl::InvalidArgumentError("not valid JSON")
        : !request.is_object() ? absl::InvalidArgumentError("expected a JSON object")
        : decode               ? DecodeLine(**tokenizer, request)
                               : EncodeLine(**tokenizer, request);
    if (!response.ok()) {
      any_failed = true;
      response =
          Json{{"error", absl::StrCat("line ", line_number, ": ", response.status().message())}};
    }
    std::cout << Dump(*response) << "\n";
  }
  std::cout.flush();
  return any_failed ? 1 : 0;
}

}  // namespace
}  // namespace yard

int main(int argc, char** argv) {
  const std::vector<std::string> args = yard::ParseCommandLine(
      argc, argv,
      "Usage: tokenize [flags] < in.jsonl > out.jsonl\n"
      "Encodes {\"text\": ...} or {\"messages\": [...], \"add_generation_prompt\": bool} lines to "
      "{\"ids\": [...]} lines (or, with --decode, {\"ids\": [...]} to {\"text\": ...}). One "
      "output line per input line; a bad line yields {\"error\": ...} and exit status 1.");
  if (args.size() > 1) return yard::Fail(absl::StrCat("unexpected argument: ", args[1]));
  return yard::Run();
}
