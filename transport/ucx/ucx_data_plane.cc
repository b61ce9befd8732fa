#include "transport/ucx/ucx_data_plane.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "transport/buffer_pool.h"
#include "transport/ucx/ucx_address.h"

namespace yard::transport {
namespace {

// The one AM id switchyard uses; both ends register/send on it.
constexpr unsigned kUcxAmId = 7;

// "YDP1" in memory order; a header without it is not ours.
constexpr uint32_t kHeaderMagic = 0x31504459;
constexpr uint16_t kHeaderVersion = 1;

// The AM header. Both ends are the same architecture (x86-64 hosts), so it travels in
// host byte order.
struct AmHeader {
  uint32_t magic = kHeaderMagic;
  uint16_t version = kHeaderVersion;
  uint16_t reserved0 = 0;
  uint32_t sender = 0;    // the sending PeerId
  uint32_t reserved1 = 0;
  uint64_t stream = 0;    // random per sending endpoint
  uint64_t seq = 0;       // 0, 1, 2... within the stream
};
static_assert(sizeof(AmHeader) == 32);

// When idle the progress thread sleeps on the worker's event fd; this bound only
// guards against a transport that fails to signal an event (it costs one wake-up a
// tenth of a second when nothing happens).
constexpr int kIdleWaitMs = 100;

// How long shutdown waits for force-closed endpoints to finish closing.
constexpr auto kCloseDeadline = std::chrono::seconds(2);

std::string UcsError(ucs_status_t status) { return ucs_status_string(status); }

}  // namespace

class UcxDataPlane::Impl {
 public:
  Impl(const UcxOptions& options, PeerId self, DataPlaneHandlers handlers)
      : options_(options), self_(self), handlers_(std::move(handlers)) {}

