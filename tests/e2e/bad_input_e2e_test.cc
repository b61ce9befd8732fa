// Malformed requests, full queues and TLS on a real cluster (coordinator, one
// attention worker, one expert worker on loopback). Every malformed request to every
// service is refused with the precise code and a message naming the field, and
// afterwards the cluster still serves the same greedy tokens as before. (Text that is
// not UTF-8 cannot be sent: proto3 string fields are checked by protobuf itself on both
// ends; the tokenizer's own check is unit-tested.)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/admin.grpc.pb.h"
#include "proto/cluster.grpc.pb.h"
#include "proto/generation.grpc.pb.h"
#include "tests/util/local_cluster.h"
#include "tests/util/test_model.h"

namespace yard {
namespace {

constexpr const char* kApiKey = "e2e-api-key";
constexpr int kMaxContext = 256;
constexpr int64_t kVocab = 129280;  // tiny-v3

struct Case {
  std::string name;
  grpc::StatusCode code;
  std::string substring;  // expected in the message: names the field
  std::function<grpc::Status()> call;
};

generation::GenerateRequest Tokens(std::vector<int32_t> ids, int max_tokens = 4) {
  generation::GenerateRequest r;
  r.mutable_token_ids();  // set even when empty
  for (int32_t id : ids) r.mutable_token_ids()->add_ids(id);
  r.set_max_tokens(max_tokens);
  return r;
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tmp = std::getenv("TEST_TMPDIR");
    const std::string model = tmp + "/tiny-v3";
    ASSERT_TRUE(testing::WriteTestModel("tiny-v3", model).ok());
    const std::string keys = tmp + "/api_keys";
    std::ofstream(keys) << "another-key\n" << kApiKey << "\n";
    testing::LocalClusterOptions options;
    options.model_dir = model;
    options.tokenizer_dir = testing::kTestTokenizerDir;
    options.log_dir = tmp + "/logs";
    options.worker_flags = {"--deterministic", "--kv-cache-mb=64",
                            absl::StrCat("--max-context=", kMaxContext)};
    options.coordinator_flags = {"--api-key-file=" + keys,
                                 absl::StrCat("--max-context=", kMaxContext),
                                 "--max-request-bytes=1048576"};
    token_ = options.cluster_token;
    Configure(options);
    auto cluster = testing::LocalCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    auto channel = cluster_->Channel();
    generation_ = generation::Generation::NewStub(channel);
    cluster_stub_ = cluster::Cluster::NewStub(channel);
    admin_ = admin::Admin::NewStub(channel);
  }

  // A fixture's own flags on top of the above.
  virtual void Configure(testing::LocalClusterOptions& options) {}

  void Key(grpc::ClientContext& c) { c.AddMetadata("authorization", absl::StrCat("Bearer ", kApiKey)); }
  void Token(grpc::ClientContext& c) { c.AddMetadata("authorization", "Bearer " + token_); }

  // A whole Generate stream: its status, and the tokens when `tokens` is given.
  grpc::Status Generate(const generation::GenerateRequest& request,
                        std::vector<int32_t>* tokens = nullptr, const char* key = kApiKey) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (key != nullptr) context.AddMetadata("authorization", absl::StrCat("Bearer ", key));
    auto reader = generation_->Generate(&context, request);
    generation::GenerateResponse response;
    while (reader->Read(&response)) {
      if (tokens != nullptr) tokens->insert(tokens->end(), response.token_ids().begin(),
                                            response.token_ids().end());
    }
    return reader->Finish();
  }

  grpc::Status Tokenize(const generation::TokenizeRequest& request) {
    grpc::ClientContext context;
    Key(context);
    generation::TokenizeResponse response;
    return generation_->Tokenize(&context, request, &response);
  }

  // An Admin progress stream's final status.
  template <typename Request, typename Method>
  grpc::Status AdminStream(Method method, const Request& request, bool token = true) {
    grpc::ClientContext context;
    if (token) Token(context);
    auto reader = ((*admin_).*method)(&context, request);
    admin::RebalanceProgress progress;
    while (reader->Read(&progress)) {
    }
    return reader->Finish();
  }

  template <typename Request, typename Response, typename Method>
  grpc::Status ClusterCall(Method method, const Request& request, Response* response = nullptr,
                           bool token = true) {
    grpc::ClientContext context;
    if (token) Token(context);
    Response ignored;
    return ((*cluster_stub_).*method)(&context, request, response ? response : &ignored);
  }

