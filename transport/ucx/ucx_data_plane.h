// The production data plane: whole messages between workers over UCX active messages
// (UCP AM), so the same code runs over TCP and over InfiniBand / RoCE where the
// machine has them (see UcxOptions::transports for why not shared memory).
#ifndef SWITCHYARD_TRANSPORT_UCX_UCX_DATA_PLANE_H_
#define SWITCHYARD_TRANSPORT_UCX_UCX_DATA_PLANE_H_

#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/data_plane.h"

namespace yard::transport {

struct UcxOptions {
  // Transports, spelled as UCX_TLS spells them: "tcp", "tcp,self", "rc,tcp".
  // Empty (default): UCX chooses among those that can report a dead peer, because
  // every endpoint asks for UCP_ERR_HANDLING_MODE_PEER. In UCX 1.13 that rules out the
  // shared-memory transports (sysv/posix: "no peer failure handler"), so on one box
  // UCX uses TCP over loopback (measured here, in one process and across two); across
  // boxes TCP, and rc/dc verbs where an InfiniBand or RoCE device is present. "sm"
  // alone therefore fails Connect (kUnavailable). Applied with ucp_config_modify to
  // this instance only; UCX_* environment variables still apply to what is not set.
  std::string transports;

  // Further UCP settings, keys without the "UCX_" prefix, applied after `transports`
  // (e.g. {"RNDV_THRESH", "8k"} to move the eager/rendezvous switch). Default: none.
  // A value UCX cannot parse fails Create; a key UCX does not know is only warned
  // about in UCX's log (stdout by default) and ignored.
  // Known issue, UCX 1.13 over TCP: the put_zcopy rendezvous asserts
  // (tcp_ep.c:939, PUT_TX_WAITING_ACK) or crashes in uct_tcp_iface_progress when a
  // peer disconnects or dies mid-transfer; a TCP-only deployment should add
  // {"RNDV_SCHEME", "am"} (rendezvous as AM fragments), as the tests do.
  std::vector<std::pair<std::string, std::string>> config;

  // The progress thread. false (default): when idle it arms the worker and sleeps in
  // poll() on the worker's event fd and a wake-up eventfd. true: it never sleeps,
  // spinning on ucp_worker_progress (lowest latency, burns a core).
  bool busy_poll = false;

  // A message longer than this from a peer is dropped and reported through
  // on_peer_error (kInvalidArgument); bounds what a confused peer makes us allocate.
  size_t max_message_bytes = size_t{1} << 30;
};

// DataPlaneInterface over one UCP context and worker.
//
// Threading: one progress thread, started by Create and joined by the destructor,
// owns the UCP worker and every endpoint. Public methods may be called from any
// thread: Send and Disconnect post to the progress thread (mutex-protected queue +
// eventfd wake-up) and return at once; Connect parses the address on the caller's
// thread, then waits for the progress thread to create the endpoint (inline when
// called from a handler). Handlers and SendDone run on the progress thread, never
// inside a UCX callback, so they may call any method here.
//
// Wire: each message is one AM (id kUcxAmId) with a 32-byte header {magic, version,
// sender PeerId, stream id, sequence number} and the payload as the AM data. UCX picks
// eager (copied out on receipt into the vector given to on_receive) or rendezvous
// (received by ucp_am_recv_data_nbx straight into a vector we own) by size.
//
// Ordering: one endpoint per connected peer; every endpoint is a stream with a random
// 64-bit id and sequence numbers 0, 1, 2... The receiver delivers a stream strictly
// in sequence order, holding back messages that overtook a rendezvous still being
// fetched. A reconnect starts a new stream; the receiver then delivers what arrived of
// the old one (in order) and drops its stragglers, which the sender may have seen
// complete with OK ("left this process", not "processed").
//
// Ownership: Send keeps the Payload shared_ptr until UCX is done with the bytes (zero
// copy from the caller's buffer). The destructor stops the progress thread: queued and
// in-flight sends complete with kUnavailable, endpoints are force-closed, the worker
// and context are released.
//
// Reset swaps the UCP worker (and so the address) under the same object.
//
// Per-peer connection states (progress thread):
//
//   (none) --Connect--> connected --endpoint error--> failed --Connect--> connected
//      ^                    |                            |
//      +-----Disconnect-----+----------------------------+
//
// Send: none -> kFailedPrecondition; failed -> kUnavailable; connected -> UCX.
class UcxDataPlane final : public DataPlaneInterface {
 public:
  // Creates the UCP context and worker and starts the progress thread.
  // kInvalidArgument for options UCX rejects (a config value it cannot parse),
  // kUnavailable when UCX cannot start (no usable transport).
  static absl::StatusOr<std::unique_ptr<UcxDataPlane>> Create(const UcxOptions& options,
                                                              PeerId self,
                                                              DataPlaneHandlers handlers);

  // Must not be called from a handler (it joins the progress thread).
  ~UcxDataPlane() override;

  UcxDataPlane(const UcxDataPlane&) = delete;
  UcxDataPlane& operator=(const UcxDataPlane&) = delete;

  PeerId self() const override;
  // Renames this endpoint (the id goes in every message header); allowed until the
  // first Connect or Send, then kFailedPrecondition for a different id.
  absl::Status SetSelf(PeerId id) override;
  // "ucx:" + hex (transport/ucx/ucx_address.h).
  std::string LocalAddress() const override;

  absl::Status Connect(PeerId peer, const std::string& address) override;
  void Disconnect(PeerId peer) override;
  void Send(PeerId peer, Payload message, SendDone done) override;
  void Recycle(std::vector<uint8_t> buffer) override;

  // Replaces the UCP worker with a new one, at a new LocalAddress(): every connection
  // is closed (on_peer_error for each, kUnavailable; sends in flight complete with
  // kUnavailable), nothing sent to the old
  // address is received any more, and peers must Connect to the new address (this side
  // connects again too). For a worker that was declared dead and comes back: UCX pairs
  // the two directions between two workers, so remaking only this side's endpoints
  // leaves the peers' endpoints bound to closed ones here (their rendezvous sends are
  // refused as "Request canceled" while the connection looks healthy). Not from a
  // handler. kUnavailable when UCX cannot create the new worker (then every Connect and
  // Send fails); kFailedPrecondition while shutting down.
  absl::Status Reset();

  // From now on only messages whose sender is in `peers` (the registered workers, from
  // the placement's peer list) reach on_receive; others are dropped on arrival (a
  // rendezvous is released unread) and counted. Until the first call every sender is
  // accepted. The sender id is the one in the message header: this keeps out stray
  // and stale endpoints, not a host that forges a registered id. Any thread.
  void SetAllowedPeers(std::set<PeerId> peers);
  // Messages refused by SetAllowedPeers so far. Any thread.
  uint64_t refused_messages() const;

 private:
  class Impl;
  explicit UcxDataPlane(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_UCX_UCX_DATA_PLANE_H_
