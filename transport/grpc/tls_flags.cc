#include "transport/grpc/tls_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "transport/grpc/auth.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain this process's gRPC service presents (with --tls-key); "
          "empty: the service speaks plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM root certificate(s) that the certificates of the services this process "
          "calls must chain to (a worker calls the coordinator; the coordinator calls the "
          "workers); empty: those calls are plaintext");

namespace yard::transport {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFlags() {
  return ServerCredentials(absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key));
}

absl::StatusOr<std::string> TlsRootsFromFlags() {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  if (ca.empty()) return std::string();
  absl::StatusOr<std::string> pem = ReadPem(ca);
  if (!pem.ok()) return absl::NotFoundError(absl::StrCat("--tls-ca ", pem.status().message()));
  return pem;
}

}  // namespace yard::transport
