// The data plane: whole messages (a dispatch or a combine, already encoded by
// transport/wire_format.h) between attention workers and expert workers. It moves
// bytes and knows no model.
//
// Peers are named by the worker id the coordinator assigned at registration; a peer's
// address is the opaque string its LocalAddress() returned, which travels through
// the coordinator (cluster.proto), never chosen by hand.
//
// Threading: an implementation runs its own progress thread(s). The receive and
// peer-error handlers, and every send's completion, are called on that thread; a
// caller that owns an actor posts from there to its strand and returns at once
// (no handler may block or call back into the data plane synchronously except
// Send, which never blocks).
#ifndef SWITCHYARD_TRANSPORT_DATA_PLANE_H_
#define SWITCHYARD_TRANSPORT_DATA_PLANE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace yard::transport {

// A worker id from the coordinator's registry.
using PeerId = uint32_t;

// Message bytes, shared so that a send can hold them until the transport is done
// (UCX may read them after Send returns) without a copy.
using Payload = std::shared_ptr<const std::vector<uint8_t>>;

// Called once per Send: OK when the bytes have left this process's buffers (not
// that the peer processed them), else why the send failed (kUnavailable: the peer
// is unreachable or was disconnected).
using SendDone = std::function<void(absl::Status)>;

// A whole message from `from`, as the sender passed it to Send.
using ReceiveHandler = std::function<void(PeerId from, std::vector<uint8_t> message)>;

// A connection to `peer` failed or was closed (its in-flight sends complete with an
// error too). The peer may be connected again later.
using PeerErrorHandler = std::function<void(PeerId peer, absl::Status why)>;

struct DataPlaneHandlers {
  ReceiveHandler on_receive;
  PeerErrorHandler on_peer_error;
};

class DataPlaneInterface {
 public:
  virtual ~DataPlaneInterface() = default;

  // This endpoint's id and the address peers connect to.
  virtual PeerId self() const = 0;
  virtual std::string LocalAddress() const = 0;

  // Names the endpoint with the id the coordinator assigned. A worker creates its data
  // plane before registering (registration carries LocalAddress()), so it learns its
  // id only afterwards. Call before the first Connect or Send; FailedPrecondition
  // later, or when the implementation fixes ids at creation and `id` differs.
  virtual absl::Status SetSelf(PeerId id) = 0;

  // Opens (or keeps) a connection to `peer` at `address`. Idempotent for the same
  // address; kInvalidArgument for an address this transport cannot parse.
  virtual absl::Status Connect(PeerId peer, const std::string& address) = 0;
  // Closes the connection; pending sends to it complete with kUnavailable.
  virtual void Disconnect(PeerId peer) = 0;

  // Queues `message` to `peer` (connected first, else `done` gets
  // kFailedPrecondition). Messages to one peer arrive in the order sent. Never blocks.
  virtual void Send(PeerId peer, Payload message, SendDone done) = 0;

  // Hands a received message's buffer back once its bytes are no longer needed, so a
  // later receive can reuse it instead of allocating and filling a fresh one (optional:
  // a buffer never handed back is simply freed). Any thread.
  virtual void Recycle(std::vector<uint8_t> buffer) {}
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_DATA_PLANE_H_
