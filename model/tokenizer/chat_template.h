// DeepSeek-V3's chat format, rendered in C++ exactly as the Jinja `chat_template`
// of its tokenizer_config.json renders it (no Jinja engine):
//
//   bos + system prompts joined by "\n\n"
//   + per message, in order:
//       user:       "<｜User｜>" content
//       assistant:  "<｜Assistant｜>" content "<｜end▁of▁sentence｜>"
//                   (after tool results: "<｜tool▁outputs▁end｜>" content eos)
//       assistant with tool_calls and no content: the tool-call block, below
//       tool:       "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" content
//                   "<｜tool▁output▁end｜>" (later ones: "\n<｜tool▁output▁begin｜>"...)
//   + "<｜tool▁outputs▁end｜>" if the last message is a tool result,
//     else "<｜Assistant｜>" if add_generation_prompt.
//
// The template's quirks are reproduced on purpose, since the model was trained on
// its output: the first tool call of a conversation opens with
// "<｜Assistant｜><｜tool▁calls▁begin｜>", every later call is prefixed with "\n"
// and followed by "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>" (so a lone call is
// never closed), and an assistant message with content ignores its tool_calls.
// Unlike the template, which silently drops messages of other roles, an unknown
// role is an InvalidArgument.
#ifndef SWITCHYARD_MODEL_TOKENIZER_CHAT_TEMPLATE_H_
#define SWITCHYARD_MODEL_TOKENIZER_CHAT_TEMPLATE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace yard::model {

struct ToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, inserted verbatim
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  // Null only for an assistant message that carries tool_calls.
  std::optional<std::string> content;
  std::vector<ToolCall> tool_calls;
};

// The prompt text for `messages`; encode it with add_special_tokens = false,
// since it already starts with `bos_token`. InvalidArgument for an unknown role
// or a message missing the content its role needs.
absl::StatusOr<std::string> RenderDeepseekV3Chat(
    absl::Span<const ChatMessage> messages, bool add_generation_prompt,
    absl::string_view bos_token = "<｜begin▁of▁sentence｜>");

// Parses OpenAI-style messages: a JSON array of {"role", "content", optional
// "tool_calls": [{"type", "function": {"name", "arguments"}}]}. `arguments`
// may be a string or a JSON value (then serialized compactly).
absl::StatusOr<std::vector<ChatMessage>> ChatMessagesFromJson(absl::string_view json_text);

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_TOKENIZER_CHAT_TEMPLATE_H_
