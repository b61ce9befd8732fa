#include "model/tokenizer/chat_template.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/tokenizer/json_util.h"

namespace yard::model {
namespace {

using json_util::Child;
using json_util::Index;
using json_util::Invalid;
using json_util::Json;

constexpr absl::string_view kUser = "<｜User｜>";
constexpr absl::string_view kAssistant = "<｜Assistant｜>";
constexpr absl::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr absl::string_view kToolCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr absl::string_view kToolCallsEnd = "<｜tool▁calls▁end｜>";
constexpr absl::string_view kToolCallBegin = "<｜tool▁call▁begin｜>";
constexpr absl::string_view kToolCallEnd = "<｜tool▁call▁end｜>";
constexpr absl::string_view kToolSep = "<｜tool▁sep｜>";
constexpr absl::string_view kToolOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr absl::string_view kToolOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr absl::string_view kToolOutputBegin = "<｜tool▁output▁begin｜>";
constexpr absl::string_view kToolOutputEnd = "<｜tool▁output▁end｜>";

void AppendToolCall(const ToolCall& call, std::string* out) {
  absl::StrAppend(out, kToolCallBegin, call.type, kToolSep, call.name, "\n```json\n",
                  call.arguments, "\n```", kToolCallEnd);
}

absl::Status NeedContent(const ChatMessage& m, size_t i) {
  if (m.content.has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("messages[", i, "]: a ", m.role, " message needs content"));
}

}  // namespace

absl::StatusOr<std::string> RenderDeepseekV3Chat(absl::Span<const ChatMessage> messages,
                                                 bool add_generation_prompt,
                                                 absl::string_view bos_token) {
  // The template's namespace variables.
  bool is_first = false;  // a tool call has been rendered (never reset)
  bool is_tool = false;   // the last rendered message was a tool result
  bool is_output_first = true;

  std::string out(bos_token);
  bool first_system = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "system") continue;
    RETURN_IF_ERROR(NeedContent(m, i));
    if (!first_system) out += "\n\n";
    out += *m.content;
    first_system = false;
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "system") continue;
    if (m.role == "user") {
      RETURN_IF_ERROR(NeedContent(m, i));
      is_tool = false;
      absl::StrAppend(&out, kUser, *m.content);
    } else if (m.role == "assistant") {
      if (!m.content.has_value()) {
        if (m.tool_calls.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("messages[", i, "]: an assistant message needs content or tool_calls"));
        }
        is_tool = false;
        for (const ToolCall& call : m.tool_calls) {
          if (!is_first) {
            absl::StrAppend(&out, kAssistant, kToolCallsBegin);
            AppendToolCall(call, &out);
            is_first = true;
          } else {
            out += "\n";
            AppendToolCall(call, &out);
            absl::StrAppend(&out, kToolCallsEnd, kEos);
          }
        }
      } else if (is_tool) {
        absl::StrAppend(&out, kToolOutputsEnd, *m.content, kEos);
        is_tool = false;
      } else {
        absl::StrAppend(&out, kAssistant, *m.content, kEos);
      }
    } else if (m.role == "tool") {
      RETURN_IF_ERROR(NeedContent(m, i));
      is_tool = true;
      if (is_output_first) {
        absl::StrAppend(&out, kToolOutputsBegin, kToolOutputBegin, *m.content, kToolOutputEnd);
        is_output_first = false;
      } else {
        absl::StrAppend(&out, "\n", kToolOutputBegin, *m.content, kToolOutputEnd);
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].role: unsupported role ", json_util::Quote(m.role)));
    }
  }
  if (is_tool) absl::StrAppend(&out, kToolOutputsEnd);
  if (add_generation_prompt && !is_tool) absl::StrAppend(&out, kAssistant);
  return out;
}

absl::StatusOr<std::vector<ChatMessage>> ChatMessagesFromJson(absl::string_view json_text) {
  const Json root = Json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (root.is_discarded()) return absl::InvalidArgumentError("messages: not valid JSON");
  if (!root.is_array()) return Invalid("messages", "expected an array");
  std::vector<ChatMessage> messages;
  try {
    for (size_t i = 0; i < root.size(); ++i) {
      const Json& m = root[i];
      const std::string path = Index("messages", i);
      if (!m.is_object()) return Invalid(path, "expected an object");
      ChatMessage message;
      ASSIGN_OR_RETURN(const std::string* role, json_util::RequiredString(m, "role", path));
      message.role = *role;
      if (const Json* content = json_util::Find(m, "content");
          content != nullptr && !content->is_null()) {
        ASSIGN_OR_RETURN(const std::string* text,
                         json_util::AsString(*content, Child(path, "content")));
        message.content = *text;
      }
      if (const Json* calls = json_util::Find(m, "tool_calls");
          calls != nullptr && !calls->is_null()) {
        const std::string calls_path = Child(path, "tool_calls");
        if (!calls->is_array()) return Invalid(calls_path, "expected an array");
        for (size_t j = 0; j < calls->size(); ++j) {
          const Json& c = (*calls)[j];
          const std::string call_path = Index(calls_path, j);
          ToolCall call;
          if (const Json* type = json_util::Find(c, "type"); type != nullptr) {
            ASSIGN_OR_RETURN(const std::string* t,
                             json_util::AsString(*type, Child(call_path, "type")));
            call.type = *t;
          }
          ASSIGN_OR_RETURN(const Json* function, json_util::Required(c, "function", call_path));
          const std::string function_path = Child(call_path, "function");
          ASSIGN_OR_RETURN(const std::string* name,
                           json_util::RequiredString(*function, "name", function_path));
          call.name = *name;
          ASSIGN_OR_RETURN(const Json* arguments,
                           json_util::Required(*function, "arguments", function_path));
          call.arguments = arguments->is_string()
                               ? *arguments->get_ptr<const std::string*>()
                               : arguments->dump(-1, ' ', false, Json::error_handler_t::replace);
          message.tool_calls.push_back(std::move(call));
        }
      }
      messages.push_back(std::move(message));
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("messages: ", e.what()));
  }
  return messages;
}

}  // namespace yard::model
