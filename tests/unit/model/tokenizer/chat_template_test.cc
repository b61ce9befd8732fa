// Expected strings are derived by hand from the `chat_template` in DeepSeek-V3's
// tokenizer_config.json (and were cross-checked once by rendering that template
// with Jinja2).
#include "model/tokenizer/chat_template.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace yard::model {
namespace {

using ::testing::HasSubstr;

std::string Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  auto text = RenderDeepseekV3Chat(messages, add_generation_prompt);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

ChatMessage Msg(std::string role, std::string content) {
  return {std::move(role), std::move(content), {}};
}

TEST(ChatTemplateTest, UserWithGenerationPrompt) {
  EXPECT_EQ(Render({Msg("user", "Hi")}, true),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");
  EXPECT_EQ(Render({Msg("user", "Hi")}, false), "<｜begin▁of▁sentence｜><｜User｜>Hi");
  EXPECT_EQ(Render({}, true), "<｜begin▁of▁sentence｜><｜Assistant｜>");
}

TEST(ChatTemplateTest, SystemPromptsGoFirstJoinedByBlankLine) {
  EXPECT_EQ(
      Render({Msg("system", "S1"), Msg("user", "Q"), Msg("system", "S2"), Msg("assistant", "A")},
             false),
      "<｜begin▁of▁sentence｜>S1\n\nS2<｜User｜>Q<｜Assistant｜>A<｜end▁of▁sentence｜>");
}

TEST(ChatTemplateTest, MultiTurn) {
  EXPECT_EQ(Render({Msg("user", "Q1"), Msg("assistant", "A1"), Msg("user", "Q2")}, true),
            "<｜begin▁of▁sentence｜><｜User｜>Q1<｜Assistant｜>A1<｜end▁of▁sentence｜>"
            "<｜User｜>Q2<｜Assistant｜>");
}

TEST(ChatTemplateTest, ToolCallsAndResults) {
  ChatMessage calls{
      "assistant", std::nullopt, {{"function", "f", "{\"x\":1}"}, {"function", "g", "{}"}}};
  EXPECT_EQ(Render({Msg("user", "W?"), calls, Msg("tool", "r1"), Msg("tool", "r2"),
                    Msg("assistant", "Done")},
                   true),
            "<｜begin▁of▁sentence｜><｜User｜>W?"
            "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n"
            "```json\n{\"x\":1}\n```<｜tool▁call▁end｜>"
            "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>g\n```json\n{}\n```<｜tool▁call▁end｜>"
            "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>"
            "\n<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>Done<｜end▁of▁sentence｜><｜Assistant｜>");
}

TEST(ChatTemplateTest, EndingOnToolResultClosesOutputsInsteadOfPrompting) {
  ChatMessage call{"assistant", std::nullopt, {{"function", "f", "{}"}}};
  EXPECT_EQ(Render({Msg("user", "W?"), call, Msg("tool", "r")}, true),
            "<｜begin▁of▁sentence｜><｜User｜>W?"
            "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n"
            "```json\n{}\n```<｜tool▁call▁end｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>");
}

TEST(ChatTemplateTest, Errors) {
  auto bad_role = RenderDeepseekV3Chat({Msg("narrator", "x")}, true);
  EXPECT_EQ(bad_role.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_role.status().message(), HasSubstr("messages[0].role: unsupported role"));
  auto no_content = RenderDeepseekV3Chat({{"user", std::nullopt, {}}}, true);
  EXPECT_EQ(no_content.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty_assistant = RenderDeepseekV3Chat({{"assistant", std::nullopt, {}}}, true);
  EXPECT_EQ(empty_assistant.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChatMessagesFromJsonTest, ParsesOpenAiStyleMessages) {
  auto messages = ChatMessagesFromJson(R"([
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}
  ])");
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 2u);
  EXPECT_EQ((*messages)[0].content, "Hi");
  EXPECT_EQ((*messages)[1].content, std::nullopt);
  ASSERT_EQ((*messages)[1].tool_calls.size(), 1u);
  EXPECT_EQ((*messages)[1].tool_calls[0].name, "f");
  EXPECT_EQ((*messages)[1].tool_calls[0].arguments, "{\"x\":1}");
}

TEST(ChatMessagesFromJsonTest, Malformed) {
  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::string>>{
           {"nope", "not valid JSON"},
           {"{}", "messages: expected an array"},
           {"[1]", "messages[0]: expected an object"},
           {R"([{"content": "x"}])", "messages[0].role: missing"},
           {R"([{"role": "user", "content": 3}])", "messages[0].content: expected a string"},
           {R"([{"role": "assistant", "tool_calls": [{"function": {}}]}])",
            "messages[0].tool_calls[0].function.name: missing"},
       }) {
    auto messages = ChatMessagesFromJson(text);
    EXPECT_EQ(messages.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(messages.status().message(), HasSubstr(expected)) << text;
  }
}

}  // namespace
}  // namespace yard::model
