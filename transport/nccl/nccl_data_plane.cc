#include "transport/nccl/nccl_data_plane.h"

#include <arpa/inet.h>
#include <cuda_runtime.h>
#include <fcntl.h>
#include <nccl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "transport/nccl/nccl_address.h"
#include "transport/nccl/nccl_control.h"
#include "transport/nccl/nccl_watchdog.h"

namespace yard::transport {

static_assert(kNcclUniqueIdBytes == NCCL_UNIQUE_ID_BYTES, "ncclUniqueId size changed");

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ToNs(std::chrono::nanoseconds d) { return d.count(); }

absl::Status CudaError(PeerId peer, const char* what, cudaError_t error) {
  return absl::UnavailableError(
      absl::StrCat("peer ", peer, ": ", what, ": ", cudaGetErrorString(error)));
}

absl::Status NcclError(PeerId peer, const char* what, ncclResult_t result, ncclComm_t comm) {
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  return absl::UnavailableError(
      absl::StrCat("peer ", peer, ": ", what, ": ", ncclGetErrorString(result),
                   last != nullptr && *last ? " (" : "", last != nullptr ? last : "",
                   last != nullptr && *last ? ")" : ""));
}

// One message in flight on a pair, in the order it moves through the queues.
struct Op {
  bool is_send = false;
  uint64_t bytes = 0;
  void* dev = nullptr;             // device staging (or the caller's, when !owns_dev)
  bool owns_dev = true;            // false for SendDevice
  Payload payload;                 // send: held until the pair releases the op
  SendDone done;                   // send
  std::vector<uint8_t> host;       // receive: where the bytes land for on_receive
  cudaEvent_t staged = nullptr;    // send: the host-to-device copy is done
  cudaEvent_t finished = nullptr;  // the NCCL op (then, for a receive, the copy back)
};

enum class PairState { kDialing, kAwaitingHello, kInitializing, kReady, kFailing };

struct Pair {
  PeerId peer = 0;
  std::string address;
  sockaddr_storage peer_addr{};
  socklen_t peer_addr_len = 0;
  int rank = 0;  // 0: the smaller PeerId of the pair
  PairState state = PairState::kDialing;
  int fd = -1;
  std::string out;          // control bytes not yet written
  std::vector<uint8_t> in;  // control bytes not yet parsed
  std::shared_ptr<NcclCommGuard> guard;
  cudaStream_t nccl_stream = nullptr;
  cudaStream_t copy_stream = nullptr;
  int64_t setup_start_ns = 0;
  int64_t last_progress_ns = 0;

  std::deque<std::unique_ptr<Op>> waiting;      // sends before the pair is ready
  std::deque<std::unique_ptr<Op>> awaiting_go;  // rank 1: announced with kRequest
  std::deque<std::unique_ptr<Op>> schedule;     // in the pair's NCCL order, not posted
  std::unique_ptr<Op> launching;                // posted; ncclGroupEnd in progress
  std::deque<std::unique_ptr<Op>> in_flight;    // enqueued on nccl_stream
  std::deque<std::unique_ptr<Op>> copying;      // receives: copy back to host

  absl::Status failure;
  bool report_failure = false;

  bool Outstanding() const {
    return !waiting.empty() || !awaiting_go.empty() || !schedule.empty() || launching ||
           !in_flight.empty() || !copying.empty();
  }
  bool GpuBusy() const {
    return state == PairState::kInitializing || launching || !in_flight.empty() ||
           !copying.empty() || (state == PairState::kReady && !schedule.empty());
  }
};

// An accepted control connection whose kHello has not fully arrived.
struct Accepting {
  int fd = -1;
  std::vector<uint8_t> in;
  int64_t deadline_ns = 0;
};

// A kHello for a peer this endpoint has no Connect for yet.
struct Unclaimed {
  int fd = -1;
  HelloBody hello;
};

}  // namespace

