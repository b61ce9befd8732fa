// The watchdog of NcclDataPlane (nccl_data_plane.h): the one thread that aborts NCCL
// communicators. Internal to the nccl_data_plane target.
//
// Threading: one thread, started by the constructor and joined by the destructor. A
// guard's fields are shared with the data plane's progress thread as documented on
// each; Watch and RequestAbort may be called from any thread.
#ifndef SWITCHYARD_TRANSPORT_NCCL_NCCL_WATCHDOG_H_
#define SWITCHYARD_TRANSPORT_NCCL_NCCL_WATCHDOG_H_

#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "transport/data_plane.h"

namespace yard::transport {

// What the progress thread and the watchdog share about one pair's communicator.
struct NcclCommGuard {
  explicit NcclCommGuard(PeerId p) : peer(p) {}

  // Records why the communicator goes; the first reason wins and is returned.
  absl::Status SetWhy(absl::Status status);
  absl::Status Why();

  const PeerId peer;
  // Held by the progress thread (try_lock only, so it never waits for an abort) around
  // its nonblocking NCCL calls, and by the watchdog around ncclCommGetAsyncError and
  // ncclCommAbort.
  std::mutex mu;
  ncclComm_t comm = nullptr;  // guarded by mu; null before init and once aborted

  // Written by the progress thread: steady-clock ns after which the watchdog aborts
  // (0: nothing outstanding), and whether the pair is still being set up.
  std::atomic<int64_t> deadline_ns{0};
  std::atomic<bool> in_setup{true};
  std::atomic<bool> abort_requested{false};
  // Written by the watchdog once comm is aborted (or never existed): the progress
  // thread may then release the pair's streams and buffers.
  std::atomic<bool> aborted{false};

 private:
  std::mutex why_mu_;
  absl::Status why_;  // guarded by why_mu_
};

struct NcclWatchdogOptions {
  std::chrono::milliseconds period{50};
  // Only for the messages; the deadlines themselves are in the guards.
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds op_timeout{10'000};
};

class NcclWatchdog {
 public:
  // device: the CUDA device of every communicator watched. on_abort runs on the
  // watchdog thread after a pass that aborted something (it wakes the progress thread;
  // it must not block).
  NcclWatchdog(const NcclWatchdogOptions& options, int device, std::function<void()> on_abort);
  ~NcclWatchdog();

  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // Checks `guard` every period until it is aborted.
  void Watch(std::shared_ptr<NcclCommGuard> guard);
  // Has `guard`'s communicator aborted at once (its why already set by the caller).
  void RequestAbort(NcclCommGuard& guard);

 private:
  void Run();
  // Aborts `guard`'s communicator when it must go; true if it did.
  bool Check(NcclCommGuard& guard);

  const NcclWatchdogOptions options_;
  const int device_;
  const std::function<void()> on_abort_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<NcclCommGuard>> watched_;  // guarded by mu_
  bool stop_ = false;                                    // guarded by mu_
  std::thread thread_;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_NCCL_NCCL_WATCHDOG_H_
