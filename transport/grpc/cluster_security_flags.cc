#include "transport/grpc/cluster_security_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, cluster_token_file, "",
          "file whose first line is the cluster token (the coordinator's); default: the "
          "environment's YARD_TOKEN. Sent on every call to the coordinator and required on "
          "calls to this worker's service.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM root certificate(s) the coordinator's TLS certificate must chain to; empty: "
          "plaintext gRPC.");

namespace yard::transport {

absl::StatusOr<ChannelSecurity> ClusterSecurityFromFlags() {
  ChannelSecurity security;
  absl::StatusOr<std::string> token = ResolveSecret(absl::GetFlag(FLAGS_cluster_token_file),
                                                    "YARD_TOKEN", "--cluster-token-file");
  if (!token.ok()) return token.status();
  security.token = *std::move(token);
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca); !ca.empty()) {
    absl::StatusOr<std::string> pem = ReadPem(ca);
    if (!pem.ok()) return absl::NotFoundError(absl::StrCat("--tls-ca ", pem.status().message()));
    security.tls_roots_pem = *std::move(pem);
  }
  return security;
}

}  // namespace yard::transport
