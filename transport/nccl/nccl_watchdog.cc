#include "transport/nccl/nccl_watchdog.h"

#include <cuda_runtime.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace yard::transport {

absl::Status NcclCommGuard::SetWhy(absl::Status status) {
  std::lock_guard<std::mutex> lock(why_mu_);
  if (why_.ok()) why_ = std::move(status);
  return why_;
}

absl::Status NcclCommGuard::Why() {
  std::lock_guard<std::mutex> lock(why_mu_);
  return why_;
}

NcclWatchdog::NcclWatchdog(const NcclWatchdogOptions& options, int device,
                           std::function<void()> on_abort)
    : options_(options), device_(device), on_abort_(std::move(on_abort)) {
  thread_ = std::thread([this] { Run(); });
}

NcclWatchdog::~NcclWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void NcclWatchdog::Watch(std::shared_ptr<NcclCommGuard> guard) {
  std::lock_guard<std::mutex> lock(mu_);
  watched_.push_back(std::move(guard));
}

void NcclWatchdog::RequestAbort(NcclCommGuard& guard) {
  guard.abort_requested.store(true, std::memory_order_release);
  cv_.notify_all();
}

void NcclWatchdog::Run() {
  cudaSetDevice(device_);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.period);
    std::vector<std::shared_ptr<NcclCommGuard>> guards = watched_;
    lock.unlock();
    bool any = false;
    for (const auto& guard : guards) any |= Check(*guard);
    lock.lock();
    std::erase_if(watched_, [](const std::shared_ptr<NcclCommGuard>& g) {
      return g->aborted.load(std::memory_order_acquire);
    });
    if (any) on_abort_();
  }
}

bool NcclWatchdog::Check(NcclCommGuard& guard) {
  if (guard.aborted.load(std::memory_order_acquire)) return false;
  absl::Status why;
  const int64_t deadline = guard.deadline_ns.load(std::memory_order_acquire);
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  if (guard.abort_requested.load(std::memory_order_acquire)) {
    why = absl::UnavailableError(absl::StrCat("peer ", guard.peer, ": aborted"));
  } else if (deadline != 0 && now > deadline) {
    why = absl::UnavailableError(
        guard.in_setup.load(std::memory_order_acquire)
            ? absl::StrCat("peer ", guard.peer, ": pair not set up within ",
                           options_.connect_timeout.count(), " ms; communicator aborted")
            : absl::StrCat("peer ", guard.peer, ": no NCCL operation completed for ",
                           options_.op_timeout.count(), " ms; communicator aborted"));
  } else {
    std::lock_guard<std::mutex> lock(guard.mu);
    ncclResult_t async = ncclSuccess;
    if (guard.comm != nullptr) {
      const ncclResult_t rc = ncclCommGetAsyncError(guard.comm, &async);
      if (rc != ncclSuccess) async = rc;
    }
    if (async != ncclSuccess && async != ncclInProgress) {
      const char* last = ncclGetLastError(guard.comm);
      why = absl::UnavailableError(absl::StrCat("peer ", guard.peer,
                                                ": NCCL error: ", ncclGetErrorString(async), " (",
                                                last != nullptr ? last : "", ")"));
    }
  }
  if (why.ok()) return false;
  (void)guard.SetWhy(std::move(why));
  {
    // ncclCommAbort also stops the kernels of this communicator that wait for the
    // dead peer, which lets the pair's streams drain.
    std::lock_guard<std::mutex> lock(guard.mu);
    if (guard.comm != nullptr) ncclCommAbort(guard.comm);
    guard.comm = nullptr;
  }
  guard.aborted.store(true, std::memory_order_release);
  return true;
}

}  // namespace yard::transport
