#include "coordinator/request_validation.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/tokenizer/chat_template.h"

namespace yard::coordinator {
namespace {

absl::Status Invalid(const char* field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("GenerateRequest.", field, ": ", what));
}

absl::Status ValidateChat(const generation::ChatInput& chat, const char* prefix) {
  if (chat.messages().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "chat.messages: must not be empty"));
  }
  for (int i = 0; i < chat.messages_size(); ++i) {
    const std::string& role = chat.messages(i).role();
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "chat.messages[", i, "].role: \"", role,
          "\" is not one of \"system\", \"user\", \"assistant\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const generation::ChatInput& chat,
                                                const model::Tokenizer& tokenizer,
                                                const char* prefix) {
  std::vector<model::ChatMessage> messages;
  for (const generation::ChatMessage& message : chat.messages()) {
    model::ChatMessage converted;
    converted.role = message.role();
    converted.content = message.content();
    messages.push_back(std::move(converted));
  }
  std::string bos;
  if (tokenizer.add_bos_token() && tokenizer.bos_id()) {
    bos = tokenizer.IdToToken(*tokenizer.bos_id()).value_or("");
  }
  absl::StatusOr<std::string> text =
      model::RenderDeepseekV3Chat(messages, /*add_generation_prompt=*/true, bos);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "chat: ", std::string(text.status().message())));
  }
  // The rendered text already starts with BOS.
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(*text, false);
  if (!ids.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "chat: ", std::string(ids.status().message())));
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> EncodeText(const std::string& text,
                                                const model::Tokenizer& tokenizer,
                                                const char* prefix) {
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text, true);
  if (!ids.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "text: ", std::string(ids.status().message())));
  }
  return ids;
}

}  // namespace

