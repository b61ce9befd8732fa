#include "transport/placement_peers.h"

#include <cstdio>

namespace yard::transport {

void PlacementPeers::Update(UcxDataPlane& plane, PeerId self, const cluster::Placement& placement,
                            const std::function<void(PeerId)>& on_connected) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    latest_.mutable_peers()->CopyFrom(placement.peers());
    forgotten_.clear();
  }
  std::set<PeerId> allowed;
  for (const cluster::Peer& peer : placement.peers()) allowed.insert(peer.worker_id());
  plane.SetAllowedPeers(std::move(allowed));
  for (const cluster::Peer& peer : placement.peers()) {
    const PeerId id = peer.worker_id();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (id == self || !connected_.insert(id).second) continue;
    }
    const absl::Status s = plane.Connect(id, peer.data_plane_address());
    if (!s.ok()) {
      Forget(id);
      std::fprintf(stderr, "%s: cannot connect to worker %u: %s\n", who_.c_str(), id,
                   std::string(s.message()).c_str());
      continue;
    }
    if (on_connected) on_connected(id);
  }
}

void PlacementPeers::Forget(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (connected_.erase(peer) > 0) forgotten_.insert(peer);
}

std::vector<PeerId> PlacementPeers::ForgetAll() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PeerId> all(connected_.begin(), connected_.end());
  forgotten_.insert(connected_.begin(), connected_.end());
  connected_.clear();
  return all;
}

void PlacementPeers::Reconnect(UcxDataPlane& plane, PeerId self,
                               const std::function<void(PeerId)>& on_connected) {
  cluster::Placement latest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (forgotten_.empty()) return;
    latest = latest_;
  }
  Update(plane, self, latest, on_connected);
}

}  // namespace yard::transport
