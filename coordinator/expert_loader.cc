#include "coordinator/expert_loader.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "transport/grpc/grpc_status.h"

namespace yard::coordinator {

cluster::ExpertWorker::Stub* GrpcExpertLoader::StubFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<cluster::ExpertWorker::Stub>& stub = stubs_[address];
  if (stub == nullptr) {
    stub = cluster::ExpertWorker::NewStub(transport::CreateChannel(address, security_));
  }
  return stub.get();
}

void GrpcExpertLoader::LoadSlots(const std::string& grpc_address,
                                 cluster::LoadSlotsRequest request, Done done) {
  struct Call {
    grpc::ClientContext context;
    cluster::LoadSlotsRequest request;
    cluster::LoadSlotsResponse response;
    Done done;
  };
  auto* call = new Call;
  call->request = std::move(request);
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  StubFor(grpc_address)
      ->async()
      ->LoadSlots(&call->context, &call->request, &call->response,
                  [call, grpc_address](grpc::Status status) {
                    std::unique_ptr<Call> owned(call);
                    if (status.ok()) {
                      owned->done(std::move(owned->response));
                    } else {
                      absl::Status error = transport::FromGrpc(status);
                      owned->done(absl::Status(
                          error.code(), absl::StrCat("LoadSlots on ", grpc_address, ": ",
                                                     std::string(error.message()))));
                    }
                  });
}

void GrpcExpertLoader::ReleaseSlots(const std::string& grpc_address,
                                    cluster::ReleaseSlotsRequest request, ReleaseDone done) {
  struct Call {
    grpc::ClientContext context;
    cluster::ReleaseSlotsRequest request;
    cluster::ReleaseSlotsResponse response;
    ReleaseDone done;
  };
  auto* call = new Call;
  call->request = std::move(request);
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  StubFor(grpc_address)
      ->async()
      ->ReleaseSlots(&call->context, &call->request, &call->response,
                     [call, grpc_address](grpc::Status status) {
                       std::unique_ptr<Call> owned(call);
                       absl::Status error = transport::FromGrpc(status);
                       owned->done(error.ok() ? error
                                              : absl::Status(error.code(),
                                                             absl::StrCat("ReleaseSlots on ",
                                                                          grpc_address, ": ",
                                                                          std::string(error.message()))));
                     });
}

}  // namespace yard::coordinator