  grpc::Status Watch(uint32_t worker_id) {
    grpc::ClientContext context;
    Token(context);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    cluster::WatchPlacementRequest request;
    request.set_worker_id(worker_id);
    auto reader = cluster_stub_->WatchPlacement(&context, request);
    cluster::Placement placement;
    while (reader->Read(&placement)) {
    }
    return reader->Finish();
  }

  std::string token_;
  std::unique_ptr<testing::LocalCluster> cluster_;
  std::unique_ptr<generation::Generation::Stub> generation_;
  std::unique_ptr<cluster::Cluster::Stub> cluster_stub_;
  std::unique_ptr<admin::Admin::Stub> admin_;
};

TEST_F(BadInputTest, EveryMalformedRequestIsRefusedPreciselyAndTheClusterStillServes) {
  const generation::GenerateRequest greedy = Tokens({100, 200, 300, 400}, 8);
  std::vector<int32_t> before;
  ASSERT_TRUE(Generate(greedy, &before).ok()) << cluster_->LogTails();
  ASSERT_EQ(before.size(), 8u);

  // The live workers, by role.
  admin::StatusResponse status;
  {
    grpc::ClientContext context;
    Token(context);
    ASSERT_TRUE(admin_->Status(&context, {}, &status).ok());
  }
  uint32_t attention = 0, expert = 0;
  for (const admin::WorkerStatus& w : status.workers()) {
    (w.role() == "expert" ? expert : attention) = w.id();
  }
  ASSERT_NE(attention, 0u);
  ASSERT_NE(expert, 0u);
  const uint32_t moe_layer = 1;  // tiny-v3: layer 0 dense, 1 and 2 MoE, 16 experts
  const uint32_t unknown = 999;

  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const grpc::StatusCode kNotFound = grpc::StatusCode::NOT_FOUND;
  const grpc::StatusCode kUnauth = grpc::StatusCode::UNAUTHENTICATED;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto gen = [this](generation::GenerateRequest r) { return [this, r] { return Generate(r); }; };
  auto with = [](generation::GenerateRequest r, auto edit) {
    edit(r);
    return r;
  };
  const generation::GenerateRequest ok = Tokens({1, 2, 3});
  generation::ChatInput bad_role;
  bad_role.add_messages()->set_role("robot");
  std::vector<Case> cases = {
      // Generation.
      {"no prompt", kInvalid, "GenerateRequest.prompt", gen(with(ok, [](auto& r) { r.clear_token_ids(); }))},
      {"empty text", kInvalid, "GenerateRequest.text", gen(with(ok, [](auto& r) { r.set_text(""); }))},
      {"empty token ids", kInvalid, "GenerateRequest.token_ids.ids", gen(Tokens({}))},
      {"token id = vocab", kInvalid, "token_ids.ids[1]", gen(Tokens({1, static_cast<int32_t>(kVocab)}))},
      {"token id huge", kInvalid, "token_ids.ids[0]", gen(Tokens({std::numeric_limits<int32_t>::max()}))},
      {"negative token id", kInvalid, "token_ids.ids[2]", gen(Tokens({1, 2, -1}))},
      {"max_tokens 0", kInvalid, "GenerateRequest.max_tokens", gen(Tokens({1}, 0))},
      {"max_tokens negative", kInvalid, "GenerateRequest.max_tokens", gen(Tokens({1}, -7))},
      {"max_tokens = context", kInvalid, "GenerateRequest.max_tokens", gen(Tokens({1}, kMaxContext))},
      {"max_tokens huge", kInvalid, "GenerateRequest.max_tokens", gen(Tokens({1}, 1 << 30))},
      {"prompt fills the context", kInvalid, "exceeds the maximum context",
       gen(Tokens(std::vector<int32_t>(kMaxContext, 5), 1))},
      {"temperature NaN", kInvalid, "sampling.temperature",
       gen(with(ok, [&](auto& r) { r.mutable_sampling()->set_temperature(nan); }))},
      {"temperature negative", kInvalid, "sampling.temperature",
       gen(with(ok, [](auto& r) { r.mutable_sampling()->set_temperature(-0.5f); }))},
      {"temperature inf", kInvalid, "sampling.temperature",
       gen(with(ok, [&](auto& r) { r.mutable_sampling()->set_temperature(inf); }))},
      {"top_p > 1", kInvalid, "sampling.top_p",
       gen(with(ok, [](auto& r) { r.mutable_sampling()->set_top_p(1.5f); }))},
      {"top_p negative", kInvalid, "sampling.top_p",
       gen(with(ok, [](auto& r) { r.mutable_sampling()->set_top_p(-0.1f); }))},
      {"top_p NaN", kInvalid, "sampling.top_p",
       gen(with(ok, [&](auto& r) { r.mutable_sampling()->set_top_p(nan); }))},
      {"top_k negative", kInvalid, "sampling.top_k",
       gen(with(ok, [](auto& r) { r.mutable_sampling()->set_top_k(-3); }))},
      {"logprobs negative", kInvalid, "GenerateRequest.logprobs",
       gen(with(ok, [](auto& r) { r.set_logprobs(-1); }))},
      {"logprobs 21", kInvalid, "GenerateRequest.logprobs",
       gen(with(ok, [](auto& r) { r.set_logprobs(21); }))},
      {"17 stop strings", kInvalid, "GenerateRequest.stop",
       gen(with(ok, [](auto& r) { for (int i = 0; i < 17; ++i) r.add_stop("x"); }))},
      {"empty stop string", kInvalid, "GenerateRequest.stop[0]",
       gen(with(ok, [](auto& r) { r.add_stop(""); }))},
      {"stop string too long", kInvalid, "GenerateRequest.stop[1]",
       gen(with(ok, [](auto& r) { r.add_stop("ok"); r.add_stop(std::string(257, 'a')); }))},
      {"request id too long", kInvalid, "GenerateRequest.request_id",
       gen(with(ok, [](auto& r) { r.set_request_id(std::string(300, 'r')); }))},
      {"chat without messages", kInvalid, "GenerateRequest.chat.messages",
       gen(with(ok, [](auto& r) { r.mutable_chat(); }))},
      {"chat with a bad role", kInvalid, "GenerateRequest.chat.messages[0].role",
       gen(with(ok, [&](auto& r) { *r.mutable_chat() = bad_role; }))},
      {"chat message without a role", kInvalid, "GenerateRequest.chat.messages[1].role",
       gen(with(ok, [](auto& r) {
         r.mutable_chat()->add_messages()->set_role("user");
         r.mutable_chat()->add_messages()->set_content("hi");
       }))},
      {"message over the receive limit", grpc::StatusCode::RESOURCE_EXHAUSTED, "larger than max",
       gen(with(ok, [](auto& r) { r.set_text(std::string(2 << 20, 'a')); }))},
      {"no API key", kUnauth, "API key required", [&] { return Generate(ok, nullptr, nullptr); }},
      {"wrong API key", kUnauth, "wrong API key", [&] { return Generate(ok, nullptr, "nope"); }},
      {"tokenize without input", kInvalid, "TokenizeRequest.input",
       [&] { return Tokenize(generation::TokenizeRequest()); }},
      {"tokenize chat without messages", kInvalid, "TokenizeRequest.chat.messages", [&] {
         generation::TokenizeRequest r;
         r.mutable_chat();
         return Tokenize(r);
       }},
      {"model info without API key", kUnauth, "API key", [&] {
         grpc::ClientContext context;
         generation::ModelInfoResponse info;
         return generation_->ModelInfo(&context, {}, &info);
       }},

      // Admin.
      {"admin without token", kUnauth, "cluster token required", [&] {
         grpc::ClientContext context;
         admin::StatusResponse s;
         return admin_->Status(&context, {}, &s);
       }},
      {"admin with a wrong token", kUnauth, "wrong cluster token", [&] {
         grpc::ClientContext context;
         context.AddMetadata("authorization", "Bearer " + token_ + "x");
         admin::StatusResponse s;
         return admin_->Status(&context, {}, &s);
       }},
      {"admin with an API key", kUnauth, "wrong cluster token", [&] {
         grpc::ClientContext context;
         Key(context);
         admin::StatusResponse s;
         return admin_->Status(&context, {}, &s);
       }},
      {"experts of a layer out of range", kInvalid, "layer 99", [&] {
         grpc::ClientContext context;
         Token(context);
         admin::ExpertsRequest r;
         r.set_layer(99);
         admin::ExpertsResponse e;
         return admin_->Experts(&context, r, &e);
       }},
      {"drain an unknown worker", kNotFound, "worker 999", [&] {
         admin::DrainRequest r;
         r.set_worker_id(unknown);
         return AdminStream(&admin::Admin::Stub::Drain, r);
       }},
      {"drain without token", kUnauth, "cluster token", [&] {
         admin::DrainRequest r;
         r.set_worker_id(expert);
         return AdminStream(&admin::Admin::Stub::Drain, r, /*token=*/false);
       }},
      {"replicate in a dense layer", kInvalid, "layer 0 is not a MoE layer", [&] {
         admin::ReplicateRequest r;
         r.set_layer(0);
         return AdminStream(&admin::Admin::Stub::Replicate, r);
       }},
      {"replicate in a layer out of range", kInvalid, "layer 77", [&] {
         admin::ReplicateRequest r;
         r.set_layer(77);
         return AdminStream(&admin::Admin::Stub::Replicate, r);
       }},
      {"replicate an expert out of range", kInvalid, "expert 16 out of range", [&] {
         admin::ReplicateRequest r;
         r.set_layer(moe_layer);
         r.set_expert(16);
         return AdminStream(&admin::Admin::Stub::Replicate, r);
       }},
      {"replicate an absurd expert", kInvalid, "out of range", [&] {
         admin::ReplicateRequest r;
         r.set_layer(moe_layer);
         r.set_expert(4000000000u);
         return AdminStream(&admin::Admin::Stub::Replicate, r);
       }},
      {"replicate onto an unknown worker", kInvalid, "worker 999", [&] {
         admin::ReplicateRequest r;
         r.set_layer(moe_layer);
         r.set_expert(1);
         r.set_worker_id(unknown);
         return AdminStream(&admin::Admin::Stub::Replicate, r);
       }},
      {"replicate onto an attention worker", kInvalid, "not a live expert worker", [&] {
         admin::ReplicateRequest r;
         r.set_layer(moe_layer);
         r.set_expert(1);
         r.set_worker_id(attention);
         return AdminStream(&admin::Admin::Stub::Replicate, r);
       }},
      {"evict a slot out of range", kInvalid, "no slot 9999", [&] {
         admin::EvictRequest r;
         r.set_layer(moe_layer);
         r.set_slot(9999);
         return AdminStream(&admin::Admin::Stub::Evict, r);
       }},
      {"evict the last replica", grpc::StatusCode::FAILED_PRECONDITION, "last replica", [&] {
         admin::EvictRequest r;
         r.set_layer(moe_layer);
         r.set_slot(0);
         return AdminStream(&admin::Admin::Stub::Evict, r);
       }},
      {"evict in a dense layer", kInvalid, "layer 0 is not a MoE layer", [&] {
         admin::EvictRequest r;
         r.set_layer(0);
         return AdminStream(&admin::Admin::Stub::Evict, r);
       }},
      {"rebalance without token", kUnauth, "cluster token", [&] {
         return AdminStream(&admin::Admin::Stub::Rebalance, admin::RebalanceRequest(), false);
       }},

      // Cluster.
      {"register without token", kUnauth, "cluster token required", [&] {
         return ClusterCall<cluster::RegisterRequest, cluster::RegisterResponse>(
             &cluster::Cluster::Stub::Register, cluster::RegisterRequest(), nullptr, false);
       }},
      {"register without role", kInvalid, "RegisterRequest.info.role", [&] {
         cluster::RegisterRequest r;
         r.mutable_info()->set_grpc_address("127.0.0.1:1");
         r.mutable_info()->set_data_plane_address("ucx:00");
         return ClusterCall<cluster::RegisterRequest, cluster::RegisterResponse>(
             &cluster::Cluster::Stub::Register, r);
       }},
      {"register without gRPC address", kInvalid, "RegisterRequest.info.grpc_address", [&] {
         cluster::RegisterRequest r;
         r.mutable_info()->set_role(cluster::ROLE_EXPERT);
         r.mutable_info()->set_data_plane_address("ucx:00");
         return ClusterCall<cluster::RegisterRequest, cluster::RegisterResponse>(
             &cluster::Cluster::Stub::Register, r);
       }},
      {"register without data-plane address", kInvalid,
       "RegisterRequest.info.data_plane_address", [&] {
         cluster::RegisterRequest r;
         r.mutable_info()->set_role(cluster::ROLE_EXPERT);
         r.mutable_info()->set_grpc_address("127.0.0.1:1");
         return ClusterCall<cluster::RegisterRequest, cluster::RegisterResponse>(
             &cluster::Cluster::Stub::Register, r);
       }},
      {"register with a huge data-plane address", kInvalid,
       "RegisterRequest.info.data_plane_address", [&] {
         cluster::RegisterRequest r;
         r.mutable_info()->set_role(cluster::ROLE_EXPERT);
         r.mutable_info()->set_grpc_address("127.0.0.1:1");
         r.mutable_info()->set_data_plane_address(std::string(100000, 'f'));
         return ClusterCall<cluster::RegisterRequest, cluster::RegisterResponse>(
             &cluster::Cluster::Stub::Register, r);
       }},
      {"register with negative slots", kInvalid, "RegisterRequest.info.slot_capacity", [&] {
         cluster::RegisterRequest r;
         r.mutable_info()->set_role(cluster::ROLE_EXPERT);
         r.mutable_info()->set_grpc_address("127.0.0.1:1");
         r.mutable_info()->set_data_plane_address("ucx:00");
         r.mutable_info()->set_slot_capacity(-4);
         return ClusterCall<cluster::RegisterRequest, cluster::RegisterResponse>(
             &cluster::Cluster::Stub::Register, r);
       }},
      {"heartbeat of worker 0", kInvalid, "HeartbeatRequest.worker_id", [&] {
         return ClusterCall<cluster::HeartbeatRequest, cluster::HeartbeatResponse>(
             &cluster::Cluster::Stub::Heartbeat, cluster::HeartbeatRequest());
       }},
      {"heartbeat with negative counts", kInvalid, "kv_blocks_used", [&] {
         cluster::HeartbeatRequest r;
         r.set_worker_id(unknown);
         r.set_kv_blocks_used(-1);
         return ClusterCall<cluster::HeartbeatRequest, cluster::HeartbeatResponse>(
             &cluster::Cluster::Stub::Heartbeat, r);
       }},
      {"heartbeat with NaN step time", kInvalid, "HeartbeatRequest.decode_steps", [&] {
         cluster::HeartbeatRequest r;
         r.set_worker_id(unknown);
         r.mutable_decode_steps()->set_p50_ms(nan);
         return ClusterCall<cluster::HeartbeatRequest, cluster::HeartbeatResponse>(
             &cluster::Cluster::Stub::Heartbeat, r);
       }},
      {"heartbeat without token", kUnauth, "cluster token", [&] {
         cluster::HeartbeatRequest r;
         r.set_worker_id(attention);
         return ClusterCall<cluster::HeartbeatRequest, cluster::HeartbeatResponse>(
             &cluster::Cluster::Stub::Heartbeat, r, nullptr, false);
       }},
      {"ack from an unknown worker", kNotFound, "AckPlacementRequest.worker_id", [&] {
         cluster::AckPlacementRequest r;
         r.set_worker_id(unknown);
         r.set_version(1);
         return ClusterCall<cluster::AckPlacementRequest, cluster::AckPlacementResponse>(
             &cluster::Cluster::Stub::AckPlacement, r);
       }},
      {"ack of version 0", kInvalid, "AckPlacementRequest.version", [&] {
         cluster::AckPlacementRequest r;
         r.set_worker_id(attention);
         return ClusterCall<cluster::AckPlacementRequest, cluster::AckPlacementResponse>(
             &cluster::Cluster::Stub::AckPlacement, r);
       }},
      {"ack of a future version", kInvalid, "AckPlacementRequest.version", [&] {
         cluster::AckPlacementRequest r;
         r.set_worker_id(attention);
         r.set_version(1000);
         return ClusterCall<cluster::AckPlacementRequest, cluster::AckPlacementResponse>(
             &cluster::Cluster::Stub::AckPlacement, r);
       }},
      {"load report from an unknown worker", kNotFound, "LoadReport.worker_id", [&] {
         cluster::LoadReport r;
         r.set_worker_id(unknown);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report of a dense layer", kInvalid, "LoadReport.layers.layer", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         r.add_layers()->set_layer(0);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report of a layer out of range", kInvalid, "LoadReport.layers.layer", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         r.add_layers()->set_layer(4000000000u);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report with too few experts", kInvalid, "LoadReport.layers.tokens_per_expert", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         r.add_layers()->set_layer(moe_layer);
         r.mutable_layers(0)->add_tokens_per_expert(1);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report with absurd slot counts", kInvalid, "LoadReport.layers.tokens_per_slot", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         cluster::LayerLoad* l = r.add_layers();
         l->set_layer(moe_layer);
         for (int e = 0; e < 16; ++e) l->add_tokens_per_expert(1);
         for (int s = 0; s < 70000; ++s) l->add_tokens_per_slot(1);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report naming a layer twice", kInvalid, "named twice", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         for (int i = 0; i < 2; ++i) {
           cluster::LayerLoad* l = r.add_layers();
           l->set_layer(moe_layer);
           for (int e = 0; e < 16; ++e) l->add_tokens_per_expert(1);
         }
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report with a negative window", kInvalid, "LoadReport.window_ms", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         r.set_window_ms(-1);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"load report with an absurd window", kInvalid, "LoadReport.window_ms", [&] {
         cluster::LoadReport r;
         r.set_worker_id(attention);
         r.set_window_ms(int64_t{1} << 60);
         return ClusterCall<cluster::LoadReport, cluster::LoadReportResponse>(
             &cluster::Cluster::Stub::ReportLoad, r);
       }},
      {"watch for an unknown worker", kNotFound, "WatchPlacementRequest.worker_id",
       [&] { return Watch(unknown); }},
      {"watch for worker 0", kNotFound, "WatchPlacementRequest.worker_id",
       [&] { return Watch(0); }},
  };
  ASSERT_GE(cases.size(), 50u);
  for (const Case& c : cases) {
    const grpc::Status s = c.call();
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.substring), std::string::npos)
        << c.name << ": \"" << s.error_message() << "\" lacks \"" << c.substring << "\"";
    EXPECT_EQ(s.error_message().find(token_), std::string::npos) << c.name << ": token leaked";
  }

  // A heartbeat of an unknown id is the protocol's "register again", not an error.
  cluster::HeartbeatRequest stale;
  stale.set_worker_id(unknown);
  cluster::HeartbeatResponse answer;
  ASSERT_TRUE((ClusterCall<cluster::HeartbeatRequest, cluster::HeartbeatResponse>(
                   &cluster::Cluster::Stub::Heartbeat, stale, &answer))
                  .ok());
  EXPECT_FALSE(answer.known());

  std::vector<int32_t> after;
  ASSERT_TRUE(Generate(greedy, &after).ok()) << cluster_->LogTails();
  EXPECT_EQ(after, before);
}

