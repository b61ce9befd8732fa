// A worker's data-plane peers as the coordinator's placements name them: every placement
// makes the data plane accept exactly its peers and connects those not connected yet.
// Shared by attention and expert workers.
//
// Threading: Update runs on the placement-watch thread; Forget on any (the data plane's
// peer-error handler). Ownership: borrows nothing between calls.
#ifndef SWITCHYARD_TRANSPORT_PLACEMENT_PEERS_H_
#define SWITCHYARD_TRANSPORT_PLACEMENT_PEERS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "proto/cluster.pb.h"
#include "transport/ucx/ucx_data_plane.h"

namespace yard::transport {

class PlacementPeers {
 public:
  // `who` prefixes the log line of a failed connect ("attention_worker").
  explicit PlacementPeers(std::string who) : who_(std::move(who)) {}

  // Accepts only `placement`'s peers from now on and connects each one (other than
  // `self`) not connected yet, or connected at another address (the peer reset its
  // data plane: see UcxDataPlane::Reset); `on_connected(peer)` follows each new
  // connection.
  void Update(UcxDataPlane& plane, PeerId self, const cluster::Placement& placement,
              const std::function<void(PeerId)>& on_connected = nullptr);
  // `peer`'s connection is gone: the next placement naming it (or Reconnect) connects
  // it afresh.
  void Forget(PeerId peer);
  // For a worker that the coordinator declared dead and that comes back: its
  // connections are stale at both ends, so the plane gets a new UCP worker
  // (UcxDataPlane::Reset) and every peer is forgotten; Reconnect or the next Update
  // connects them afresh, and the peers connect to the new address once the worker
  // registers with it: `registration` gets that address. On a failed reset, logs it
  // ("<who>: data plane reset failed, exiting: ...": the worker cannot serve) and
  // returns false.
  bool Rejoin(UcxDataPlane& plane, cluster::RegisterRequest& registration);
  // Connects the latest placement's peers that are not connected (a connection can
  // fail while the placement stays the same, e.g. when a peer was stopped for a
  // while). Call from a control thread (not the data plane's handlers), like Update.
  void Reconnect(UcxDataPlane& plane, PeerId self,
                 const std::function<void(PeerId)>& on_connected = nullptr);

 private:
  const std::string who_;
  std::mutex mu_;
  std::map<PeerId, std::string> connected_;  // peer → the address connected to
  cluster::Placement latest_;  // the peers the latest Update named
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_PLACEMENT_PEERS_H_
