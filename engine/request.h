// What a client submits to the engine and what it streams back.
#ifndef SWITCHYARD_ENGINE_REQUEST_H_
#define SWITCHYARD_ENGINE_REQUEST_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/sampling.h"

namespace yard::engine {

// Why a request ended; every accepted request ends exactly once.
enum class FinishReason {
  kEos,        // generated one of the model's eos ids (unless ignore_eos)
  kLength,     // max_tokens generated, or the context (max_context) is full
  kStop,       // generated one of stop_token_ids, or the text reached a stop string
  kCancelled,  // Cancel(id)
  kError,      // the model or sampling failed for this request (StreamEvent::status)
};

absl::string_view FinishReasonName(FinishReason reason);  // "eos", "length", ...

struct Request {
  // Caller-chosen, unique among the engine's unfinished requests.
  std::string id;
  // [n] token ids in [0, vocab_size), 1 <= n < max_context.
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  // Tokens to generate at most, > 0 (OpenAI's default is 16).
  int64_t max_tokens = 16;
  // Generating one of these ends the request with kStop; the token is reported, its
  // text is not.
  std::vector<int32_t> stop_token_ids;
  // Text that ends the request with kStop when the generated text contains it; the
  // text streamed excludes the stop string and anything after it. Needs a detokenizer.
  std::vector<std::string> stop;
  // Do not stop at the model's eos ids (benchmarks).
  bool ignore_eos = false;
  // A request resumed here after another engine was lost: its prompt ends with the
  // `generated_before` tokens it generated there, of whose text the client was sent
  // `streamed_text` (the rest was held back as a possible start of a stop string). It
  // goes on exactly as uninterrupted: its random stream continues after those tokens,
  // and its text and stop strings continue across the break. generated_before must be
  // below the prompt's length.
  int64_t generated_before = 0;
  std::string streamed_text;
};

// One streamed event. A request's events carry its generated tokens in order, one per
// event; the last event has `finish` set, and is the only one that may lack a token
// (cancellation, errors). Text deltas concatenate to the generated text (empty without
// a detokenizer); text that could start a stop string is held back until resolved.
struct StreamEvent {
  std::string request_id;
  std::optional<int32_t> token;
  std::string text;
  std::optional<float> logprob;            // with SamplingParams::logprobs
  std::vector<TokenLogprob> top_logprobs;  // with SamplingParams::top_logprobs
  std::optional<FinishReason> finish;
  absl::Status status;  // the cause, for kError; OK otherwise
};

// Called on the engine's thread, from inside Submit/Cancel/Step (see Engine).
using StreamCallback = std::function<void(const StreamEvent&)>;

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_REQUEST_H_
