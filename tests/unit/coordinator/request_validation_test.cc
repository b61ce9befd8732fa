// Malformed GenerateRequests, sent through the real Generation service on a loopback
// port: each is INVALID_ARGUMENT with a message naming the field.
#include "coordinator/request_validation.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/coordinator/test_cluster.h"

namespace yard::coordinator {
namespace {

using generation::GenerateRequest;

struct Case {
  std::string name;
  std::function<void(GenerateRequest&)> mutate;
  std::string field;  // must appear in the error message
};

GenerateRequest ValidRequest() {
  GenerateRequest request;
  request.mutable_token_ids()->add_ids(1);
  request.mutable_token_ids()->add_ids(2);
  request.set_max_tokens(8);
  return request;
}

std::vector<Case> MalformedCases() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"no prompt", [](GenerateRequest& r) { r.clear_prompt(); }, "prompt"},
      {"empty text", [](GenerateRequest& r) { r.set_text(""); }, "text"},
      {"empty token ids", [](GenerateRequest& r) { r.mutable_token_ids()->clear_ids(); },
       "token_ids"},
      {"negative token id", [](GenerateRequest& r) { r.mutable_token_ids()->set_ids(1, -1); },
       "token_ids.ids[1]"},
      {"token id past vocab",
       [](GenerateRequest& r) { r.mutable_token_ids()->set_ids(0, 129280); }, "token_ids.ids[0]"},
      {"empty chat", [](GenerateRequest& r) { r.mutable_chat(); }, "chat.messages"},
      {"bad chat role",
       [](GenerateRequest& r) {
         auto* m = r.mutable_chat()->add_messages();
         m->set_role("robot");
         m->set_content("hi");
       },
       "chat.messages[0].role"},
      {"zero max_tokens", [](GenerateRequest& r) { r.set_max_tokens(0); }, "max_tokens"},
      {"negative max_tokens", [](GenerateRequest& r) { r.set_max_tokens(-3); }, "max_tokens"},
      {"max_tokens past context", [](GenerateRequest& r) { r.set_max_tokens(63); },
       "max_tokens"},
      {"prompt plus max_tokens past context",
       [](GenerateRequest& r) {
         r.set_text(std::string(200, 'x') + " and some more words");
         r.set_max_tokens(60);
       },
       "max_tokens"},
      {"negative temperature",
       [](GenerateRequest& r) { r.mutable_sampling()->set_temperature(-0.5f); },
       "sampling.temperature"},
      {"nan temperature", [nan](GenerateRequest& r) { r.mutable_sampling()->set_temperature(nan); },
       "sampling.temperature"},
      {"infinite temperature",
       [inf](GenerateRequest& r) { r.mutable_sampling()->set_temperature(inf); },
       "sampling.temperature"},
      {"top_p above 1", [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(1.5f); },
       "sampling.top_p"},
      {"negative top_p", [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(-0.1f); },
       "sampling.top_p"},
      {"nan top_p", [nan](GenerateRequest& r) { r.mutable_sampling()->set_top_p(nan); },
       "sampling.top_p"},
      {"negative top_k", [](GenerateRequest& r) { r.mutable_sampling()->set_top_k(-1); },
       "sampling.top_k"},
      {"negative logprobs", [](GenerateRequest& r) { r.set_logprobs(-1); }, "logprobs"},
      {"too many logprobs", [](GenerateRequest& r) { r.set_logprobs(21); }, "logprobs"},
      {"too many stop strings",
       [](GenerateRequest& r) {
         for (int i = 0; i < 17; ++i) r.add_stop("s");
       },
       "stop"},
      {"empty stop string",
       [](GenerateRequest& r) {
         r.add_stop("ok");
         r.add_stop("");
       },
       "stop[1]"},
      {"long stop string", [](GenerateRequest& r) { r.add_stop(std::string(257, 'a')); },
       "stop[0]"},
      {"long request_id", [](GenerateRequest& r) { r.set_request_id(std::string(300, 'r')); },
       "request_id"},
  };
}

class RequestValidationTest : public ::testing::Test {
 protected:
  static CoordinatorOptions Options() {
    CoordinatorOptions options;
    options.tokenizer_dir = kDefaultTokenizerDir;
    options.max_context = 64;
    options.expert_workers = 0;
    return options;
  }
  testing::TestCoordinator cluster_{Options()};
};

TEST_F(RequestValidationTest, EachMalformedRequestIsInvalidArgumentNamingTheField) {
  const std::vector<Case> cases = MalformedCases();
  ASSERT_GE(cases.size(), 15u);
  for (const Case& c : cases) {
    GenerateRequest request = ValidRequest();
    c.mutate(request);
    grpc::ClientContext context;
    auto reader = cluster_.generation->Generate(&context, request);
    generation::GenerateResponse response;
    EXPECT_FALSE(reader->Read(&response)) << c.name;
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.field), std::string::npos)
        << c.name << ": \"" << status.error_message() << "\" does not name " << c.field;
  }
}

TEST_F(RequestValidationTest, AValidRequestPassesValidationAndFindsNoWorker) {
  // No attention worker registered: past validation, the router answers UNAVAILABLE.
  grpc::ClientContext context;
  auto reader = cluster_.generation->Generate(&context, ValidRequest());
  generation::GenerateResponse response;
  EXPECT_FALSE(reader->Read(&response));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST(ValidateGenerateRequestTest, TopPZeroMeansOneAndSeedIsKept) {
  GenerateRequest request = ValidRequest();
  request.mutable_sampling()->set_top_p(0);
  request.mutable_sampling()->set_seed(99);
  RequestLimits limits{.vocab_size = 10, .max_context = 32};
  EXPECT_TRUE(ValidateGenerateRequest(request, limits).ok());
  const cluster::RunRequest run = MakeRunRequest(request, 5, {1, 2});
  EXPECT_EQ(run.sampling().top_p(), 1.0f);
  EXPECT_EQ(run.sampling().seed(), 99u);
  EXPECT_EQ(run.request_id(), 5u);
  EXPECT_EQ(run.max_tokens(), 8);
  EXPECT_EQ(CheckContext(25, 8, limits).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckContext(24, 8, limits).ok());
}

TEST(MapFinishReasonTest, KnownReasons) {
  EXPECT_EQ(MapFinishReason("stop"), generation::FINISH_REASON_STOP);
  EXPECT_EQ(MapFinishReason("eos"), generation::FINISH_REASON_STOP);
  EXPECT_EQ(MapFinishReason("length"), generation::FINISH_REASON_LENGTH);
  EXPECT_EQ(MapFinishReason("cancelled"), generation::FINISH_REASON_CANCELLED);
  EXPECT_FALSE(MapFinishReason("exploded").has_value());
}

}  // namespace
}  // namespace yard::coordinator
