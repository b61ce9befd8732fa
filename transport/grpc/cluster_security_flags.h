// The flags with which a worker joins a cluster that requires the cluster token (and
// possibly TLS): --cluster-token-file (else $YARD_TOKEN) and the TLS flags
// (transport/grpc/tls_flags.h).
#ifndef SWITCHYARD_TRANSPORT_GRPC_CLUSTER_SECURITY_FLAGS_H_
#define SWITCHYARD_TRANSPORT_GRPC_CLUSTER_SECURITY_FLAGS_H_

#include "absl/status/statusor.h"
#include "transport/grpc/auth.h"

namespace yard::transport {

// What the worker presents to the coordinator; its token is also what the worker's
// own service requires of the coordinator. Errors name the flag, never a secret.
absl::StatusOr<ChannelSecurity> ClusterSecurityFromFlags();

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_GRPC_CLUSTER_SECURITY_FLAGS_H_
