#include "tools/yardctl/generate_command.h"

#include <chrono>
#include <memory>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "proto/generation.grpc.pb.h"
#include "transport/grpc/grpc_status.h"

namespace yard::tools {

absl::StatusOr<generation::GenerateRequest> BuildGenerateRequest(const GenerateArgs& args) {
  if (args.prompt.has_value() == args.chat.has_value()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --chat");
  }
  generation::GenerateRequest request;
  if (args.prompt) {
    request.set_text(*args.prompt);
  } else {
    generation::ChatMessage* message = request.mutable_chat()->add_messages();
    message->set_role("user");
    message->set_content(*args.chat);
  }
  request.set_max_tokens(args.max_tokens);
  request.mutable_sampling()->set_temperature(args.temperature);
  if (args.seed) request.mutable_sampling()->set_seed(*args.seed);
  request.set_logprobs(args.logprobs);
  return request;
}

void Accumulate(const generation::GenerateResponse& response, GenerateResult& result) {
  result.prompt_token_ids.insert(result.prompt_token_ids.end(),
                                 response.prompt_token_ids().begin(),
                                 response.prompt_token_ids().end());
  result.token_ids.insert(result.token_ids.end(), response.token_ids().begin(),
                          response.token_ids().end());
  result.text += response.text();
  for (const generation::Logprobs& lp : response.logprobs()) {
    std::vector<std::pair<int32_t, float>> step;
    for (const generation::TokenLogprob& t : lp.top()) step.emplace_back(t.id(), t.logprob());
    result.logprobs.push_back(std::move(step));
  }
  switch (response.finish_reason()) {
    case generation::FINISH_REASON_STOP:
      result.finish_reason = "stop";
      break;
    case generation::FINISH_REASON_LENGTH:
      result.finish_reason = "length";
      break;
    case generation::FINISH_REASON_CANCELLED:
      result.finish_reason = "cancelled";
      break;
    default:
      break;
  }
}

std::string ResultJson(const GenerateResult& result) {
  nlohmann::json logprobs = nlohmann::json::array();
  for (const auto& step : result.logprobs) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& [id, lp] : step) entries.push_back({id, lp});
    logprobs.push_back(std::move(entries));
  }
  nlohmann::json j = {
      {"prompt_token_ids", result.prompt_token_ids},
      {"token_ids", result.token_ids},
      {"text", result.text},
      {"finish_reason", result.finish_reason},
      {"logprobs", std::move(logprobs)},
  };
  // Invalid UTF-8 (never expected: the server sends whole characters) is replaced, not
  // thrown on.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::Status RunGenerate(const GenerateArgs& args, std::ostream& out) {
  absl::StatusOr<generation::GenerateRequest> request = BuildGenerateRequest(args);
  if (!request.ok()) return request.status();
  auto stub = generation::Generation::NewStub(
      transport::CreateChannel(args.addr, args.security));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(args.timeout_s));
  std::unique_ptr<grpc::ClientReader<generation::GenerateResponse>> reader =
      stub->Generate(&context, *request);
  GenerateResult result;
  generation::GenerateResponse response;
  while (reader->Read(&response)) {
    Accumulate(response, result);
    if (!args.json) out << response.text() << std::flush;
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return transport::FromGrpc(status);
  if (args.json) {
    out << ResultJson(result) << "\n";
  } else {
    out << "\n";
  }
  return absl::OkStatus();
}

}  // namespace yard::tools