absl::Status ValidateGenerateRequest(const generation::GenerateRequest& request,
                                     const RequestLimits& limits) {
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat("longer than ", kMaxRequestIdBytes, " bytes"));
  }
  switch (request.prompt_case()) {
    case generation::GenerateRequest::PROMPT_NOT_SET:
      return Invalid("prompt", "one of text, token_ids or chat is required");
    case generation::GenerateRequest::kText:
      if (request.text().empty()) return Invalid("text", "must not be empty");
      break;
    case generation::GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      if (ids.empty()) return Invalid("token_ids.ids", "must not be empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
          return absl::InvalidArgumentError(
              absl::StrCat("GenerateRequest.token_ids.ids[", i, "]: ", ids[i],
                           " is outside the vocabulary [0, ", limits.vocab_size, ")"));
        }
      }
      break;
    }
    case generation::GenerateRequest::kChat: {
      absl::Status chat = ValidateChat(request.chat(), "GenerateRequest.");
      if (!chat.ok()) return chat;
      break;
    }
  }
  if (request.max_tokens() <= 0) {
    return Invalid("max_tokens", absl::StrCat("must be > 0, got ", request.max_tokens()));
  }
  if (request.max_tokens() >= limits.max_context) {
    return Invalid("max_tokens", absl::StrCat(request.max_tokens(),
                                              " leaves no room for a prompt in the maximum "
                                              "context of ",
                                              limits.max_context, " tokens"));
  }
  const generation::SamplingParams& sampling = request.sampling();
  if (!std::isfinite(sampling.temperature()) || sampling.temperature() < 0) {
    return Invalid("sampling.temperature",
                   absl::StrCat("must be finite and >= 0, got ", sampling.temperature()));
  }
  if (!(sampling.top_p() >= 0 && sampling.top_p() <= 1)) {  // also rejects NaN
    return Invalid("sampling.top_p",
                   absl::StrCat("must be in (0, 1] (0 means 1), got ", sampling.top_p()));
  }
  if (sampling.top_k() < 0) {
    return Invalid("sampling.top_k", absl::StrCat("must be >= 0, got ", sampling.top_k()));
  }
  if (request.logprobs() < 0 || request.logprobs() > kMaxLogprobs) {
    return Invalid("logprobs", absl::StrCat("must be in [0, ", kMaxLogprobs, "], got ",
                                            request.logprobs()));
  }
  if (request.stop_size() > kMaxStopStrings) {
    return Invalid("stop", absl::StrCat("at most ", kMaxStopStrings, " strings, got ",
                                        request.stop_size()));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& stop = request.stop(i);
    if (stop.empty() || stop.size() > kMaxStopBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("GenerateRequest.stop[", i, "]: must be 1 to ", kMaxStopBytes,
                       " bytes, got ", stop.size()));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckContext(int64_t prompt_tokens, int32_t max_tokens,
                          const RequestLimits& limits) {
  if (prompt_tokens + max_tokens > limits.max_context) {
    return Invalid("max_tokens",
                   absl::StrCat("the prompt (", prompt_tokens, " tokens) plus max_tokens (",
                                max_tokens, ") exceeds the maximum context of ",
                                limits.max_context, " tokens"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> PromptTokens(const generation::GenerateRequest& request,
                                                  const model::Tokenizer& tokenizer) {
  switch (request.prompt_case()) {
    case generation::GenerateRequest::kTokenIds:
      return std::vector<int32_t>(request.token_ids().ids().begin(),
                                  request.token_ids().ids().end());
    case generation::GenerateRequest::kText:
      return EncodeText(request.text(), tokenizer, "GenerateRequest.");
    case generation::GenerateRequest::kChat:
      return EncodeChat(request.chat(), tokenizer, "GenerateRequest.");
    case generation::GenerateRequest::PROMPT_NOT_SET:
      break;
  }
  return Invalid("prompt", "one of text, token_ids or chat is required");
}

absl::StatusOr<std::vector<int32_t>> TokenizeInput(const generation::TokenizeRequest& request,
                                                   const model::Tokenizer& tokenizer) {
  switch (request.input_case()) {
    case generation::TokenizeRequest::kText:
      return EncodeText(request.text(), tokenizer, "TokenizeRequest.");
    case generation::TokenizeRequest::kChat: {
      absl::Status chat = ValidateChat(request.chat(), "TokenizeRequest.");
      if (!chat.ok()) return chat;
      return EncodeChat(request.chat(), tokenizer, "TokenizeRequest.");
    }
    case generation::TokenizeRequest::INPUT_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("TokenizeRequest.input: text or chat is required");
}

cluster::RunRequest MakeRunRequest(const generation::GenerateRequest& request,
                                   uint64_t request_id, const std::vector<int32_t>& prompt) {
  cluster::RunRequest run;
  run.set_request_id(request_id);
  run.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  run.set_max_tokens(request.max_tokens());
  cluster::SamplingSpec* sampling = run.mutable_sampling();
  sampling->set_temperature(request.sampling().temperature());
  sampling->set_top_k(request.sampling().top_k());
  sampling->set_top_p(request.sampling().top_p() == 0 ? 1.0f : request.sampling().top_p());
  // Without a seed the coordinator picks one per request, so a resumed request keeps it.
  sampling->set_seed(request.sampling().has_seed() ? request.sampling().seed()
                                                   : request_id * 0x9E3779B97F4A7C15ull);
  for (const std::string& stop : request.stop()) run.add_stop(stop);
  run.set_ignore_eos(request.ignore_eos());
  run.set_logprobs(request.logprobs());
  return run;
}

std::optional<generation::FinishReason> MapFinishReason(const std::string& reason) {
  if (reason == "stop" || reason == "eos") return generation::FINISH_REASON_STOP;
  if (reason == "length") return generation::FINISH_REASON_LENGTH;
  if (reason == "cancelled") return generation::FINISH_REASON_CANCELLED;
  return std::nullopt;
}

generation::GenerateResponse ToGenerateResponse(const cluster::RunResponse& step) {
  generation::GenerateResponse response;
  response.mutable_token_ids()->CopyFrom(step.token_ids());
  response.set_text(step.text());
  for (const cluster::StepLogprobs& logprobs : step.logprobs()) {
    generation::Logprobs* out = response.add_logprobs();
    out->mutable_chosen()->set_id(logprobs.chosen().id());
    out->mutable_chosen()->set_logprob(logprobs.chosen().logprob());
    for (const cluster::TokenLogprob& top : logprobs.top()) {
      generation::TokenLogprob* alt = out->add_top();
      alt->set_id(top.id());
      alt->set_logprob(top.logprob());
    }
  }
  return response;
}

}  // namespace yard::coordinator
