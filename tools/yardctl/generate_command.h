// `yardctl generate`: one streamed generation through a coordinator's public
// Generation service, printed as it arrives (and, with --json, summarized in one JSON
// line at the end for scripts and tests).
#ifndef SWITCHYARD_TOOLS_YARDCTL_GENERATE_COMMAND_H_
#define SWITCHYARD_TOOLS_YARDCTL_GENERATE_COMMAND_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/generation.pb.h"

#include "transport/grpc/auth.h"

namespace yard::tools {

struct GenerateArgs {
  std::string addr;
  // The API key and TLS roots the channel presents (transport/grpc/auth.h).
  transport::ChannelSecurity security;
  std::optional<std::string> prompt;  // exactly one of prompt / chat
  std::optional<std::string> chat;
  int32_t max_tokens = 16;
  float temperature = 0.0f;
  std::optional<uint64_t> seed;
  int32_t logprobs = 0;
  bool json = false;
  int64_t timeout_s = 600;
};

// The request for `args` (InvalidArgument when neither or both prompts are set).
absl::StatusOr<generation::GenerateRequest> BuildGenerateRequest(const GenerateArgs& args);

// Everything a stream said, merged.
struct GenerateResult {
  std::vector<int32_t> prompt_token_ids;
  std::vector<int32_t> token_ids;
  std::string text;
  std::string finish_reason;  // "stop", "length", "cancelled"
  // Per generated token: the top-k tokens and their log-probabilities, most likely
  // first (the chosen token's own is in the stream's Logprobs.chosen).
  std::vector<std::vector<std::pair<int32_t, float>>> logprobs;
};

// Adds one streamed response to `result`.
void Accumulate(const generation::GenerateResponse& response, GenerateResult& result);

// {"prompt_token_ids": [...], "token_ids": [...], "text": "...", "finish_reason": "...",
//  "logprobs": [[[id, logprob], ...] per token]} on one line.
std::string ResultJson(const GenerateResult& result);

// Runs the call, writing text deltas to `out` as they arrive (unless args.json, which
// writes only the final JSON line). Errors carry the server's status.
absl::Status RunGenerate(const GenerateArgs& args, std::ostream& out);

}  // namespace yard::tools

#endif  // SWITCHYARD_TOOLS_YARDCTL_GENERATE_COMMAND_H_
