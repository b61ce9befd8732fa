// generate: greedy generation with the FP32 reference forward, streamed to stdout.
//
//   generate --model DIR (--prompt TEXT | --chat TEXT) --max-tokens N
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "common/status_macros.h"
#include "model/reference/load.h"
#include "model/tokenizer/chat_template.h"
#include "model/tokenizer/tokenizer.h"
#include "tools/common/paths.h"

ABSL_FLAG(std::string, model, "", "Checkpoint directory (config.json + *.safetensors).");
ABSL_FLAG(std::string, prompt, "", "Raw prompt text, tokenized with BOS when the "
                                   "tokenizer config asks for it.");
ABSL_FLAG(std::string, chat, "", "A user message, rendered in DeepSeek-V3's chat format "
                                 "with the assistant turn opened (instead of --prompt).");
ABSL_FLAG(std::string, system, "", "With --chat: a system prompt.");
ABSL_FLAG(int32_t, max_tokens, 32, "Tokens to generate at most (stops earlier at EOS).");
ABSL_FLAG(std::string, tokenizer, "",
          "Tokenizer directory; default: the model directory if it has tokenizer.json, "
          "else $YARD_TOKENIZER_DIR, else data/tokenizers/deepseek-v3.");
ABSL_FLAG(bool, stats, true, "Print load time and tokens/s to stderr at the end.");

namespace yard::tools {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int32_t Argmax(const std::vector<float>& logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > logits[best]) best = i;  // ties keep the lower id
  }
  return best;
}

absl::Status Run() {
  const std::string model_dir = ResolveUserPath(absl::GetFlag(FLAGS_model));
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  const std::string chat = absl::GetFlag(FLAGS_chat);
  const int32_t max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  if (prompt.empty() == chat.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --chat");
  }
  if (max_tokens <= 0) return absl::InvalidArgumentError("--max-tokens must be > 0");

  const Clock::time_point load_start = Clock::now();
  ASSIGN_OR_RETURN(auto tokenizer, model::Tokenizer::Load(FindTokenizerDir(
                                       absl::GetFlag(FLAGS_tokenizer), model_dir)));
  ASSIGN_OR_RETURN(auto model, model::LoadReferenceModel(model_dir));
  const double load_seconds = SecondsSince(load_start);

  std::vector<model::TokenId> tokens;
  if (!chat.empty()) {
    std::vector<model::ChatMessage> messages;
    if (!absl::GetFlag(FLAGS_system).empty()) {
      messages.push_back({"system", absl::GetFlag(FLAGS_system)});
    }
    messages.push_back({"user", chat});
    ASSIGN_OR_RETURN(std::string rendered,
                     model::RenderDeepseekV3Chat(messages, /*add_generation_prompt=*/true));
    // The rendered text carries BOS itself.
    ASSIGN_OR_RETURN(tokens, tokenizer->Encode(rendered, /*add_special_tokens=*/false));
  } else {
    ASSIGN_OR_RETURN(tokens, tokenizer->Encode(prompt, /*add_special_tokens=*/true));
  }
  if (tokens.empty()) return absl::InvalidArgumentError("the prompt encodes to no tokens");

  model::ReferenceSession session = model->NewSession();
  model::StreamDecoder stream(*tokenizer, /*skip_special_tokens=*/true);
  const Clock::time_point prefill_start = Clock::now();
  ASSIGN_OR_RETURN(model::ForwardOutput out, model->Forward(session, tokens));
  const double prefill_seconds = SecondsSince(prefill_start);

  const Clock::time_point decode_start = Clock::now();
  int generated = 0;
  std::string finish_reason = "length";
  while (generated < max_tokens) {
    const int32_t next = Argmax(out.logits);
    ++generated;
    if (tokenizer->eos_id() && next == *tokenizer->eos_id()) {
      finish_reason = "eos";
      break;
    }
    std::cout << stream.Next(next) << std::flush;
    if (generated == max_tokens) break;
    ASSIGN_OR_RETURN(out, model->Forward(session, {next}));
  }
  std::cout << stream.Flush() << "\n" << std::flush;
  if (absl::GetFlag(FLAGS_stats)) {
    const double decode_seconds = SecondsSince(decode_start);
    std::cerr << absl::StrFormat(
        "[%d prompt tokens, %d generated (%s); load %.2fs, prefill %.2fs (%.1f tok/s), "
        "decode %.1f tok/s, reference forward]\n",
        tokens.size(), generated, finish_reason, load_seconds, prefill_seconds,
        tokens.size() / prefill_seconds, generated / decode_seconds);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace yard::tools

int main(int argc, char** argv) {
  yard::ParseCommandLine(
      argc, argv,
      "Greedy generation with the FP32 reference forward, streamed to stdout.\n"
      "usage: generate --model DIR (--prompt TEXT | --chat TEXT) [--max-tokens N]");
  absl::Status status = yard::tools::Run();
  if (!status.ok()) return yard::Fail(status.ToString());
  return 0;
}
