// The TLS flags every switchyard gRPC process shares: --tls-cert and --tls-key (this
// process's service speaks TLS) and --tls-ca (the roots that the services it calls
// must chain to: the coordinator's, for a worker; the workers', for the coordinator).
// One CA for the cluster: with TLS on, every process gets all three.
#ifndef SWITCHYARD_TRANSPORT_GRPC_TLS_FLAGS_H_
#define SWITCHYARD_TRANSPORT_GRPC_TLS_FLAGS_H_

#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_ca);

namespace yard::transport {

// TLS credentials from --tls-cert/--tls-key, plaintext when both are empty. Errors
// name the flag.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFlags();

// The PEM roots in --tls-ca; empty (plaintext calls) when the flag is.
absl::StatusOr<std::string> TlsRootsFromFlags();

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_GRPC_TLS_FLAGS_H_
