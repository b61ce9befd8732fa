// Checks and prepares a client's GenerateRequest before it is routed: every bad field
// is an InvalidArgument naming it ("GenerateRequest.sampling.top_p: ...").
#ifndef SWITCHYARD_COORDINATOR_REQUEST_VALIDATION_H_
#define SWITCHYARD_COORDINATOR_REQUEST_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/tokenizer/tokenizer.h"
#include "proto/cluster.pb.h"
#include "proto/generation.pb.h"

namespace yard::coordinator {

inline constexpr int kMaxLogprobs = 20;
inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxStopBytes = 256;
inline constexpr int kMaxRequestIdBytes = 256;

struct RequestLimits {
  int64_t vocab_size = 0;
  // Prompt plus generated tokens.
  int64_t max_context = 4096;
};

// Everything that can be checked without tokenizing: the prompt is present and
// non-empty, token ids lie in [0, vocab_size), max_tokens is in (0, max_context],
// sampling parameters are in range, logprobs in [0, 20], at most 16 stop strings of
// 1..256 bytes.
absl::Status ValidateGenerateRequest(const generation::GenerateRequest& request,
                                     const RequestLimits& limits);

// The prompt plus max_tokens fit in max_context.
absl::Status CheckContext(int64_t prompt_tokens, int32_t max_tokens,
                          const RequestLimits& limits);

// The prompt's token ids: token_ids as given; text encoded with the tokenizer's
// special tokens (BOS per tokenizer_config.json); chat rendered with DeepSeek-V3's
// template (generation prompt appended) and encoded. InvalidArgument naming the field
// when the text is not UTF-8 or a chat message is malformed.
absl::StatusOr<std::vector<int32_t>> PromptTokens(const generation::GenerateRequest& request,
                                                  const model::Tokenizer& tokenizer);

// The same for a Tokenize request (text or chat; empty text gives just BOS, if any).
absl::StatusOr<std::vector<int32_t>> TokenizeInput(const generation::TokenizeRequest& request,
                                                   const model::Tokenizer& tokenizer);

// The attention worker's request for a validated GenerateRequest.
cluster::RunRequest MakeRunRequest(const generation::GenerateRequest& request,
                                   uint64_t request_id, const std::vector<int32_t>& prompt);

// "stop" and "eos" → STOP, "length" → LENGTH, "cancelled" → CANCELLED; nullopt for
// anything else (an empty string means "not the last response").
std::optional<generation::FinishReason> MapFinishReason(const std::string& reason);

// One worker step as the client sees it (tokens, text, logprobs; no finish/usage).
generation::GenerateResponse ToGenerateResponse(const cluster::RunResponse& step);

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_REQUEST_VALIDATION_H_
