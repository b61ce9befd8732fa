// The Generation, Cluster and Admin services end to end in one process: fake attention
// workers (real gRPC servers) register with a real coordinator, which routes, relays
// and cancels.
#include "coordinator/generation_service.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/test_cluster.h"

namespace yard::coordinator {
namespace {

using ::testing::ElementsAre;
using testing::FakeAttentionWorker;
using testing::Step;
using testing::TestCoordinator;

CoordinatorOptions Options() { return testing::AttentionOnlyOptions(); }

generation::GenerateRequest TokenRequest(std::vector<int32_t> ids, int max_tokens) {
  generation::GenerateRequest request;
  for (int32_t id : ids) request.mutable_token_ids()->add_ids(id);
  request.set_max_tokens(max_tokens);
  return request;
}

// Reads the whole stream.
struct Streamed {
  std::vector<generation::GenerateResponse> responses;
  grpc::Status status;
};

Streamed Generate(TestCoordinator& cluster, const generation::GenerateRequest& request) {
  Streamed out;
  grpc::ClientContext context;
  auto reader = cluster.generation->Generate(&context, request);
  generation::GenerateResponse response;
  while (reader->Read(&response)) out.responses.push_back(response);
  out.status = reader->Finish();
  return out;
}

const std::vector<cluster::RunResponse> kCanned = {
    Step({10}, "Hel"), Step({11, 12}, "lo w"), Step({13}, "orld", "stop")};

TEST(GenerationServiceTest, NoAttentionWorkerIsUnavailable) {
  TestCoordinator cluster(Options());
  const Streamed out = Generate(cluster, TokenRequest({1, 2, 3}, 4));
  EXPECT_TRUE(out.responses.empty());
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << out.status.error_message();
}

TEST(GenerationServiceTest, RelaysTokensFinishReasonAndUsage) {
  TestCoordinator cluster(Options());
  FakeAttentionWorker worker(kCanned);
  cluster.Register(cluster::ROLE_ATTENTION, worker.address());

  generation::GenerateRequest request = TokenRequest({5, 6, 7}, 16);
  request.mutable_sampling()->set_temperature(0.7f);
  request.add_stop("\n\n");
  const Streamed out = Generate(cluster, request);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.responses.size(), 3u);
  EXPECT_THAT(out.responses[0].prompt_token_ids(), ElementsAre(5, 6, 7));
  EXPECT_TRUE(out.responses[1].prompt_token_ids().empty());
  EXPECT_THAT(out.responses[1].token_ids(), ElementsAre(11, 12));
  EXPECT_EQ(out.responses[0].text() + out.responses[1].text() + out.responses[2].text(),
            "Hello world");
  EXPECT_EQ(out.responses[0].finish_reason(), generation::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(out.responses[2].finish_reason(), generation::FINISH_REASON_STOP);
  EXPECT_EQ(out.responses[2].usage().prompt_tokens(), 3);
  EXPECT_EQ(out.responses[2].usage().completion_tokens(), 4);

  const std::vector<cluster::RunRequest> runs = worker.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_THAT(runs[0].prompt_token_ids(), ElementsAre(5, 6, 7));
  EXPECT_EQ(runs[0].max_tokens(), 16);
  EXPECT_FLOAT_EQ(runs[0].sampling().temperature(), 0.7f);
  EXPECT_EQ(runs[0].sampling().top_p(), 1.0f);
  EXPECT_THAT(runs[0].stop(), ElementsAre("\n\n"));
  // The coordinator's calls to workers carry the cluster token.
  EXPECT_THAT(worker.authorizations(), ElementsAre("Bearer test-admin-token"));
}

TEST(GenerationServiceTest, ApiKeysGuardEverythingButHealth) {
  CoordinatorOptions options = Options();
  options.api_keys = {"key-one", "key-two"};
  TestCoordinator cluster(options);
  FakeAttentionWorker worker(kCanned);
  cluster.Register(cluster::ROLE_ATTENTION, worker.address());

  auto generate = [&](const char* authorization) {
    grpc::ClientContext context;
    if (authorization != nullptr) context.AddMetadata("authorization", authorization);
    auto reader = cluster.generation->Generate(&context, TokenRequest({5, 6, 7}, 16));
    generation::GenerateResponse response;
    int responses = 0;
    while (reader->Read(&response)) ++responses;
    const grpc::Status status = reader->Finish();
    return std::make_pair(status, responses);
  };
  for (const char* bad : {static_cast<const char*>(nullptr), "Bearer wrong", "key-one",
                          "Bearer key-on", "Bearer key-one "}) {
    auto [status, responses] = generate(bad);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << (bad ? bad : "none");
    EXPECT_NE(status.error_message().find("API key"), std::string::npos);
    EXPECT_EQ(responses, 0);
  }
  EXPECT_TRUE(worker.runs().empty());
  for (const char* good : {"Bearer key-one", "Bearer key-two"}) {
    auto [status, responses] = generate(good);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(responses, 3);
  }

  generation::TokenizeRequest tokenize;
  tokenize.set_text("hello");
  generation::TokenizeResponse tokens;
  grpc::ClientContext no_key;
  EXPECT_EQ(cluster.generation->Tokenize(&no_key, tokenize, &tokens).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext with_key;
  with_key.AddMetadata("authorization", "Bearer key-two");
  EXPECT_TRUE(cluster.generation->Tokenize(&with_key, tokenize, &tokens).ok());
  generation::ModelInfoResponse info;
  grpc::ClientContext info_context;
  EXPECT_EQ(cluster.generation->ModelInfo(&info_context, {}, &info).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  generation::HealthResponse health;
  grpc::ClientContext health_context;
  EXPECT_TRUE(cluster.generation->Health(&health_context, {}, &health).ok());
}

TEST(GenerationServiceTest, TextAndChatPromptsAreTokenized) {
  TestCoordinator cluster(Options());
  FakeAttentionWorker worker({Step({1}, "x", "length")});
  cluster.Register(cluster::ROLE_ATTENTION, worker.address());
  const model::Tokenizer& tokenizer = cluster.coordinator().tokenizer();

  generation::GenerateRequest text;
  text.set_text("Hello world");
  text.set_max_tokens(4);
  const Streamed out = Generate(cluster, text);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  const std::vector<int32_t> expected = *tokenizer.Encode("Hello world", true);
  EXPECT_THAT(std::vector<int32_t>(out.responses[0].prompt_token_ids().begin(),
                                   out.responses[0].prompt_token_ids().end()),
              ::testing::ContainerEq(expected));
  ASSERT_TRUE(tokenizer.bos_id().has_value());
  EXPECT_EQ(expected.front(), *tokenizer.bos_id());
  EXPECT_EQ(out.responses.back().finish_reason(), generation::FINISH_REASON_LENGTH);

  generation::GenerateRequest chat;
  auto* message = chat.mutable_chat()->add_messages();
  message->set_role("user");
  message->set_content("Hi");
  chat.set_max_tokens(4);
  const Streamed chatted = Generate(cluster, chat);
  ASSERT_TRUE(chatted.status.ok()) << chatted.status.error_message();
  const std::vector<int32_t> chat_ids =
      *tokenizer.Encode("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>", false);
  EXPECT_THAT(std::vector<int32_t>(chatted.responses[0].prompt_token_ids().begin(),
                                   chatted.responses[0].prompt_token_ids().end()),
              ::testing::ContainerEq(chat_ids));

  // Tokenize answers the same ids.
  generation::TokenizeRequest tokenize;
  tokenize.set_text("Hello world");
  generation::TokenizeResponse tokens;
  grpc::ClientContext context;
  ASSERT_TRUE(cluster.generation->Tokenize(&context, tokenize, &tokens).ok());
  EXPECT_EQ(std::vector<int32_t>(tokens.token_ids().begin(), tokens.token_ids().end()), expected);
}

TEST(GenerationServiceTest, RoutesToTheLeastLoadedWorker) {
  TestCoordinator cluster(Options());
  FakeAttentionWorker busy(kCanned);
  FakeAttentionWorker idle(kCanned, /*hold_after_first=*/true);
  FakeAttentionWorker tied(kCanned);
  const uint32_t busy_id = cluster.Register(cluster::ROLE_ATTENTION, busy.address());
  const uint32_t idle_id = cluster.Register(cluster::ROLE_ATTENTION, idle.address());
  cluster.Heartbeat(busy_id, 500);
  cluster.Heartbeat(idle_id, 10);

  // The first request goes to the worker with the fewest queued tokens, and stays
  // in flight there (the fake holds it).
  grpc::ClientContext held_context;
  auto held = cluster.generation->Generate(&held_context, TokenRequest({1, 2}, 1000));
  generation::GenerateResponse first;
  ASSERT_TRUE(held->Read(&first));
  EXPECT_EQ(idle.runs().size(), 1u);
  EXPECT_TRUE(busy.runs().empty());

  // Now idle carries 10 + 1002 routed tokens: the next one goes to busy (500).
  const Streamed second = Generate(cluster, TokenRequest({3}, 4));
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(busy.runs().size(), 1u);

  // A third worker with no load wins; with equal load, the lowest id does.
  cluster.Register(cluster::ROLE_ATTENTION, tied.address());
  ASSERT_TRUE(Generate(cluster, TokenRequest({3}, 4)).status.ok());
  EXPECT_EQ(tied.runs().size(), 1u);

  // Admin.Status shows the workers and the request in flight.
  admin::StatusResponse status;
  grpc::ClientContext admin_context;
  testing::TestCoordinator::Authorize(admin_context);
  ASSERT_TRUE(cluster.admin->Status(&admin_context, admin::StatusRequest(), &status).ok());
  ASSERT_EQ(status.workers_size(), 3);
  EXPECT_EQ(status.workers(1).id(), idle_id);
  EXPECT_EQ(status.workers(1).role(), "attention");
  EXPECT_EQ(status.workers(1).host(), "test-host");
  EXPECT_EQ(status.workers(1).pid(), 1234);
  EXPECT_TRUE(status.workers(1).healthy());
  EXPECT_EQ(status.workers(1).running_requests(), 1);
  EXPECT_EQ(status.requests_in_flight(), 1);

  held_context.TryCancel();
  EXPECT_EQ(held->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST(GenerationServiceTest, ClientCancellationReachesTheWorker) {
  TestCoordinator cluster(Options());
  FakeAttentionWorker worker(kCanned, /*hold_after_first=*/true);
  cluster.Register(cluster::ROLE_ATTENTION, worker.address());

  grpc::ClientContext context;
  auto reader = cluster.generation->Generate(&context, TokenRequest({1, 2}, 8));
  generation::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_THAT(response.token_ids(), ElementsAre(10));
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  ASSERT_TRUE(worker.WaitForCancel(absl::Seconds(30)));
  ASSERT_EQ(worker.runs().size(), 1u);
  EXPECT_THAT(worker.cancelled(), ElementsAre(worker.runs()[0].request_id()));
}

// A worker that stops answering (its stream open, no more heartbeats) is declared
// dead: its stream is cancelled and the request resumes on another worker from the
// tokens already streamed, rather than waiting for it forever.
TEST(GenerationServiceTest, AWorkerDeclaredDeadHasItsStreamsResumedElsewhere) {
  CoordinatorOptions options = Options();
  options.heartbeat_timeout = absl::Milliseconds(600);
  TestCoordinator cluster(options);
  FakeAttentionWorker silent(kCanned, /*hold_after_first=*/true);
  FakeAttentionWorker healthy({Step({11, 12}, "lo w"), Step({13}, "orld", "stop")});
  cluster.Register(cluster::ROLE_ATTENTION, silent.address());

  grpc::ClientContext context;
  auto reader = cluster.generation->Generate(&context, TokenRequest({1, 2}, 8));
  generation::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_THAT(response.token_ids(), ElementsAre(10));

  // Only the second worker heartbeats from now on.
  const uint32_t healthy_id = cluster.Register(cluster::ROLE_ATTENTION, healthy.address());
  std::atomic<bool> beating{true};
  std::thread heartbeats([&] {
    while (beating.load()) {
      cluster.Heartbeat(healthy_id, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::vector<int32_t> rest;
  while (reader->Read(&response)) {
    rest.insert(rest.end(), response.token_ids().begin(), response.token_ids().end());
  }
  const grpc::Status status = reader->Finish();
  beating.store(false);
  heartbeats.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(rest, ElementsAre(11, 12, 13));
  ASSERT_EQ(healthy.runs().size(), 1u);
  EXPECT_THAT(healthy.runs()[0].generated_token_ids(), ElementsAre(10));
}

TEST(GenerationServiceTest, DrainRejectsNewRequestsAndWaitsForInFlight) {
  TestCoordinator cluster(Options());
  FakeAttentionWorker worker(kCanned, /*hold_after_first=*/true);
  cluster.Register(cluster::ROLE_ATTENTION, worker.address());
  grpc::ClientContext context;
  auto reader = cluster.generation->Generate(&context, TokenRequest({1, 2}, 8));
  generation::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));

  absl::Notification idle;
  cluster.coordinator().BeginDrain([&idle] { idle.Notify(); });
  EXPECT_EQ(Generate(cluster, TokenRequest({1}, 2)).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(idle.HasBeenNotified());  // one request still streams
  context.TryCancel();
  reader->Finish();
  EXPECT_TRUE(idle.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST(GenerationServiceTest, HealthAndModelInfo) {
  TestCoordinator cluster(Options());
  generation::HealthResponse health;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(cluster.generation->Health(&context, generation::HealthRequest(), &health).ok());
  }
  EXPECT_FALSE(health.serving());  // no attention worker, no placement
  EXPECT_EQ(health.attention_workers(), 0);

  generation::ModelInfoResponse info;
  grpc::ClientContext context;
  ASSERT_TRUE(
      cluster.generation->ModelInfo(&context, generation::ModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model_type(), "deepseek_v3");
  EXPECT_EQ(info.vocab_size(), 129280);
  EXPECT_EQ(info.num_layers(), 3);
  EXPECT_EQ(info.num_routed_experts(), 16);
  EXPECT_EQ(info.experts_per_token(), 4);
  EXPECT_EQ(info.max_context(), 4096);
  EXPECT_EQ(info.weights_dtype(), "bf16");
}

}  // namespace
}  // namespace yard::coordinator
