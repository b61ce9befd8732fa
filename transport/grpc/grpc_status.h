// absl::Status ⇄ grpc::Status: the same canonical code and message both ways
// (STYLE.md: library and RPC boundaries map 1:1).
#ifndef SWITCHYARD_TRANSPORT_GRPC_GRPC_STATUS_H_
#define SWITCHYARD_TRANSPORT_GRPC_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace yard::transport {

absl::Status FromGrpc(const grpc::Status& status);
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_GRPC_GRPC_STATUS_H_
