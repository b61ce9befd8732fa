// The generated messages and gRPC stubs link and talk: a Generation service with one
// handler answers over a real loopback port, and unknown fields survive a round trip.
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "proto/generation.grpc.pb.h"
#include "proto/generation.pb.h"

namespace yard::generation {
namespace {

class HealthOnly : public Generation::Service {
 public:
  grpc::Status Health(grpc::ServerContext*, const HealthRequest*,
                      HealthResponse* response) override {
    response->set_serving(true);
    response->set_expert_workers(4);
    return grpc::Status::OK;
  }
};

TEST(GenerationProtoTest, HealthAnswersOverLoopback) {
  HealthOnly service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto stub = Generation::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  HealthResponse response;
  const grpc::Status status = stub->Health(&context, HealthRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.serving());
  EXPECT_EQ(response.expert_workers(), 4);

  // A handler the service does not override answers UNIMPLEMENTED, not a crash.
  grpc::ClientContext tokenize_context;
  TokenizeResponse tokens;
  EXPECT_EQ(stub->Tokenize(&tokenize_context, TokenizeRequest(), &tokens).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  server->Shutdown();
}

TEST(GenerationProtoTest, PromptOneofAndSeedPresence) {
  GenerateRequest request;
  request.mutable_chat()->add_messages()->set_content("hi");
  request.mutable_token_ids()->add_ids(7);  // replaces the chat prompt
  EXPECT_EQ(request.prompt_case(), GenerateRequest::kTokenIds);
  EXPECT_FALSE(request.sampling().has_seed());
  request.mutable_sampling()->set_seed(0);
  EXPECT_TRUE(request.sampling().has_seed());

  GenerateRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(request.SerializeAsString()));
  EXPECT_EQ(parsed.token_ids().ids(0), 7);
  EXPECT_TRUE(parsed.sampling().has_seed());
  EXPECT_FALSE(parsed.ParseFromString(std::string("\xff\xff\xff", 3)));
}

}  // namespace
}  // namespace yard::generation
