// tools/generate end to end: its streamed text is the decode of the reference
// forward's greedy tokens, for raw prompts and chat messages; bad flags fail cleanly.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "engine/local_engine.h"
#include "model/presets.h"
#include "model/reference/load.h"
#include "model/tokenizer/chat_template.h"
#include "model/tokenizer/tokenizer.h"
#include "tests/util/run_binary.h"
#include "tools/make_model/random_checkpoint.h"

namespace yard::tools {
namespace {

using ::testing::HasSubstr;
using ::yard::testing::RunBinary;
using ::yard::testing::RunResult;

class GenerateToolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new std::string(::yard::testing::TestTmpDir() + "/tiny_v3");
    model::RandomCheckpointOptions options;
    options.progress = model::ProgressMode::kNever;
    options.tokenizer_dir = "data/tokenizers/deepseek-v3";
    absl::Status written =
        model::WriteRandomCheckpoint(*model::PresetConfig("tiny-v3"), *model_dir_, options);
    ASSERT_TRUE(written.ok()) << written << " (run ./yard setup for the tokenizer)";
  }
  static void TearDownTestSuite() { delete model_dir_; }

  // The text of `max_tokens` greedy steps of the reference after `prompt`, stopping
  // at EOS, decoded without special tokens.
  static std::string ExpectedText(const std::vector<model::TokenId>& prompt,
                                  int max_tokens) {
    auto model = model::LoadReferenceModel(*model_dir_);
    auto tokenizer = model::Tokenizer::Load(*model_dir_);
    EXPECT_TRUE(model.ok() && tokenizer.ok());
    model::ReferenceSession session = (*model)->NewSession();
    std::vector<model::TokenId> generated;
    auto out = (*model)->Forward(session, prompt);
    for (int step = 0; step < max_tokens; ++step) {
      const std::vector<float>& logits = out->logits;
      int best = 0;
      for (int i = 1; i < static_cast<int>(logits.size()); ++i) {
        if (logits[i] > logits[best]) best = i;
      }
      if (best == *(*tokenizer)->eos_id()) break;
      generated.push_back(best);
      out = (*model)->Forward(session, {best});
    }
    return (*tokenizer)->Decode(generated, /*skip_special_tokens=*/true);
  }

  static std::string Tool() {
    return "tools/generate/generate --stats=false --engine=reference --model=" + *model_dir_;
  }

  static std::string* model_dir_;
};

std::string* GenerateToolTest::model_dir_ = nullptr;

TEST_F(GenerateToolTest, PromptStreamsTheReferenceGreedyText) {
  RunResult r = RunBinary(Tool() + " --prompt='The capital of France is' --max-tokens=6");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tokenizer = model::Tokenizer::Load(*model_dir_);
  ASSERT_TRUE(tokenizer.ok());
  std::vector<model::TokenId> prompt = *(*tokenizer)->Encode("The capital of France is");
  EXPECT_EQ(r.out, ExpectedText(prompt, 6) + "\n");
}

TEST_F(GenerateToolTest, ChatUsesTheDeepseekV3Format) {
  RunResult r = RunBinary(Tool() + " --chat='Hi there' --system='Be brief' --max_tokens=5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tokenizer = model::Tokenizer::Load(*model_dir_);
  ASSERT_TRUE(tokenizer.ok());
  std::vector<model::ChatMessage> messages = {{"system", "Be brief", {}},
                                              {"user", "Hi there", {}}};
  auto rendered = model::RenderDeepseekV3Chat(messages, /*add_generation_prompt=*/true);
  ASSERT_TRUE(rendered.ok());
  EXPECT_EQ(*rendered, "<｜begin▁of▁sentence｜>Be brief<｜User｜>Hi there<｜Assistant｜>");
  std::vector<model::TokenId> prompt =
      *(*tokenizer)->Encode(*rendered, /*add_special_tokens=*/false);
  EXPECT_EQ(r.out, ExpectedText(prompt, 5) + "\n");
}

// The fast engine's text is what the engine library streams for the same request.
TEST_F(GenerateToolTest, FastEngineStreamsTheEngineLibraryText) {
  RunResult r = RunBinary("tools/generate/generate --stats=false --engine=fast --deterministic "
                          "--model=" + *model_dir_ + " --prompt='Once upon a time' --max-tokens=7");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tokenizer = model::Tokenizer::Load(*model_dir_);
  ASSERT_TRUE(tokenizer.ok());
  engine::LocalEngineOptions options;
  options.deterministic = true;
  auto local = engine::LocalEngine::Open(*model_dir_, tokenizer->get(), options);
  ASSERT_TRUE(local.ok()) << local.status();
  engine::Request request;
  request.id = "x";
  std::vector<model::TokenId> prompt = *(*tokenizer)->Encode("Once upon a time");
  request.prompt.assign(prompt.begin(), prompt.end());
  request.sampling.temperature = 0;
  request.max_tokens = 7;
  std::string text;
  ASSERT_TRUE((*local)->engine().Submit(request, [&](const engine::StreamEvent& e) {
    text += e.text;
  }).ok());
  (*local)->engine().RunUntilIdle();
  EXPECT_EQ(r.out, text + "\n");
  EXPECT_FALSE(text.empty());
}

TEST_F(GenerateToolTest, BadFlagsFailWithClearErrors) {
  struct Case {
    std::string flags;
    std::string error;
  };
  const Case cases[] = {
      {"--max-tokens=4", "exactly one of --prompt and --chat"},
      {"--prompt=a --chat=b", "exactly one of --prompt and --chat"},
      {"--prompt=a --max-tokens=0", "--max-tokens must be > 0"},
      {"--prompt=a --max-tokens=x", "max_tokens"},
      {"--prompt=a --engine=turbo", "--engine must be fast or reference"},
  };
  for (const Case& c : cases) {
    RunResult r = RunBinary(Tool() + " " + c.flags);
    EXPECT_NE(r.exit_code, 0) << c.flags;
    EXPECT_THAT(r.err, HasSubstr(c.error)) << c.flags;
  }
  RunResult missing = RunBinary("tools/generate/generate --model=/nonexistent --prompt=a");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent"));
}

}  // namespace
}  // namespace yard::tools
