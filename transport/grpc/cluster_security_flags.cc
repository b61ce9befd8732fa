#include "transport/grpc/cluster_security_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "transport/grpc/tls_flags.h"

ABSL_FLAG(std::string, cluster_token_file, "",
          "file whose first line is the cluster token (the coordinator's); default: the "
          "environment's YARD_TOKEN. Sent on every call to the coordinator and required on "
          "calls to this worker's service.");

namespace yard::transport {

absl::StatusOr<ChannelSecurity> ClusterSecurityFromFlags() {
  ChannelSecurity security;
  absl::StatusOr<std::string> token = ResolveSecret(absl::GetFlag(FLAGS_cluster_token_file),
                                                    "YARD_TOKEN", "--cluster-token-file");
  if (!token.ok()) return token.status();
  security.token = *std::move(token);
  absl::StatusOr<std::string> roots = TlsRootsFromFlags();
  if (!roots.ok()) return roots.status();
  security.tls_roots_pem = *std::move(roots);
  return security;
}

}  // namespace yard::transport
