#include "transport/placement_peers.h"

#include <cstdio>
#include <set>

namespace yard::transport {

void PlacementPeers::Update(UcxDataPlane& plane, PeerId self, const cluster::Placement& placement,
                            const std::function<void(PeerId)>& on_connected) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    latest_.mutable_peers()->CopyFrom(placement.peers());
  }
  std::set<PeerId> allowed;
  for (const cluster::Peer& peer : placement.peers()) allowed.insert(peer.worker_id());
  plane.SetAllowedPeers(std::move(allowed));
  for (const cluster::Peer& peer : placement.peers()) {
    const PeerId id = peer.worker_id();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (id == self) continue;
      auto [it, added] = connected_.try_emplace(id, peer.data_plane_address());
      if (!added && it->second == peer.data_plane_address()) continue;
      it->second = peer.data_plane_address();
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
  connected_.erase(peer);
}

bool PlacementPeers::Rejoin(UcxDataPlane& plane, cluster::RegisterRequest& registration) {
  if (absl::Status s = plane.Reset(); !s.ok()) {
    std::fprintf(stderr, "%s: data plane reset failed, exiting: %s\n", who_.c_str(),
                 std::string(s.message()).c_str());
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    connected_.clear();
  }
  registration.mutable_info()->set_data_plane_address(plane.LocalAddress());
  return true;
}

void PlacementPeers::Reconnect(UcxDataPlane& plane, PeerId self,
                               const std::function<void(PeerId)>& on_connected) {
  cluster::Placement latest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool missing = false;
    for (const cluster::Peer& peer : latest_.peers()) {
      auto it = connected_.find(peer.worker_id());
      missing |= peer.worker_id() != self &&
                 (it == connected_.end() || it->second != peer.data_plane_address());
    }
    if (!missing) return;
    latest = latest_;
  }
  Update(plane, self, latest, on_connected);
}

}  // namespace yard::transport
