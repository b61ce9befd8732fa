// Who may call a switchyard gRPC service, and how a caller proves it: a shared bearer
// secret in the `authorization: Bearer SECRET` metadata (the cluster token between
// processes and for Admin, API keys for Generation), and optional TLS.
#ifndef SWITCHYARD_TRANSPORT_GRPC_AUTH_H_
#define SWITCHYARD_TRANSPORT_GRPC_AUTH_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace yard::transport {

// What a client channel presents.
struct ChannelSecurity {
  // Sent as `authorization: Bearer TOKEN` on every call; empty: nothing is sent.
  std::string token;
  // PEM root certificates the server's certificate must chain to; empty: plaintext.
  std::string tls_roots_pem;
};

// A channel to `address` that adds the token to every call (so callers never handle
// it) and speaks TLS when roots are given.
std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address,
                                             const ChannelSecurity& security);

// OK when the call carries `authorization: Bearer S` for one of `accepted` (compared
// in constant time), or when `accepted` is empty (authentication off). Otherwise
// UNAUTHENTICATED; `what` names the secret in the message ("cluster token"), which
// never contains the secret presented or expected.
grpc::Status CheckBearer(const grpc::ServerContextBase& context,
                         const std::vector<std::string>& accepted, absl::string_view what);

// A server stream refused before it started (e.g. by CheckBearer): it finishes with
// `status` at once and deletes itself when gRPC is done with it.
template <typename Response>
class RefusedStream final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RefusedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// The non-empty lines of a secrets file (surrounding whitespace trimmed). Errors name
// the file and `what`, never its contents: NotFound if unreadable, InvalidArgument if
// it holds no secret.
absl::StatusOr<std::vector<std::string>> ReadSecrets(const std::string& path,
                                                     absl::string_view what);

// The first secret of `path` when given, else the environment variable `env` (may be
// empty: none).
absl::StatusOr<std::string> ResolveSecret(const std::string& path, const char* env,
                                          absl::string_view what);

// A whole file (PEM certificates and keys); NotFound naming it when unreadable.
absl::StatusOr<std::string> ReadPem(const std::string& path);

// Server credentials: TLS with this certificate chain and key when both paths are
// given, plaintext when neither, InvalidArgument for one without the other.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const std::string& cert_path, const std::string& key_path);

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_GRPC_AUTH_H_
