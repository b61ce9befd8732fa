// generate: greedy generation, streamed to stdout, with the fast CPU engine
// (default) or the FP32 reference forward.
//
//   generate --model DIR (--prompt TEXT | --chat TEXT) --max-tokens N [--engine E]
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
#include "engine/local_engine.h"
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
ABSL_FLAG(std::string, engine, "fast",
          "fast: the CPU engine (kernels, paged latent cache, continuous batching); "
          "reference: the FP32 oracle (plain loops; FP32 copies of every weight).");
ABSL_FLAG(bool, deterministic, false,
          "With --engine=fast: FP32 activations everywhere, so the logits do not depend "
          "on batch or thread count. Default mode rounds prefill activations to BF16 "
          "for speed.");

ABSL_FLAG(std::string, dispatch_dtype, "fp32",
          "With --engine=fast: round the routed experts' inputs as a cluster's dispatch "
          "in this dtype would (fp32, bf16, fp8), to reproduce a cluster's output "
          "exactly in one process.");

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

struct Outcome {
  int generated = 0;
  std::string finish_reason;
  double load_seconds = 0, prefill_seconds = 0, decode_seconds = 0;
};

absl::StatusOr<Outcome> RunReference(const std::string& model_dir,
                                     const model::Tokenizer& tokenizer,
                                     const std::vector<model::TokenId>& prompt,
                                     int32_t max_tokens) {
  Outcome o;
  const Clock::time_point load_start = Clock::now();
  ASSIGN_OR_RETURN(auto model, model::LoadReferenceModel(model_dir));
  o.load_seconds = SecondsSince(load_start);

  model::ReferenceSession session = model->NewSession();
  model::StreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
  const Clock::time_point prefill_start = Clock::now();
  ASSIGN_OR_RETURN(model::ForwardOutput out, model->Forward(session, prompt));
  o.prefill_seconds = SecondsSince(prefill_start);

  const Clock::time_point decode_start = Clock::now();
  o.finish_reason = "length";
  while (o.generated < max_tokens) {
    const int32_t next = Argmax(out.logits);
    ++o.generated;
    if (tokenizer.eos_id() && next == *tokenizer.eos_id()) {
      o.finish_reason = "eos";
      break;
    }
    std::cout << stream.Next(next) << std::flush;
    if (o.generated == max_tokens) break;
    ASSIGN_OR_RETURN(out, model->Forward(session, {next}));
  }
  std::cout << stream.Flush();
  o.decode_seconds = SecondsSince(decode_start);
  return o;
}

absl::StatusOr<Outcome> RunFast(const std::string& model_dir, const model::Tokenizer& tokenizer,
                                const std::vector<model::TokenId>& prompt, int32_t max_tokens) {
  Outcome o;
  const Clock::time_point load_start = Clock::now();
  engine::LocalEngineOptions options;
  options.deterministic = absl::GetFlag(FLAGS_deterministic);
  ASSIGN_OR_RETURN(options.dispatch_precision,
                   engine::ParseDispatchPrecision(absl::GetFlag(FLAGS_dispatch_dtype)));
  options.max_context = static_cast<int64_t>(prompt.size()) + max_tokens + 1;
  ASSIGN_OR_RETURN(auto local, engine::LocalEngine::Open(model_dir, &tokenizer, options));
  o.load_seconds = SecondsSince(load_start);

  engine::Request request;
  request.id = "generate";
  request.prompt.assign(prompt.begin(), prompt.end());
  request.sampling.temperature = 0;  // greedy
  request.max_tokens = max_tokens;
  absl::Status failure;
  const Clock::time_point start = Clock::now();
  Clock::time_point first_token;
  RETURN_IF_ERROR(local->engine().Submit(request, [&](const engine::StreamEvent& event) {
    if (event.token) {
      if (o.generated++ == 0) first_token = Clock::now();
    }
    std::cout << event.text << std::flush;
    if (event.finish) {
      failure = event.status;
      switch (*event.finish) {
        case engine::FinishReason::kEos: o.finish_reason = "eos"; break;
        case engine::FinishReason::kLength: o.finish_reason = "length"; break;
        case engine::FinishReason::kStop: o.finish_reason = "stop"; break;
        case engine::FinishReason::kCancelled: o.finish_reason = "cancelled"; break;
        case engine::FinishReason::kError: o.finish_reason = "error"; break;
      }
    }
  }));
  local->engine().RunUntilIdle();
  RETURN_IF_ERROR(failure);
  // The first token comes out of the prefill step.
  o.prefill_seconds = std::chrono::duration<double>(first_token - start).count();
  o.decode_seconds = SecondsSince(first_token);
  return o;
}

absl::Status Run() {
  const std::string model_dir = ResolveUserPath(absl::GetFlag(FLAGS_model));
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  const std::string chat = absl::GetFlag(FLAGS_chat);
  const std::string engine_name = absl::GetFlag(FLAGS_engine);
  const int32_t max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  if (prompt.empty() == chat.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --chat");
  }
  if (max_tokens <= 0) return absl::InvalidArgumentError("--max-tokens must be > 0");
  if (engine_name != "fast" && engine_name != "reference") {
    return absl::InvalidArgumentError("--engine must be fast or reference");
  }

  ASSIGN_OR_RETURN(auto tokenizer, model::Tokenizer::Load(FindTokenizerDir(
                                       absl::GetFlag(FLAGS_tokenizer), model_dir)));
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

  ASSIGN_OR_RETURN(Outcome o, engine_name == "fast"
                                  ? RunFast(model_dir, *tokenizer, tokens, max_tokens)
                                  : RunReference(model_dir, *tokenizer, tokens, max_tokens));
  std::cout << "\n" << std::flush;
  if (absl::GetFlag(FLAGS_stats)) {
    std::cerr << absl::StrFormat(
        "[%d prompt tokens, %d generated (%s); load %.2fs, prefill %.3fs (%.1f tok/s), "
        "decode %.1f tok/s, %s engine]\n",
        tokens.size(), o.generated, o.finish_reason, o.load_seconds, o.prefill_seconds,
        tokens.size() / o.prefill_seconds,
        o.generated > 1 ? (o.generated - 1) / o.decode_seconds : 0.0, engine_name);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace yard::tools

int main(int argc, char** argv) {
  yard::ParseCommandLine(
      argc, argv,
      "Greedy generation, streamed to stdout, with the fast CPU engine or the FP32\n"
      "reference forward.\n"
      "usage: generate --model DIR (--prompt TEXT | --chat TEXT) [--max-tokens N] "
      "[--engine fast|reference] [--deterministic] [--dispatch-dtype fp32|bf16|fp8]");
  absl::Status status = yard::tools::Run();
  if (!status.ok()) return yard::Fail(status.ToString());
  return 0;
}
