// Bearer checks, secrets files and TLS over real gRPC, with a self-signed certificate
// made by openssl at test time.
#include "transport/grpc/auth.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "proto/cluster.grpc.pb.h"

namespace yard::transport {
namespace {

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = TmpDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// ExpertWorker.ReleaseSlots answers OK to callers presenting one of `accepted`.
class GuardedService final : public cluster::ExpertWorker::Service {
 public:
  explicit GuardedService(std::vector<std::string> accepted) : accepted_(std::move(accepted)) {}
  grpc::Status ReleaseSlots(grpc::ServerContext* context, const cluster::ReleaseSlotsRequest*,
                            cluster::ReleaseSlotsResponse*) override {
    return CheckBearer(*context, accepted_, "test token");
  }

 private:
  const std::vector<std::string> accepted_;
};

grpc::Status Call(const std::string& address, const ChannelSecurity& security) {
  auto stub = cluster::ExpertWorker::NewStub(CreateChannel(address, security));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  cluster::ReleaseSlotsResponse response;
  return stub->ReleaseSlots(&context, cluster::ReleaseSlotsRequest(), &response);
}

struct Server {
  Server(std::shared_ptr<grpc::ServerCredentials> credentials, std::vector<std::string> accepted)
      : service(std::move(accepted)) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    EXPECT_GT(port, 0);
    address = "127.0.0.1:" + std::to_string(port);
  }
  ~Server() { server->Shutdown(); }
  GuardedService service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

TEST(AuthTest, BearerTokenOnPlaintext) {
  Server server(grpc::InsecureServerCredentials(), {"one", "two"});
  EXPECT_TRUE(Call(server.address, {.token = "one"}).ok());
  EXPECT_TRUE(Call(server.address, {.token = "two"}).ok());
  const grpc::Status missing = Call(server.address, {});
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(missing.error_message(), "test token required (metadata authorization: Bearer ...)");
  const grpc::Status wrong = Call(server.address, {.token = "three"});
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "wrong test token");
  EXPECT_EQ(Call(server.address, {.token = "on"}).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  Server open(grpc::InsecureServerCredentials(), {});
  EXPECT_TRUE(Call(open.address, {}).ok());
}

TEST(AuthTest, SecretsFilesNeverEchoTheirContents) {
  auto secrets = ReadSecrets(WriteFile("keys", "  alpha \n\nbeta\n"), "--api-key-file");
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ(*secrets, (std::vector<std::string>{"alpha", "beta"}));
  auto empty = ReadSecrets(WriteFile("empty", "\n  \n"), "--api-key-file");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("--api-key-file"), std::string::npos);
  EXPECT_EQ(ReadSecrets(TmpDir() + "/missing", "x").status().code(), absl::StatusCode::kNotFound);
  auto first = ResolveSecret(WriteFile("token", "s3cret\nother\n"), "UNSET_VARIABLE", "t");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, "s3cret");
  EXPECT_EQ(ServerCredentials("cert.pem", "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AuthTest, TlsWithASelfSignedCertificate) {
  const std::string dir = TmpDir();
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " + dir +
      "/cert.pem 2>" + dir + "/openssl.log";
  ASSERT_EQ(std::system(command.c_str()), 0) << "openssl failed; see openssl.log";
  auto credentials = ServerCredentials(dir + "/cert.pem", dir + "/key.pem");
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  Server server(*credentials, {"token"});
  auto roots = ReadPem(dir + "/cert.pem");
  ASSERT_TRUE(roots.ok());

  EXPECT_TRUE(Call(server.address, {.token = "token", .tls_roots_pem = *roots}).ok());
  EXPECT_EQ(Call(server.address, {.token = "bad", .tls_roots_pem = *roots}).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Plaintext to a TLS port, and TLS trusting another root, never get through.
  EXPECT_EQ(Call(server.address, {.token = "token"}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  const std::string other = dir + "/other";
  ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other "
                         "-keyout " + other + "-key.pem -out " + other + ".pem 2>/dev/null")
                            .c_str()),
            0);
  auto wrong_roots = ReadPem(other + ".pem");
  ASSERT_TRUE(wrong_roots.ok());
  EXPECT_EQ(Call(server.address, {.token = "token", .tls_roots_pem = *wrong_roots}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace yard::transport
