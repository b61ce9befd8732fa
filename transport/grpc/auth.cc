#include "transport/grpc/auth.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include <grpcpp/support/client_interceptor.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace yard::transport {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// Adds the authorization header to a call's initial metadata.
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(std::shared_ptr<const std::string> header)
      : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<const std::string> header_;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(const std::string& token)
      : header_(std::make_shared<const std::string>(absl::StrCat(kBearer, token))) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(header_);
  }

 private:
  const std::shared_ptr<const std::string> header_;
};

// Equal strings, in time that depends on the lengths only.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address,
                                             const ChannelSecurity& security) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (security.tls_roots_pem.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = security.tls_roots_pem;
    credentials = grpc::SslCredentials(tls);
  }
  if (security.token.empty()) return grpc::CreateChannel(address, credentials);
  // An interceptor rather than call credentials: gRPC sends those only over TLS, and
  // the token must also travel on plaintext loopback clusters.
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<BearerInterceptorFactory>(security.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, grpc::ChannelArguments(), std::move(factories));
}

grpc::Status CheckBearer(const grpc::ServerContextBase& context,
                         const std::vector<std::string>& accepted, absl::string_view what) {
  if (accepted.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat(what, " required (metadata authorization: Bearer ...)"));
  }
  const absl::string_view value(it->second.data(), it->second.size());
  bool match = false;
  if (value.substr(0, kBearer.size()) == kBearer) {
    // Every candidate is compared, so the time does not tell which one matched.
    for (const std::string& secret : accepted) {
      match |= SameSecret(value.substr(kBearer.size()), secret);
    }
  }
  if (!match) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, absl::StrCat("wrong ", what));
  return grpc::Status::OK;
}

absl::StatusOr<std::vector<std::string>> ReadSecrets(const std::string& path,
                                                     absl::string_view what) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(what, " file ", path, ": cannot read it"));
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> secrets;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) secrets.emplace_back(line);
  }
  if (secrets.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " file ", path, ": it is empty"));
  }
  return secrets;
}

absl::StatusOr<std::string> ResolveSecret(const std::string& path, const char* env,
                                          absl::string_view what) {
  if (!path.empty()) {
    absl::StatusOr<std::vector<std::string>> secrets = ReadSecrets(path, what);
    if (!secrets.ok()) return secrets.status();
    return secrets->front();
  }
  const char* value = std::getenv(env);
  return std::string(value != nullptr ? absl::StripAsciiWhitespace(value) : "");
}

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read it"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const std::string& cert_path, const std::string& key_path) {
  if (cert_path.empty() && key_path.empty()) return grpc::InsecureServerCredentials();
  if (cert_path.empty() || key_path.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  absl::StatusOr<std::string> cert = ReadPem(cert_path);
  if (!cert.ok()) return absl::NotFoundError(absl::StrCat("--tls-cert ", cert.status().message()));
  absl::StatusOr<std::string> key = ReadPem(key_path);
  if (!key.ok()) return absl::NotFoundError(absl::StrCat("--tls-key ", key.status().message()));
  grpc::SslServerCredentialsOptions tls;
  tls.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(tls);
}

}  // namespace yard::transport