// Bounded queues. The attention worker runs 1 request and lets 1 wait
// (--max-num-seqs, --max-waiting): a third is refused at once with RESOURCE_EXHAUSTED
// (the coordinator has no other worker to try), the two accepted complete, and the
// cluster serves afterwards.
class WorkerQueueTest : public BadInputTest {
 protected:
  void Configure(testing::LocalClusterOptions& options) override {
    options.worker_flags.push_back("--max-num-seqs=1");
    options.worker_flags.push_back("--max-waiting=1");
  }

  // Starts a long greedy request on its own thread.
  std::thread Long(int i, grpc::Status& status, std::vector<int32_t>& tokens) {
    return std::thread([this, i, &status, &tokens] {
      generation::GenerateRequest r = Tokens({0, 100 + i, 200 + i}, kLongTokens);
      r.set_ignore_eos(true);
      status = Generate(r, &tokens);
    });
  }
  static constexpr int kLongTokens = 200;  // seconds of decoding: the others arrive meanwhile
};

TEST_F(WorkerQueueTest, AFullWaitingQueueIsResourceExhaustedAndAcceptedWorkCompletes) {
  grpc::Status status[2];
  std::vector<int32_t> tokens[2];
  std::thread running = Long(0, status[0], tokens[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::thread waiting = Long(1, status[1], tokens[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<int32_t> refused_tokens;
  const grpc::Status refused = Generate(Tokens({0, 7, 8}, 8), &refused_tokens);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("waiting queue is full"), std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(refused_tokens.empty());
  running.join();
  waiting.join();
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(tokens[i].size(), static_cast<size_t>(kLongTokens)) << i;
  }
  std::vector<int32_t> after;
  ASSERT_TRUE(Generate(Tokens({0, 7, 8}, 8), &after).ok()) << cluster_->LogTails();
  EXPECT_EQ(after.size(), 8u);
}

// The coordinator's bound (--max-requests=1): a second request while one streams is
// refused with RESOURCE_EXHAUSTED before reaching any worker.
class CoordinatorBoundTest : public WorkerQueueTest {
 protected:
  void Configure(testing::LocalClusterOptions& options) override {
    options.coordinator_flags.push_back("--max-requests=1");
  }
};

TEST_F(CoordinatorBoundTest, BeyondMaxRequestsIsResourceExhausted) {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::thread running = Long(0, status, tokens);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const grpc::Status refused = Generate(Tokens({0, 7, 8}, 8));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("--max-requests"), std::string::npos)
      << refused.error_message();
  running.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(tokens.size(), static_cast<size_t>(kLongTokens));
  EXPECT_TRUE(Generate(Tokens({0, 7, 8}, 8)).ok());
}

// TLS on a real cluster: every process serves with a certificate made by openssl here
// (its own root, --tls-ca everywhere), the workers register and heartbeat over TLS, the
// coordinator calls the workers over TLS (so the cluster token never crosses the wire
// in clear), and a client trusting it generates as over plaintext; a plaintext client
// gets nowhere, at the coordinator or at a worker, and a TLS client without the cluster
// token is still refused by Cluster and by the workers' services.
class TlsClusterTest : public BadInputTest {
 protected:
  void Configure(testing::LocalClusterOptions& options) override {
    const std::string dir = std::getenv("TEST_TMPDIR");
    const std::string command =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " + dir +
        "/cert.pem 2>" + dir + "/openssl.log";
    ASSERT_EQ(std::system(command.c_str()), 0) << "openssl failed; see openssl.log";
    options.tls_cert_file = dir + "/cert.pem";
    options.tls_key_file = dir + "/key.pem";
    cert_file_ = options.tls_cert_file;
  }
  std::string cert_file_;
};

TEST_F(TlsClusterTest, WorkersAndClientsSpeakTlsAndPlaintextIsRefused) {
  std::vector<int32_t> tokens;
  const grpc::Status generated = Generate(Tokens({0, 5, 6}, 8), &tokens);
  ASSERT_TRUE(generated.ok()) << generated.error_message() << "\n" << cluster_->LogTails();
  EXPECT_EQ(tokens.size(), 8u);

  auto plaintext = generation::Generation::NewStub(
      grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  Key(context);
  generation::HealthResponse health;
  EXPECT_EQ(plaintext->Health(&context, {}, &health).error_code(), grpc::StatusCode::UNAVAILABLE);

  cluster::HeartbeatRequest beat;
  beat.set_worker_id(1);
  EXPECT_EQ((ClusterCall<cluster::HeartbeatRequest, cluster::HeartbeatResponse>(
                 &cluster::Cluster::Stub::Heartbeat, beat, nullptr, /*token=*/false))
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // The workers' own services: TLS only, and the token still required.
  grpc::SslCredentialsOptions roots;
  std::stringstream pem;
  pem << std::ifstream(cert_file_).rdbuf();
  roots.pem_root_certs = pem.str();
  auto call_worker = [](const std::string& role, std::shared_ptr<grpc::Channel> channel) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (role == "expert") {
      cluster::ReleaseSlotsResponse released;
      return cluster::ExpertWorker::NewStub(channel)->ReleaseSlots(&c, {}, &released);
    }
    cluster::CancelResponse cancelled;
    return cluster::AttentionWorker::NewStub(channel)->Cancel(&c, {}, &cancelled);
  };
  for (const std::string role : {"attention", "expert"}) {
    const std::vector<std::string> addresses = cluster_->WorkerAddresses(role);
    ASSERT_FALSE(addresses.empty()) << role << "\n" << cluster_->LogTails();
    for (const std::string& address : addresses) {
      EXPECT_EQ(call_worker(role, grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))
                    .error_code(),
                grpc::StatusCode::UNAVAILABLE)
          << role << " worker " << address << " answered plaintext";
      EXPECT_EQ(call_worker(role, grpc::CreateChannel(address, grpc::SslCredentials(roots)))
                    .error_code(),
                grpc::StatusCode::UNAUTHENTICATED)
          << role << " worker " << address << " answered without the token";
    }
  }
}

}  // namespace
}  // namespace yard