  ~Impl() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
      }
      Wake();
      thread_.join();
    } else if (worker_ != nullptr) {
      ucp_worker_destroy(worker_);  // Init failed after creating it
    }
    if (context_ != nullptr) ucp_cleanup(context_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  // Creates context and worker, publishes the address, starts the progress thread.
  absl::Status Init() {
    ucp_config_t* config = nullptr;
    ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
    if (s != UCS_OK) return absl::UnavailableError("ucp_config_read: " + UcsError(s));
    absl::Status modified = ModifyConfig(config);
    if (!modified.ok()) {
      ucp_config_release(config);
      return modified;
    }
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
    params.features = UCP_FEATURE_AM | (options_.busy_poll ? 0 : UCP_FEATURE_WAKEUP);
    params.mt_workers_shared = 0;
    s = ucp_init(&params, config, &context_);
    ucp_config_release(config);
    if (s != UCS_OK) {
      context_ = nullptr;
      return absl::UnavailableError(
          absl::StrCat("ucp_init (transports \"", options_.transports, "\"): ", UcsError(s)));
    }

    if (absl::Status created = CreateWorker(); !created.ok()) return created;
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return absl::UnavailableError(absl::StrCat("eventfd: errno ", errno));

    std::random_device entropy;
    stream_ids_.seed((static_cast<uint64_t>(entropy()) << 32) ^ entropy() ^
                     static_cast<uint64_t>(self()) << 16);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  // Creates the UCP worker, publishes its address, registers the AM handler and (when
  // sleeping) gets its event fd. Init, and Reset after the old worker is destroyed.
  absl::Status CreateWorker() {
    ucp_worker_params_t worker_params{};
    worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;  // only the progress thread
    ucs_status_t s = ucp_worker_create(context_, &worker_params, &worker_);
    if (s != UCS_OK) {
      worker_ = nullptr;
      return absl::UnavailableError("ucp_worker_create: " + UcsError(s));
    }

    ucp_address_t* raw = nullptr;
    size_t raw_size = 0;
    s = ucp_worker_get_address(worker_, &raw, &raw_size);
    if (s != UCS_OK) return absl::UnavailableError("ucp_worker_get_address: " + UcsError(s));
    {
      std::lock_guard<std::mutex> lock(address_mu_);
      address_ = EncodeUcxAddress(raw, raw_size);
    }
    ucp_worker_release_address(worker_, raw);

    ucp_am_handler_param_t am{};
    am.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                    UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    am.id = kUcxAmId;
    am.flags = UCP_AM_FLAG_WHOLE_MSG;
    am.cb = &Impl::OnAmReceive;
    am.arg = this;
    s = ucp_worker_set_am_recv_handler(worker_, &am);
    if (s != UCS_OK) return absl::UnavailableError("ucp_worker_set_am_recv_handler: " + UcsError(s));

    if (!options_.busy_poll) {
      s = ucp_worker_get_efd(worker_, &worker_fd_);
      if (s != UCS_OK) return absl::UnavailableError("ucp_worker_get_efd: " + UcsError(s));
    }
    return absl::OkStatus();
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
  std::string address() const {
    std::lock_guard<std::mutex> lock(address_mu_);
    return address_;
  }

  absl::Status Connect(PeerId peer, const std::string& address) {
    absl::StatusOr<std::vector<uint8_t>> raw = DecodeUcxAddress(address);
    if (!raw.ok()) return raw.status();
    if (OnProgressThread()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        used_ = true;
      }
      // Commands posted before this call (a Disconnect, say) come first.
      if (ProcessCommands() || stopped_) {
        return absl::FailedPreconditionError("UCX data plane is shutting down");
      }
      return DoConnect(peer, address, *raw);
    }
    std::promise<absl::Status> result;
    std::future<absl::Status> done = result.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      used_ = true;
      if (stopping_ || closed_) {
        return absl::FailedPreconditionError("UCX data plane is shutting down");
      }
      commands_.push_back(ConnectCommand{peer, address, std::move(*raw), &result});
      has_commands_.store(true, std::memory_order_release);
    }
    Wake();
    return done.get();
  }

  void Disconnect(PeerId peer) { Post(DisconnectCommand{peer}); }

  absl::Status Reset() {
    YARD_CHECK(!OnProgressThread(), "Reset is not called from a data-plane handler");
    std::promise<absl::Status> result;
    std::future<absl::Status> done = result.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || closed_) {
        return absl::FailedPreconditionError("UCX data plane is shutting down");
      }
      commands_.push_back(ResetCommand{&result});
      has_commands_.store(true, std::memory_order_release);
    }
    Wake();
    return done.get();
  }

  void Recycle(std::vector<uint8_t> buffer) { pool_.Give(std::move(buffer)); }

  void SetAllowedPeers(std::set<PeerId> peers) {
    std::lock_guard<std::mutex> lock(allowed_mu_);
    allowed_ = std::move(peers);
  }
  uint64_t refused_messages() const { return refused_.load(std::memory_order_relaxed); }

  void Send(PeerId peer, Payload message, SendDone done) {
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      used_ = true;
      if (!closed_) {
        commands_.push_back(SendCommand{peer, std::move(message), std::move(done)});
        has_commands_.store(true, std::memory_order_release);
        queued = true;
      }
    }
    if (queued) {
      Wake();
    } else if (done != nullptr) {
      // Only when racing the destructor: the progress thread is gone.
      done(absl::UnavailableError("UCX data plane is shut down"));
    }
  }

 private:
  struct SendCommand {
    PeerId peer;
    Payload payload;
    SendDone done;
  };
  struct ConnectCommand {
    PeerId peer;
    std::string address;
    std::vector<uint8_t> raw;
    std::promise<absl::Status>* result;  // the caller waits on it
  };
  struct DisconnectCommand {
    PeerId peer;
  };
  struct ResetCommand {
    std::promise<absl::Status>* result;  // the caller waits on it
  };
  using Command = std::variant<SendCommand, ConnectCommand, DisconnectCommand, ResetCommand>;

  // What handlers are told, queued by UCX callbacks and run after ucp_worker_progress
  // returns, so that no handler runs inside UCX.
  struct Event {
    enum class Kind { kReceive, kPeerError, kSendDone } kind;
    PeerId peer = 0;
    absl::Status status;
    std::vector<uint8_t> message;
    SendDone done;
  };

  struct Connection {
    ucp_ep_h ep = nullptr;  // null once failed
    std::string address;
    bool failed = false;
    std::string error;      // why it failed
    uint64_t stream = 0;
    uint64_t next_seq = 0;
  };

  // A send UCX has not finished; owned by sends_ until its callback (or shutdown).
  struct PendingSend {
    Impl* impl;
    PeerId peer;
    ucp_ep_h ep;
    AmHeader header;  // UCX may read it until completion
    Payload payload;
    SendDone done;
  };

  // A rendezvous receive in flight; owns the buffer UCX writes into.
  struct PendingReceive {
    Impl* impl;
    PeerId from;
    uint64_t stream;
    uint64_t seq;
    std::vector<uint8_t> data;
  };

  // One message slot of a receive stream.
  struct Slot {
    bool ready = false;   // data complete (or failed)
    bool failed = false;
    std::vector<uint8_t> data;
  };
  struct ReceiveStream {
    uint64_t next = 0;               // the seq delivered next
    std::map<uint64_t, Slot> slots;  // arrived or being fetched, seq >= next
  };
  using StreamKey = std::pair<PeerId, uint64_t>;  // (sender, stream id)

  bool OnProgressThread() const {
    return std::this_thread::get_id() == progress_thread_id_.load(std::memory_order_acquire);
  }

  void Wake() {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) < 0) {
      // EAGAIN: the counter is saturated, so the thread is awake anyway.
    }
  }

  void Post(Command command) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;  // only when racing the destructor; Disconnect has no reply
      commands_.push_back(std::move(command));
      has_commands_.store(true, std::memory_order_release);
    }
    Wake();
  }

  absl::Status ModifyConfig(ucp_config_t* config) {
    std::vector<std::pair<std::string, std::string>> settings;
    if (!options_.transports.empty()) settings.emplace_back("TLS", options_.transports);
    settings.insert(settings.end(), options_.config.begin(), options_.config.end());
    for (const auto& [key, value] : settings) {
      ucs_status_t s = ucp_config_modify(config, key.c_str(), value.c_str());
      if (s != UCS_OK) {
        return absl::InvalidArgumentError(
            absl::StrCat("UCX config ", key, "=", value, ": ", UcsError(s)));
      }
    }
    return absl::OkStatus();
  }

  // ---- progress thread ----

  void Run() {
    progress_thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
    while (true) {
      bool busy = has_commands_.load(std::memory_order_acquire);
      const bool stop = ProcessCommands();
      while (worker_ != nullptr && ucp_worker_progress(worker_) != 0) busy = true;
      FinishClosedEndpoints();
      busy |= !events_.empty();
      DispatchEvents();
      if (stop) break;
      if (busy || options_.busy_poll) continue;
      WaitForWork();
    }
    Shutdown();
  }

  // Sleeps until UCX or a poster has something for us.
  void WaitForWork() {
    if (has_commands_.load(std::memory_order_acquire)) return;
    ucs_status_t s = worker_ != nullptr ? ucp_worker_arm(worker_) : UCS_ERR_NO_ELEM;
    if (s == UCS_ERR_BUSY) return;  // events arrived since the last progress
    pollfd fds[2] = {{worker_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = s == UCS_OK ? 2 : 1;  // arm failed: poll the wake-up fd only
    if (poll(n == 2 ? fds : fds + 1, n, kIdleWaitMs) > 0 && (fds[1].revents & POLLIN)) {
      uint64_t count;
      if (read(wake_fd_, &count, sizeof(count)) < 0) {
        // EAGAIN: another reader cannot exist; nothing to do.
      }
    }
  }

  // Runs queued commands; true when the data plane is stopping.
  bool ProcessCommands() {
    std::deque<Command> batch;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(commands_);
      has_commands_.store(false, std::memory_order_relaxed);
      stopping = stopping_;
    }
    for (Command& command : batch) {
      if (auto* send = std::get_if<SendCommand>(&command)) {
        if (stopping) {
          QueueSendDone(std::move(send->done),
                        absl::UnavailableError("UCX data plane is shutting down"));
        } else {
          DoSend(*send);
        }
      } else if (auto* connect = std::get_if<ConnectCommand>(&command)) {
        connect->result->set_value(
            stopping ? absl::FailedPreconditionError("UCX data plane is shutting down")
                     : DoConnect(connect->peer, connect->address, connect->raw));
      } else if (auto* reset = std::get_if<ResetCommand>(&command)) {
        reset->result->set_value(stopping ? absl::FailedPreconditionError(
                                                "UCX data plane is shutting down")
                                          : DoReset());
      } else {
        CloseConnection(std::get<DisconnectCommand>(command).peer, /*force=*/false);
      }
    }
    return stopping;
  }

  // A new worker in place of the old: nothing sent to the old address arrives any more,
  // and every peer must connect to the new one.
  absl::Status DoReset() {
    // Every connection's peer hears of it: what it was waiting for from there (an
    // answer to a message already sent) is not coming.
    for (const auto& [peer, c] : connections_) {
      QueuePeerError(peer, absl::UnavailableError(absl::StrCat(
                               "connection to peer ", peer, " closed: the data plane was reset")));
    }
    DestroyWorker("the UCX data plane was reset", /*shutting_down=*/false);
    // Messages that arrived from the old connections and were not handed out yet are
    // dropped with them: a peer re-sends what it learns was not answered.
    std::erase_if(events_, [this](Event& e) {
      if (e.kind != Event::Kind::kReceive) return false;
      pool_.Give(std::move(e.message));
      return true;
    });
    absl::Status created = CreateWorker();
    if (!created.ok()) {
      // Without a worker every Send and Connect fails; the owner is told here.
      if (worker_ != nullptr) ucp_worker_destroy(worker_);
      worker_ = nullptr;
      worker_fd_ = -1;
    }
    return created;
  }

  // Force-closes every endpoint (their sends complete with kUnavailable, `why`), destroys
  // the worker and forgets every receive stream; rendezvous receives that finish
  // meanwhile are dropped. Shutting down, the queued events are dispatched before the
  // worker is destroyed (the order UCX 1.13 over TCP was tested in) and stopped_ is
  // set for handlers that call Connect; for a reset they wait for the progress loop.
  void DestroyWorker(const std::string& why, bool shutting_down) {
    std::vector<PeerId> peers;
    for (const auto& [peer, c] : connections_) peers.push_back(peer);
    for (PeerId peer : peers) CloseConnection(peer, /*force=*/true);
    const auto deadline = std::chrono::steady_clock::now() + kCloseDeadline;
    while ((!closing_.empty() || !failed_endpoints_.empty()) &&
           std::chrono::steady_clock::now() < deadline) {
      ucp_worker_progress(worker_);
      FinishClosedEndpoints();
    }
    dropping_receives_ = true;
    stopped_ = shutting_down;
    for (auto& [pending, owned] : sends_) {
      QueueSendDone(std::move(owned->done),
                    absl::UnavailableError(absl::StrCat("send to peer ", owned->peer, ": ", why)));
    }
    // Shutting down, the handlers hear everything before the worker goes (a reset
    // leaves them to the progress loop, after the new worker exists).
    if (shutting_down) DispatchEvents();
    for (ucs_status_ptr_t request : closing_) ucp_request_free(request);
    closing_.clear();
    failed_endpoints_.clear();
    endpoint_peers_.clear();
    ucp_worker_destroy(worker_);
    worker_ = nullptr;
    dropping_receives_ = false;
    sends_.clear();
    receives_.clear();
    streams_.clear();
    retired_streams_.clear();
  }

  absl::Status DoConnect(PeerId peer, const std::string& address,
                         const std::vector<uint8_t>& raw) {
    YARD_CHECK(OnProgressThread(), "UCP endpoints are created on the progress thread");
    if (worker_ == nullptr) {
      return absl::UnavailableError(absl::StrCat("connect to peer ", peer, ": no UCP worker"));
    }
    auto it = connections_.find(peer);
    if (it != connections_.end()) {
      if (it->second.address == address && !it->second.failed) return absl::OkStatus();
      CloseConnection(peer, /*force=*/false);
    }
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                        UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = reinterpret_cast<const ucp_address_t*>(raw.data());
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &Impl::OnEndpointError;
    params.err_handler.arg = this;
    ucp_ep_h ep = nullptr;
    ucs_status_t s = ucp_ep_create(worker_, &params, &ep);
    if (s != UCS_OK) {
      return absl::UnavailableError(
          absl::StrCat("connect to peer ", peer, ": ucp_ep_create: ", UcsError(s)));
    }
    Connection& c = connections_[peer];
    c = Connection{};
    c.ep = ep;
    c.address = address;
    c.stream = stream_ids_();
    endpoint_peers_[ep] = peer;
    return absl::OkStatus();
  }

  // Forgets `peer`. Its in-flight sends complete now with kUnavailable; UCX keeps
  // their payloads until it is done with them.
  //
  // `force`: only for failed endpoints and shutdown. A live endpoint is closed in
  // flush mode because UCX 1.13 force-closing a live TCP endpoint with transfers in
  // flight crashed later in uct_tcp_iface_progress (a use-after-free of the closed
  // uct endpoint when the peer's socket events arrived). Flushing means bytes already
  // handed to UCX may still reach the peer after the caller was told kUnavailable,
  // which the interface allows (kUnavailable never promises "not delivered").
  void CloseConnection(PeerId peer, bool force) {
    auto it = connections_.find(peer);
    if (it == connections_.end()) return;
    ucp_ep_h ep = it->second.ep;
    connections_.erase(it);
    if (ep == nullptr) return;  // failed: already being force-closed
    endpoint_peers_.erase(ep);
    for (auto& [pending, owned] : sends_) {
      if (owned->ep == ep) {
        QueueSendDone(std::move(owned->done),
                      absl::UnavailableError(absl::StrCat("peer ", peer, " was disconnected")));
        owned->done = nullptr;
      }
    }
    CloseEndpoint(ep, force);
  }

  void CloseEndpoint(ucp_ep_h ep, bool force) {
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    ucs_status_ptr_t request = ucp_ep_close_nbx(ep, &params);
    if (request != nullptr && !UCS_PTR_IS_ERR(request)) closing_.push_back(request);
  }

  void FinishClosedEndpoints() {
    for (ucp_ep_h ep : failed_endpoints_) CloseEndpoint(ep, /*force=*/true);
    failed_endpoints_.clear();
    for (auto it = closing_.begin(); it != closing_.end();) {
      if (ucp_request_check_status(*it) != UCS_INPROGRESS) {
        ucp_request_free(*it);
        it = closing_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void DoSend(SendCommand& command) {
    YARD_CHECK(OnProgressThread(), "UCX sends are issued on the progress thread");
    if (command.payload == nullptr) {
      QueueSendDone(std::move(command.done), absl::InvalidArgumentError("null payload"));
      return;
    }
    auto it = connections_.find(command.peer);
    if (it == connections_.end()) {
      QueueSendDone(std::move(command.done),
                    absl::FailedPreconditionError(
                        absl::StrCat("peer ", command.peer, " is not connected")));
      return;
    }
    Connection& c = it->second;
    if (c.failed) {
      QueueSendDone(std::move(command.done),
                    absl::UnavailableError(absl::StrCat("peer ", command.peer,
                                                        ": connection failed: ", c.error)));
      return;
    }
    auto owned = std::make_unique<PendingSend>();
    PendingSend* pending = owned.get();
    pending->impl = this;
    pending->peer = command.peer;
    pending->ep = c.ep;
    pending->header.sender = self_.load(std::memory_order_acquire);
    pending->header.stream = c.stream;
    pending->header.seq = c.next_seq;
    pending->payload = std::move(command.payload);
    pending->done = std::move(command.done);
    sends_.emplace(pending, std::move(owned));

    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    params.cb.send = &Impl::OnSendComplete;
    params.user_data = pending;
    ucs_status_ptr_t request =
        ucp_am_send_nbx(c.ep, kUcxAmId, &pending->header, sizeof(AmHeader),
                        pending->payload->data(), pending->payload->size(), &params);
    if (UCS_PTR_IS_ERR(request)) {
      // Not sent: the sequence number stays free so the stream has no gap.
      CompleteSend(pending, UCS_PTR_STATUS(request));
      return;
    }
    ++c.next_seq;
    if (request == nullptr) CompleteSend(pending, UCS_OK);
  }

  void CompleteSend(PendingSend* pending, ucs_status_t status) {
    auto it = sends_.find(pending);
    if (it == sends_.end()) return;
    QueueSendDone(std::move(pending->done),
                  status == UCS_OK ? absl::OkStatus()
                                   : absl::UnavailableError(absl::StrCat(
                                         "send to peer ", pending->peer, ": ", UcsError(status))));
    sends_.erase(it);  // releases the payload: UCX is done with it
  }

  void QueueSendDone(SendDone done, absl::Status status) {
    if (done == nullptr) return;
    Event e{Event::Kind::kSendDone};
    e.status = std::move(status);
    e.done = std::move(done);
    events_.push_back(std::move(e));
  }

  void QueuePeerError(PeerId peer, absl::Status why) {
    Event e{Event::Kind::kPeerError};
    e.peer = peer;
    e.status = std::move(why);
    events_.push_back(std::move(e));
  }

  void DispatchEvents() {
    // Handlers may queue more (a Connect from a handler runs commands inline).
    while (!events_.empty()) {
      Event e = std::move(events_.front());
      events_.pop_front();
      switch (e.kind) {
        case Event::Kind::kReceive:
          if (handlers_.on_receive) handlers_.on_receive(e.peer, std::move(e.message));
          break;
        case Event::Kind::kPeerError:
          if (handlers_.on_peer_error) handlers_.on_peer_error(e.peer, std::move(e.status));
          break;
        case Event::Kind::kSendDone:
          e.done(std::move(e.status));
          break;
      }
    }
  }

  // The stream a message belongs to; nullptr when it belongs to a retired one. A new
  // stream from a sender retires its older ones (the sender reconnected).
  ReceiveStream* StreamFor(PeerId from, uint64_t stream) {
    const StreamKey key{from, stream};
    if (retired_streams_.count(key) != 0) return nullptr;
    auto it = streams_.find(key);
    if (it != streams_.end()) return &it->second;
    for (auto old = streams_.lower_bound({from, 0});
         old != streams_.end() && old->first.first == from;) {
      for (auto& [seq, slot] : old->second.slots) {
        if (slot.ready && !slot.failed) QueueReceive(from, std::move(slot.data));
      }
      retired_streams_.insert(old->first);
      old = streams_.erase(old);
    }
    return &streams_[key];
  }

  void QueueReceive(PeerId from, std::vector<uint8_t> message) {
    Event e{Event::Kind::kReceive};
    e.peer = from;
    e.message = std::move(message);
    events_.push_back(std::move(e));
  }

  // Delivers the stream's ready prefix in sequence order.
  void Deliver(PeerId from, ReceiveStream& stream) {
    while (!stream.slots.empty()) {
      auto head = stream.slots.begin();
      if (head->first != stream.next || !head->second.ready) return;
      if (!head->second.failed) QueueReceive(from, std::move(head->second.data));
      stream.slots.erase(head);
      ++stream.next;
    }
  }

  static ucs_status_t OnAmReceive(void* arg, const void* header, size_t header_length,
                                  void* data, size_t length, const ucp_am_recv_param_t* param) {
    return static_cast<Impl*>(arg)->HandleAm(header, header_length, data, length, *param);
  }

  ucs_status_t HandleAm(const void* header_bytes, size_t header_length, void* data,
                        size_t length, const ucp_am_recv_param_t& param) {
    const bool rendezvous = (param.recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    auto drop = [&]() {
      if (rendezvous) ucp_am_data_release(worker_, data);  // tells the sender we refuse it
      return UCS_OK;
    };
    AmHeader header;
    if (header_length != sizeof(header)) return drop();
    std::memcpy(&header, header_bytes, sizeof(header));
    if (header.magic != kHeaderMagic || header.version != kHeaderVersion) return drop();
    if (!Allowed(header.sender)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return drop();
    }
    if (length > options_.max_message_bytes) {
      QueuePeerError(header.sender,
                     absl::InvalidArgumentError(absl::StrCat(
                         "message of ", length, " bytes from peer ", header.sender,
                         " exceeds max_message_bytes ", options_.max_message_bytes)));
      return drop();
    }
    ReceiveStream* stream = StreamFor(header.sender, header.stream);
    if (stream == nullptr || header.seq < stream->next ||
        stream->slots.count(header.seq) != 0) {
      return drop();  // a retired stream's straggler, or a duplicate
    }
    Slot& slot = stream->slots[header.seq];
    if (!rendezvous) {
      slot.data = pool_.Take(length);
      if (length > 0) std::memcpy(slot.data.data(), data, length);
      slot.ready = true;
      Deliver(header.sender, *stream);
      return UCS_OK;  // eager data copied: UCX may reuse its buffer
    }

    auto owned = std::make_unique<PendingReceive>();
    PendingReceive* pending = owned.get();
    pending->impl = this;
    pending->from = header.sender;
    pending->stream = header.stream;
    pending->seq = header.seq;
    pending->data = pool_.Take(length);
    receives_.emplace(pending, std::move(owned));
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    params.cb.recv_am = &Impl::OnReceiveComplete;
    params.user_data = pending;
    ucs_status_ptr_t request =
        ucp_am_recv_data_nbx(worker_, data, pending->data.data(), length, &params);
    if (request == nullptr) {
      CompleteReceive(pending, UCS_OK);
    } else if (UCS_PTR_IS_ERR(request)) {
      CompleteReceive(pending, UCS_PTR_STATUS(request));
    }
    return UCS_OK;  // UCX owns the descriptor after ucp_am_recv_data_nbx
  }

  bool Allowed(PeerId sender) {
    std::lock_guard<std::mutex> lock(allowed_mu_);
    return !allowed_.has_value() || allowed_->count(sender) != 0;
  }

  void CompleteReceive(PendingReceive* pending, ucs_status_t status) {
    auto owned = receives_.find(pending);
    if (owned == receives_.end()) return;
    auto it = streams_.find({pending->from, pending->stream});
    if (it != streams_.end() && !dropping_receives_) {
      auto slot = it->second.slots.find(pending->seq);
      if (slot != it->second.slots.end()) {
        slot->second.ready = true;
        if (status == UCS_OK) {
          slot->second.data = std::move(pending->data);
        } else {
          slot->second.failed = true;
          QueuePeerError(pending->from,
                         absl::UnavailableError(absl::StrCat("receive from peer ", pending->from,
                                                             ": ", UcsError(status))));
        }
        Deliver(pending->from, it->second);
      }
    }
    receives_.erase(owned);
  }

  static void OnSendComplete(void* request, ucs_status_t status, void* user_data) {
    auto* pending = static_cast<PendingSend*>(user_data);
    pending->impl->CompleteSend(pending, status);
    ucp_request_free(request);
  }

  static void OnReceiveComplete(void* request, ucs_status_t status, size_t /*length*/,
                                void* user_data) {
    auto* pending = static_cast<PendingReceive*>(user_data);
    pending->impl->CompleteReceive(pending, status);
    ucp_request_free(request);
  }

  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
    static_cast<Impl*>(arg)->HandleEndpointError(ep, status);
  }

  void HandleEndpointError(ucp_ep_h ep, ucs_status_t status) {
    auto it = endpoint_peers_.find(ep);
    if (it == endpoint_peers_.end()) return;  // already closed by us
    const PeerId peer = it->second;
    endpoint_peers_.erase(it);
    Connection& c = connections_[peer];
    c.failed = true;
    c.ep = nullptr;
    c.error = UcsError(status);
    failed_endpoints_.push_back(ep);  // closed after ucp_worker_progress returns
    QueuePeerError(peer, absl::UnavailableError(
                             absl::StrCat("connection to peer ", peer, " failed: ", c.error)));
  }

  // Stops: fails what is queued, closes endpoints (cancelling in-flight sends), destroys
  // the worker, and runs the last SendDones, all on this thread.
  void Shutdown() {
    if (worker_ != nullptr) DestroyWorker("UCX data plane shut down", /*shutting_down=*/true);
    stopped_ = true;
    DispatchEvents();
    // Handlers run above may have posted more; fail those until the queue stays empty.
    while (true) {
      std::deque<Command> batch;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (commands_.empty()) {
          closed_ = true;
          break;
        }
        batch.swap(commands_);
      }
      for (Command& command : batch) {
        if (auto* send = std::get_if<SendCommand>(&command)) {
          QueueSendDone(std::move(send->done),
                        absl::UnavailableError("UCX data plane is shutting down"));
        } else if (auto* connect = std::get_if<ConnectCommand>(&command)) {
          connect->result->set_value(
              absl::FailedPreconditionError("UCX data plane is shutting down"));
        } else if (auto* reset = std::get_if<ResetCommand>(&command)) {
          reset->result->set_value(
              absl::FailedPreconditionError("UCX data plane is shutting down"));
        }
      }
      DispatchEvents();
    }
  }

  const UcxOptions options_;
  std::atomic<PeerId> self_;  // fixed once used_
  const DataPlaneHandlers handlers_;

  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;  // progress thread only, after Init
  mutable std::mutex address_mu_;
  std::string address_;            // guarded by address_mu_; changed only by Reset
  int worker_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<std::thread::id> progress_thread_id_{};  // set first thing by Run

  std::mutex mu_;
  std::deque<Command> commands_;  // guarded by mu_
  bool stopping_ = false;         // guarded by mu_: the destructor asked to stop
  bool closed_ = false;           // guarded by mu_: the progress thread is done
  bool used_ = false;             // guarded by mu_: Connect or Send was called
  std::atomic<bool> has_commands_{false};

  // Progress thread only.
  std::mt19937_64 stream_ids_;
  std::unordered_map<PeerId, Connection> connections_;
  std::unordered_map<ucp_ep_h, PeerId> endpoint_peers_;  // open endpoints
  std::vector<ucp_ep_h> failed_endpoints_;                // to force-close
  std::vector<ucs_status_ptr_t> closing_;                 // ep close requests
  std::unordered_map<PendingSend*, std::unique_ptr<PendingSend>> sends_;
  std::unordered_map<PendingReceive*, std::unique_ptr<PendingReceive>> receives_;
  // Receive buffers handed back (Recycle); any thread.
  BufferPool pool_;
  std::map<StreamKey, ReceiveStream> streams_;
  std::set<StreamKey> retired_streams_;
  std::deque<Event> events_;
  bool stopped_ = false;            // shut down: Connect from a handler fails
  bool dropping_receives_ = false;  // the worker is being destroyed

  std::mutex allowed_mu_;
  std::optional<std::set<PeerId>> allowed_;  // guarded by allowed_mu_; none: everyone
  std::atomic<uint64_t> refused_{0};
};

absl::StatusOr<std::unique_ptr<UcxDataPlane>> UcxDataPlane::Create(const UcxOptions& options,
                                                                   PeerId self,
                                                                   DataPlaneHandlers handlers) {
  auto impl = std::make_unique<Impl>(options, self, std::move(handlers));
  absl::Status status = impl->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<UcxDataPlane>(new UcxDataPlane(std::move(impl)));
}

UcxDataPlane::UcxDataPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UcxDataPlane::~UcxDataPlane() = default;

PeerId UcxDataPlane::self() const { return impl_->self(); }

absl::Status UcxDataPlane::SetSelf(PeerId id) { return impl_->SetSelf(id); }

std::string UcxDataPlane::LocalAddress() const { return impl_->address(); }

absl::Status UcxDataPlane::Connect(PeerId peer, const std::string& address) {
  return impl_->Connect(peer, address);
}

void UcxDataPlane::Disconnect(PeerId peer) { impl_->Disconnect(peer); }

absl::Status UcxDataPlane::Reset() { return impl_->Reset(); }

void UcxDataPlane::Send(PeerId peer, Payload message, SendDone done) {
  impl_->Send(peer, std::move(message), std::move(done));
}

void UcxDataPlane::Recycle(std::vector<uint8_t> buffer) { impl_->Recycle(std::move(buffer)); }

void UcxDataPlane::SetAllowedPeers(std::set<PeerId> peers) {
  impl_->SetAllowedPeers(std::move(peers));
}

uint64_t UcxDataPlane::refused_messages() const { return impl_->refused_messages(); }

}  // namespace yard::transport