class NcclDataPlane::Impl {
 public:
  Impl(const NcclOptions& options, PeerId self, DataPlaneHandlers handlers, int listen_fd,
       int wake_fd, NcclAddress local)
      : options_(options),
        handlers_(std::move(handlers)),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd),
        local_(std::move(local)),
        address_(EncodeNcclAddress(local_)),
        self_(self) {}

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    Wake();
    // The progress thread needs the watchdog until every communicator is aborted.
    if (progress_.joinable()) progress_.join();
    watchdog_.reset();
    close(listen_fd_);
    close(wake_fd_);
  }

  void Start() {
    NcclWatchdogOptions watchdog;
    watchdog.period = options_.watchdog_period;
    watchdog.connect_timeout = options_.connect_timeout;
    watchdog.op_timeout = options_.op_timeout;
    watchdog_ = std::make_unique<NcclWatchdog>(watchdog, options_.device, [this] { Wake(); });
    progress_ = std::thread([this] { RunProgress(); });
  }

  PeerId self() const { return self_.load(std::memory_order_acquire); }

  absl::Status SetSelf(PeerId id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (id == self_.load(std::memory_order_relaxed)) return absl::OkStatus();
    if (used_) {
      return absl::FailedPreconditionError(
          absl::StrCat("SetSelf(", id, ") after the first Connect or Send (id is ",
                       self_.load(std::memory_order_relaxed), ")"));
    }
    self_.store(id, std::memory_order_release);
    return absl::OkStatus();
  }

  const std::string& address() const { return address_; }

  absl::Status Connect(PeerId peer, const std::string& address) {
    absl::StatusOr<NcclAddress> parsed = DecodeNcclAddress(address);
    if (!parsed.ok()) return parsed.status();
    if (peer == self()) {
      return absl::InvalidArgumentError(absl::StrCat("Connect to self (peer ", peer, ")"));
    }
    if (parsed->host == local_.host && parsed->device == local_.device) {
      return absl::InvalidArgumentError(
          absl::StrCat("peer ", peer, " at ", address, " is on this endpoint's GPU ", local_.device,
                       "; NCCL refuses two ranks of one communicator on one GPU"));
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = absl::StrCat(parsed->port);
    const int rc = getaddrinfo(parsed->host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0 || found == nullptr) {
      return absl::UnavailableError(absl::StrCat("peer ", peer, ": cannot resolve \"", parsed->host,
                                                 "\": ", gai_strerror(rc)));
    }
    ConnectCommand command{peer, address, {}, static_cast<socklen_t>(found->ai_addrlen)};
    std::memcpy(&command.peer_addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    if (!Post(std::move(command))) {
      return absl::FailedPreconditionError("NCCL data plane is shutting down");
    }
    return absl::OkStatus();
  }

  void Disconnect(PeerId peer) { Post(DisconnectCommand{peer}); }

  void Send(PeerId peer, Payload message, const void* device_bytes, size_t bytes, SendDone done) {
    SendCommand command{peer, std::move(message), device_bytes, bytes, done};
    if (!Post(std::move(command)) && done) {
      done(absl::UnavailableError("NCCL data plane is shutting down"));
    }
  }

 private:
  struct ConnectCommand {
    PeerId peer;
    std::string address;
    sockaddr_storage peer_addr;
    socklen_t peer_addr_len;
  };
  struct SendCommand {
    PeerId peer;
    Payload payload;
    const void* device_bytes;  // SendDevice; payload is null then
    size_t bytes;
    SendDone done;
  };
  struct DisconnectCommand {
    PeerId peer;
  };
  using Command = std::variant<ConnectCommand, SendCommand, DisconnectCommand>;

  // ---- any thread ----

  bool Post(Command command) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      used_ = true;
      commands_.push_back(std::move(command));
    }
    Wake();
    return true;
  }

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  // ---- progress thread ----

  void RunProgress() {
    const cudaError_t device = cudaSetDevice(options_.device);
    device_error_ =
        device == cudaSuccess ? absl::OkStatus() : CudaError(self(), "cudaSetDevice", device);
    while (true) {
      std::deque<Command> commands;
      bool stopping;
      {
        std::lock_guard<std::mutex> lock(mu_);
        commands.swap(commands_);
        stopping = stopping_;
      }
      for (Command& command : commands) Execute(command);
      if (stopping) break;
      AcceptConnections();
      ServiceAccepting();
      ServiceAll();
      WaitForWork();
    }
    Shutdown();
  }

  void Shutdown() {
    for (auto& [peer, pair] : pairs_) {
      Fail(*pair, absl::UnavailableError("NCCL data plane is shutting down"), false);
      retiring_.push_back(std::move(pair));
    }
    pairs_.clear();
    for (Accepting& a : accepting_) close(a.fd);
    accepting_.clear();
    for (auto& [peer, u] : unclaimed_) close(u.fd);
    unclaimed_.clear();
    while (!retiring_.empty()) {
      ServiceRetiring();
      if (retiring_.empty()) break;
      pollfd wake{wake_fd_, POLLIN, 0};
      poll(&wake, 1, 10);
      DrainWake();
    }
  }

  void Execute(Command& command) {
    if (auto* c = std::get_if<ConnectCommand>(&command)) {
      DoConnect(*c);
    } else if (auto* s = std::get_if<SendCommand>(&command)) {
      DoSend(*s);
    } else {
      const PeerId peer = std::get<DisconnectCommand>(command).peer;
      failed_.erase(peer);
      auto it = pairs_.find(peer);
      if (it == pairs_.end()) return;
      Retire(it, absl::UnavailableError(absl::StrCat("peer ", peer, " was disconnected")));
    }
  }

  void Retire(std::map<PeerId, std::unique_ptr<Pair>>::iterator it, absl::Status why) {
    Fail(*it->second, std::move(why), /*report=*/false);
    retiring_.push_back(std::move(it->second));
    pairs_.erase(it);
  }

  void DoConnect(ConnectCommand& command) {
    failed_.erase(command.peer);
    auto it = pairs_.find(command.peer);
    if (it != pairs_.end()) {
      if (it->second->address == command.address && it->second->state != PairState::kFailing) {
        return;
      }
      Retire(it,
             absl::UnavailableError(absl::StrCat("peer ", command.peer, " was connected again")));
    }
    auto pair = std::make_unique<Pair>();
    Pair& p = *pair;
    p.peer = command.peer;
    p.address = command.address;
    p.peer_addr = command.peer_addr;
    p.peer_addr_len = command.peer_addr_len;
    p.rank = self() < command.peer ? 0 : 1;
    p.setup_start_ns = NowNs();
    p.guard = std::make_shared<NcclCommGuard>(command.peer);
    p.guard->deadline_ns.store(p.setup_start_ns + ToNs(options_.connect_timeout));
    pairs_[command.peer] = std::move(pair);
    watchdog_->Watch(p.guard);

    if (!device_error_.ok()) return Fail(p, device_error_, true);
    cudaError_t err = cudaStreamCreateWithFlags(&p.nccl_stream, cudaStreamNonBlocking);
    if (err == cudaSuccess) {
      err = cudaStreamCreateWithFlags(&p.copy_stream, cudaStreamNonBlocking);
    }
    if (err != cudaSuccess) return Fail(p, CudaError(p.peer, "cudaStreamCreate", err), true);

    if (p.rank == 0) {
      p.state = PairState::kDialing;
      p.fd = socket(p.peer_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (p.fd < 0) return Fail(p, Errno(p.peer, "socket"), true);
      const int one = 1;
      setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (connect(p.fd, reinterpret_cast<const sockaddr*>(&p.peer_addr), p.peer_addr_len) != 0 &&
          errno != EINPROGRESS) {
        return Fail(p, Errno(p.peer, "connect to the control port"), true);
      }
    } else {
      p.state = PairState::kAwaitingHello;
      auto u = unclaimed_.find(p.peer);
      if (u != unclaimed_.end()) {
        const Unclaimed hello = u->second;
        unclaimed_.erase(u);
        Adopt(p, hello);
      }
    }
  }

  absl::Status Errno(PeerId peer, const char* what) {
    return absl::UnavailableError(absl::StrCat("peer ", peer, ": ", what, ": ", strerror(errno)));
  }

  void DoSend(SendCommand& command) {
    auto it = pairs_.find(command.peer);
    if (it == pairs_.end() && failed_.contains(command.peer)) {
      if (command.done) {
        command.done(absl::UnavailableError(
            absl::StrCat("peer ", command.peer, " failed; Connect it again")));
      }
      return;
    }
    if (it == pairs_.end()) {
      if (command.done) {
        command.done(absl::FailedPreconditionError(
            absl::StrCat("peer ", command.peer, " is not connected")));
      }
      return;
    }
    Pair& p = *it->second;
    if (p.state == PairState::kFailing) {
      if (command.done) command.done(p.failure);
      return;
    }
    auto op = std::make_unique<Op>();
    op->is_send = true;
    op->done = std::move(command.done);
    if (command.payload != nullptr) {
      op->bytes = command.payload->size();
      op->payload = std::move(command.payload);
    } else if (command.device_bytes != nullptr) {
      op->bytes = command.bytes;
      op->dev = const_cast<void*>(command.device_bytes);
      op->owns_dev = false;
    }
    if (!p.Outstanding()) p.last_progress_ns = NowNs();
    if (p.state != PairState::kReady) {
      p.waiting.push_back(std::move(op));
      return;
    }
    Announce(p, std::move(op));
  }

  // Stages a send's bytes on the device and announces it on the control connection.
  void Announce(Pair& p, std::unique_ptr<Op> op) {
    if (op->payload != nullptr && op->bytes > 0) {
      cudaError_t err = cudaMallocAsync(&op->dev, op->bytes, p.copy_stream);
      if (err == cudaSuccess) {
        err = cudaMemcpyAsync(op->dev, op->payload->data(), op->bytes, cudaMemcpyHostToDevice,
                              p.copy_stream);
      }
      if (err == cudaSuccess) err = cudaEventCreateWithFlags(&op->staged, cudaEventDisableTiming);
      if (err == cudaSuccess) err = cudaEventRecord(op->staged, p.copy_stream);
      if (err != cudaSuccess) {
        p.schedule.push_back(std::move(op));  // released with the pair
        return Fail(p, CudaError(p.peer, "staging a send", err), true);
      }
    }
    if (p.rank == 0) {
      AppendControlFrame(ControlFrame{ControlType::kData, op->bytes}, p.out);
      p.schedule.push_back(std::move(op));
    } else {
      AppendControlFrame(ControlFrame{ControlType::kRequest, op->bytes}, p.out);
      p.awaiting_go.push_back(std::move(op));
    }
  }

  void AcceptConnections() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      accepting_.push_back(Accepting{fd, {}, NowNs() + ToNs(options_.connect_timeout)});
    }
  }

  // Reads kHellos from accepted connections and hands them to their pairs.
  void ServiceAccepting() {
    constexpr size_t kHelloBytes = kNcclControlHeaderBytes + kNcclUniqueIdBytes;
    const int64_t now = NowNs();
    for (auto it = accepting_.begin(); it != accepting_.end();) {
      Accepting& a = *it;
      bool drop = now > a.deadline_ns;
      while (!drop && a.in.size() < kHelloBytes) {
        uint8_t buf[kHelloBytes];
        const ssize_t n = recv(a.fd, buf, kHelloBytes - a.in.size(), 0);
        if (n > 0) {
          a.in.insert(a.in.end(), buf, buf + n);
        } else {
          drop = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
          break;
        }
      }
      if (!drop && a.in.size() == kHelloBytes) {
        absl::StatusOr<ControlFrame> header = DecodeControlHeader(a.in.data());
        // A connection that does not open with a kHello from a lower id to us is not a
        // peer of ours (or a confused one): it has no pair to fail, so it is dropped.
        if (header.ok() && header->type == ControlType::kHello) {
          const HelloBody hello = DecodeHello(*header, a.in.data() + kNcclControlHeaderBytes);
          if (hello.to == self() && hello.from < hello.to) {
            OnHello(Unclaimed{a.fd, hello});
            it = accepting_.erase(it);
            continue;
          }
        }
        drop = true;
      }
      if (drop) {
        close(a.fd);
        it = accepting_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void OnHello(Unclaimed hello) {
    const PeerId from = hello.hello.from;
    auto it = pairs_.find(from);
    if (it != pairs_.end() && it->second->state == PairState::kAwaitingHello) {
      return Adopt(*it->second, hello);
    }
    if (it != pairs_.end()) {
      // The peer started a new pair, so it has given up on this one.
      Fail(*it->second, absl::UnavailableError(absl::StrCat("peer ", from, " reconnected")), true);
    }
    auto old = unclaimed_.find(from);
    if (old != unclaimed_.end()) close(old->second.fd);
    unclaimed_[from] = hello;
  }

  void Adopt(Pair& p, const Unclaimed& hello) {
    p.fd = hello.fd;
    ncclUniqueId id;
    std::memcpy(id.internal, hello.hello.unique_id.data(), sizeof(id.internal));
    StartInit(p, id);
  }

  void StartInit(Pair& p, const ncclUniqueId& id) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t comm = nullptr;
    ncclResult_t rc;
    {
      std::lock_guard<std::mutex> lock(p.guard->mu);
      rc = ncclCommInitRankConfig(&comm, 2, id, p.rank, &config);
      p.guard->comm = comm;  // even on error, so that the watchdog aborts it
    }
    p.state = PairState::kInitializing;
    if (rc != ncclSuccess && rc != ncclInProgress) {
      Fail(p, NcclError(p.peer, "ncclCommInitRankConfig", rc, comm), true);
    }
  }

  void ServiceAll() {
    for (auto it = pairs_.begin(); it != pairs_.end();) {
      Pair& p = *it->second;
      Service(p);
      if (p.state == PairState::kFailing && p.guard->aborted.load(std::memory_order_acquire)) {
        std::unique_ptr<Pair> done = std::move(it->second);
        it = pairs_.erase(it);
        failed_.insert(done->peer);
        Release(*done);
      } else {
        ++it;
      }
    }
    ServiceRetiring();
  }

  void ServiceRetiring() {
    for (auto it = retiring_.begin(); it != retiring_.end();) {
      if ((*it)->guard->aborted.load(std::memory_order_acquire)) {
        Release(**it);
        it = retiring_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Service(Pair& p) {
    if (p.state != PairState::kFailing && p.guard->aborted.load(std::memory_order_acquire)) {
      Fail(p, p.guard->Why(), true);
      return;
    }
    if (p.state == PairState::kFailing) return;
    if (p.state == PairState::kDialing) Dial(p);
    if (p.state != PairState::kFailing && p.fd >= 0 && p.state != PairState::kDialing) {
      ReadControl(p);
    }
    if (p.state == PairState::kInitializing) PollInit(p);
    if (p.state == PairState::kReady) {
      PostScheduled(p);
      Complete(p);
    }
    if (p.state != PairState::kFailing && p.fd >= 0 && p.state != PairState::kDialing) {
      WriteControl(p);
    }
    if (p.state == PairState::kReady) {
      p.guard->in_setup.store(false, std::memory_order_release);
      p.guard->deadline_ns.store(
          p.Outstanding() ? p.last_progress_ns + ToNs(options_.op_timeout) : 0,
          std::memory_order_release);
    }
  }

  void Dial(Pair& p) {
    pollfd pfd{p.fd, POLLOUT, 0};
    if (poll(&pfd, 1, 0) <= 0) return;
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      errno = error;
      return Fail(p, Errno(p.peer, "connect to the control port"), true);
    }
    HelloBody hello;
    hello.from = self();
    hello.to = p.peer;
    ncclUniqueId id;
    const ncclResult_t rc = ncclGetUniqueId(&id);
    if (rc != ncclSuccess) return Fail(p, NcclError(p.peer, "ncclGetUniqueId", rc, nullptr), true);
    std::memcpy(hello.unique_id.data(), id.internal, sizeof(id.internal));
    AppendHello(hello, p.out);
    StartInit(p, id);
  }

  void PollInit(Pair& p) {
    std::unique_lock<std::mutex> lock(p.guard->mu, std::try_to_lock);
    if (!lock.owns_lock() || p.guard->comm == nullptr) return;
    ncclResult_t state = ncclInProgress;
    const ncclResult_t rc = ncclCommGetAsyncError(p.guard->comm, &state);
    lock.unlock();
    if (rc != ncclSuccess) state = rc;
    if (state == ncclInProgress) return;
    if (state != ncclSuccess) {
      return Fail(p, NcclError(p.peer, "communicator init", state, nullptr), true);
    }
    p.state = PairState::kReady;
    p.last_progress_ns = NowNs();
    std::deque<std::unique_ptr<Op>> waiting = std::move(p.waiting);
    p.waiting.clear();
    for (auto& op : waiting) {
      if (p.state == PairState::kFailing) {
        p.waiting.push_back(std::move(op));
      } else {
        Announce(p, std::move(op));
      }
    }
  }

  void ReadControl(Pair& p) {
    uint8_t buf[64 * 1024];
    while (true) {
      const ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
      if (n > 0) {
        p.in.insert(p.in.end(), buf, buf + n);
        continue;
      }
      if (n == 0) {
        return Fail(p,
                    absl::UnavailableError(
                        absl::StrCat("peer ", p.peer, ": control connection closed by the peer")),
                    true);
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return Fail(p, Errno(p.peer, "control connection"), true);
    }
    size_t used = 0;
    while (p.in.size() - used >= kNcclControlHeaderBytes && p.state != PairState::kFailing) {
      absl::StatusOr<ControlFrame> frame = DecodeControlHeader(p.in.data() + used);
      if (!frame.ok()) {
        return Fail(p,
                    absl::InvalidArgumentError(
                        absl::StrCat("peer ", p.peer, ": ", frame.status().message())),
                    true);
      }
      used += kNcclControlHeaderBytes;
      OnFrame(p, *frame);
    }
    p.in.erase(p.in.begin(), p.in.begin() + used);
  }

  void OnFrame(Pair& p, const ControlFrame& frame) {
    const bool expected = p.rank == 0
                              ? frame.type == ControlType::kRequest
                              : frame.type == ControlType::kData || frame.type == ControlType::kGo;
    if (!expected) {
      return Fail(p,
                  absl::InvalidArgumentError(
                      absl::StrCat("peer ", p.peer, ": unexpected control frame type ",
                                   static_cast<int>(frame.type), " for rank ", p.rank)),
                  true);
    }
    if (frame.type == ControlType::kGo) {
      if (p.awaiting_go.empty()) {
        return Fail(p,
                    absl::InvalidArgumentError(
                        absl::StrCat("peer ", p.peer, ": kGo without a pending kRequest")),
                    true);
      }
      p.schedule.push_back(std::move(p.awaiting_go.front()));
      p.awaiting_go.pop_front();
      return;
    }
    if (frame.value > options_.max_message_bytes) {
      return Fail(p,
                  absl::InvalidArgumentError(absl::StrCat(
                      "peer ", p.peer, ": announced a message of ", frame.value,
                      " bytes, more than the ", options_.max_message_bytes, " allowed")),
                  true);
    }
    if (!p.Outstanding()) p.last_progress_ns = NowNs();
    auto op = std::make_unique<Op>();
    op->bytes = frame.value;
    p.schedule.push_back(std::move(op));
    if (p.rank == 0) AppendControlFrame(ControlFrame{ControlType::kGo, 0}, p.out);
  }

  void WriteControl(Pair& p) {
    while (!p.out.empty()) {
      const ssize_t n = send(p.fd, p.out.data(), p.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        p.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return Fail(p, Errno(p.peer, "control connection"), true);
    }
  }

  // Posts scheduled ops to NCCL one group at a time, in schedule order.
  void PostScheduled(Pair& p) {
    while (p.state == PairState::kReady) {
      if (p.launching) {
        std::unique_lock<std::mutex> lock(p.guard->mu, std::try_to_lock);
        if (!lock.owns_lock() || p.guard->comm == nullptr) return;
        ncclResult_t state = ncclInProgress;
        const ncclResult_t rc = ncclCommGetAsyncError(p.guard->comm, &state);
        lock.unlock();
        if (rc != ncclSuccess) state = rc;
        if (state == ncclInProgress) return;
        if (state != ncclSuccess)
          return Fail(p, NcclError(p.peer, "NCCL launch", state, nullptr), true);
        std::unique_ptr<Op> op = std::move(p.launching);
        Enqueued(p, std::move(op));
        continue;
      }
      if (p.schedule.empty()) return;
      Op& op = *p.schedule.front();
      if (op.bytes == 0) {
        std::unique_ptr<Op> ready = std::move(p.schedule.front());
        p.schedule.pop_front();
        Enqueued(p, std::move(ready));
        continue;
      }
      std::unique_lock<std::mutex> lock(p.guard->mu, std::try_to_lock);
      if (!lock.owns_lock() || p.guard->comm == nullptr) return;
      cudaError_t err = cudaSuccess;
      if (op.is_send && op.staged != nullptr) {
        err = cudaStreamWaitEvent(p.nccl_stream, op.staged, 0);
      } else if (!op.is_send) {
        err = cudaMallocAsync(&op.dev, op.bytes, p.nccl_stream);
      }
      if (err != cudaSuccess) {
        lock.unlock();
        return Fail(p, CudaError(p.peer, "preparing an NCCL op", err), true);
      }
      ncclResult_t rc = ncclGroupStart();
      if (rc == ncclSuccess) {
        rc = op.is_send
                 ? ncclSend(op.dev, op.bytes, ncclUint8, 1 - p.rank, p.guard->comm, p.nccl_stream)
                 : ncclRecv(op.dev, op.bytes, ncclUint8, 1 - p.rank, p.guard->comm, p.nccl_stream);
        const ncclResult_t end = ncclGroupEnd();
        if (rc == ncclSuccess || rc == ncclInProgress) rc = end;
      }
      lock.unlock();
      std::unique_ptr<Op> posted = std::move(p.schedule.front());
      p.schedule.pop_front();
      if (rc == ncclInProgress) {
        p.launching = std::move(posted);
        continue;
      }
      if (rc != ncclSuccess) {
        p.in_flight.push_back(std::move(posted));  // released with the pair
        return Fail(p, NcclError(p.peer, op.is_send ? "ncclSend" : "ncclRecv", rc, nullptr), true);
      }
      Enqueued(p, std::move(posted));
    }
  }

  // `op` is on nccl_stream (or needs no NCCL op): mark its end with an event.
  void Enqueued(Pair& p, std::unique_ptr<Op> op) {
    cudaError_t err = cudaEventCreateWithFlags(&op->finished, cudaEventDisableTiming);
    if (err == cudaSuccess) err = cudaEventRecord(op->finished, p.nccl_stream);
    p.in_flight.push_back(std::move(op));
    if (err != cudaSuccess) Fail(p, CudaError(p.peer, "cudaEventRecord", err), true);
  }

  // Completes finished ops in order: sends report OK, receives are copied back to host
  // and then delivered.
  void Complete(Pair& p) {
    while (!p.in_flight.empty() && p.state == PairState::kReady) {
      Op& op = *p.in_flight.front();
      const cudaError_t query = cudaEventQuery(op.finished);
      if (query == cudaErrorNotReady) break;
      if (query != cudaSuccess) return Fail(p, CudaError(p.peer, "NCCL op", query), true);
      p.last_progress_ns = NowNs();
      std::unique_ptr<Op> done = std::move(p.in_flight.front());
      p.in_flight.pop_front();
      if (done->is_send) {
        SendDone callback = std::move(done->done);
        ReleaseOp(p, *done);
        if (callback) callback(absl::OkStatus());
        continue;
      }
      done->host.resize(done->bytes);
      cudaError_t err = cudaSuccess;
      if (done->bytes > 0) {
        err = cudaMemcpyAsync(done->host.data(), done->dev, done->bytes, cudaMemcpyDeviceToHost,
                              p.copy_stream);
        if (err == cudaSuccess) err = cudaFreeAsync(done->dev, p.copy_stream);
        done->dev = nullptr;
        if (err == cudaSuccess) err = cudaEventRecord(done->finished, p.copy_stream);
      }
      p.copying.push_back(std::move(done));
      if (err != cudaSuccess)
        return Fail(p, CudaError(p.peer, "copying a message back", err), true);
    }
    while (!p.copying.empty() && p.state == PairState::kReady) {
      const cudaError_t query = cudaEventQuery(p.copying.front()->finished);
      if (query == cudaErrorNotReady) break;
      if (query != cudaSuccess) return Fail(p, CudaError(p.peer, "copy back", query), true);
      std::unique_ptr<Op> done = std::move(p.copying.front());
      p.copying.pop_front();
      std::vector<uint8_t> bytes = std::move(done->host);
      ReleaseOp(p, *done);
      if (handlers_.on_receive) handlers_.on_receive(p.peer, std::move(bytes));
    }
  }

  // Frees what `op` holds. Stream-ordered frees wait for the work queued before them;
  // on an aborted communicator NCCL's kernels have exited, so they do not wait long.
  void ReleaseOp(Pair& p, Op& op) {
    if (op.dev != nullptr && op.owns_dev) {
      cudaFreeAsync(op.dev, p.nccl_stream != nullptr ? p.nccl_stream : p.copy_stream);
    }
    op.dev = nullptr;
    if (op.staged != nullptr) cudaEventDestroy(op.staged);
    if (op.finished != nullptr) cudaEventDestroy(op.finished);
    op.staged = op.finished = nullptr;
    op.payload.reset();
  }

  // Marks the pair failed and has the watchdog abort its communicator; the pair is
  // released (sends completed, on_peer_error if `report`) once that is done.
  void Fail(Pair& p, absl::Status why, bool report) {
    if (p.state == PairState::kFailing) return;
    p.state = PairState::kFailing;
    p.failure = p.guard->SetWhy(std::move(why));
    p.report_failure = report;
    if (p.fd >= 0) {
      close(p.fd);  // the peer sees the pair go at once
      p.fd = -1;
    }
    watchdog_->RequestAbort(*p.guard);
  }

  void Release(Pair& p) {
    const absl::Status why = p.failure.ok()
                                 ? absl::UnavailableError(absl::StrCat("peer ", p.peer, " failed"))
                                 : absl::UnavailableError(p.failure.message());
    std::vector<SendDone> dones;
    auto drain = [&](std::deque<std::unique_ptr<Op>>& ops) {
      for (auto& op : ops) {
        if (op->done) dones.push_back(std::move(op->done));
        ReleaseOp(p, *op);
      }
      ops.clear();
    };
    drain(p.waiting);
    drain(p.awaiting_go);
    drain(p.schedule);
    if (p.launching) p.in_flight.push_front(std::move(p.launching));
    drain(p.in_flight);
    drain(p.copying);
    if (p.nccl_stream != nullptr) cudaStreamDestroy(p.nccl_stream);
    if (p.copy_stream != nullptr) cudaStreamDestroy(p.copy_stream);
    p.nccl_stream = p.copy_stream = nullptr;
    for (SendDone& done : dones) done(why);
    if (p.report_failure && handlers_.on_peer_error) {
      // The interface promises kUnavailable for an unreachable peer; a peer that sent
      // garbage keeps its kInvalidArgument.
      handlers_.on_peer_error(
          p.peer, p.failure.code() == absl::StatusCode::kInvalidArgument ? p.failure : why);
    }
  }

  void DrainWake() {
    uint64_t count;
    [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof(count));
  }

  void WaitForWork() {
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    // A failing pair needs no polling: the watchdog wakes us when it has aborted.
    bool busy = false;
    for (const Accepting& a : accepting_) fds.push_back({a.fd, POLLIN, 0});
    for (const auto& [peer, pair] : pairs_) {
      busy |= pair->GpuBusy();
      if (pair->fd < 0) continue;
      short events = POLLIN;
      if (!pair->out.empty() || pair->state == PairState::kDialing) events |= POLLOUT;
      fds.push_back({pair->fd, events, 0});
    }
    // Idle: sleep on the sockets and the wake-up fd (the watchdog and Post write it),
    // waking now and then for accept deadlines. Busy: CUDA events can only be polled.
    const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(
        busy ? std::chrono::nanoseconds(options_.gpu_poll_interval)
             : std::chrono::nanoseconds(std::chrono::milliseconds(100)));
    timespec timeout{static_cast<time_t>(interval.count() / 1'000'000'000),
                     static_cast<long>(interval.count() % 1'000'000'000)};
    if (ppoll(fds.data(), fds.size(), &timeout, nullptr) > 0 && fds[0].revents != 0) {
      DrainWake();
    }
  }

  const NcclOptions options_;
  const DataPlaneHandlers handlers_;
  const int listen_fd_;
  const int wake_fd_;
  const NcclAddress local_;
  const std::string address_;

  std::atomic<PeerId> self_;
  std::mutex mu_;
  std::deque<Command> commands_;  // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  bool used_ = false;             // guarded by mu_

  std::unique_ptr<NcclWatchdog> watchdog_;

  // Progress thread only.
  absl::Status device_error_;
  std::map<PeerId, std::unique_ptr<Pair>> pairs_;
  std::vector<std::unique_ptr<Pair>> retiring_;  // disconnected, waiting for the abort
  std::vector<Accepting> accepting_;
  std::map<PeerId, Unclaimed> unclaimed_;
  std::set<PeerId> failed_;  // failed and not connected again: Send gets kUnavailable

  std::thread progress_;
};

absl::StatusOr<std::unique_ptr<NcclDataPlane>> NcclDataPlane::Create(const NcclOptions& options,
                                                                     PeerId self,
                                                                     DataPlaneHandlers handlers) {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat("no CUDA device: ", cudaGetErrorString(err)));
  }
  if (options.device < 0 || options.device >= devices || options.device > kMaxNcclDevice) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", options.device, " does not exist (", devices, " found)"));
  }
  sockaddr_in bind_addr{};
  bind_addr.sin_family = AF_INET;
  bind_addr.sin_addr.s_addr = htonl(INADDR_ANY);
  NcclAddress local;
  local.device = options.device;
  if (!options.host.empty()) {
    if (inet_pton(AF_INET, options.host.c_str(), &bind_addr.sin_addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("NcclOptions::host \"", options.host, "\" is not an IPv4 literal"));
    }
    local.host = options.host;
  } else {
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) != 0) {
      return absl::UnavailableError(absl::StrCat("gethostname: ", strerror(errno)));
    }
    local.host = name;
  }
  const int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
  const int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(bind_addr);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&bind_addr), sizeof(bind_addr)) != 0 ||
      listen(listen_fd, 128) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bind_addr), &len) != 0) {
    const absl::Status status =
        absl::UnavailableError(absl::StrCat("control port: ", strerror(errno)));
    close(listen_fd);
    return status;
  }
  local.port = ntohs(bind_addr.sin_port);
  // A hostname that our own codec would refuse would make LocalAddress unusable.
  if (!DecodeNcclAddress(absl::StrCat("nccl:", local.host, ":1/0")).ok()) {
    close(listen_fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "host name \"", local.host, "\" cannot go in an address; set NcclOptions::host"));
  }
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    close(listen_fd);
    return absl::UnavailableError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  auto impl = std::make_unique<Impl>(options, self, std::move(handlers), listen_fd, wake_fd,
                                     std::move(local));
  impl->Start();
  return std::unique_ptr<NcclDataPlane>(new NcclDataPlane(std::move(impl)));
}

NcclDataPlane::NcclDataPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NcclDataPlane::~NcclDataPlane() = default;

PeerId NcclDataPlane::self() const { return impl_->self(); }
absl::Status NcclDataPlane::SetSelf(PeerId id) { return impl_->SetSelf(id); }
std::string NcclDataPlane::LocalAddress() const { return impl_->address(); }
absl::Status NcclDataPlane::Connect(PeerId peer, const std::string& address) {
  return impl_->Connect(peer, address);
}
void NcclDataPlane::Disconnect(PeerId peer) { impl_->Disconnect(peer); }
void NcclDataPlane::Send(PeerId peer, Payload message, SendDone done) {
  impl_->Send(peer, std::move(message), nullptr, 0, std::move(done));
}
void NcclDataPlane::SendDevice(PeerId peer, const void* device_bytes, size_t bytes, SendDone done) {
  impl_->Send(peer, nullptr, device_bytes, bytes, std::move(done));
}

}  // namespace yard::transport
