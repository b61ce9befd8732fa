#include "transport/placement_peers.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/transport/ucx/test_inbox.h"

namespace yard::transport {
namespace {

using testing::Inbox;
using testing::PatternPayload;
using testing::SendLog;

constexpr PeerId kSelf = 1;
constexpr PeerId kPeer = 2;

std::unique_ptr<UcxDataPlane> MakePlane(PeerId self, Inbox& inbox) {
  UcxOptions options;
  options.transports = "tcp";
  options.config.emplace_back("RNDV_SCHEME", "am");
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> plane =
      UcxDataPlane::Create(options, self, inbox.Handlers());
  EXPECT_TRUE(plane.ok()) << plane.status();
  return plane.ok() ? std::move(*plane) : nullptr;
}

cluster::Placement PlacementNaming(const std::vector<std::pair<PeerId, std::string>>& peers) {
  cluster::Placement placement;
  for (const auto& [id, address] : peers) {
    cluster::Peer* peer = placement.add_peers();
    peer->set_worker_id(id);
    peer->set_data_plane_address(address);
  }
  return placement;
}

// Sends one message from `from` to `to_id` and waits for it at `inbox`.
void ExpectDelivered(UcxDataPlane& from, PeerId to_id, Inbox& inbox, SendLog& sent) {
  const size_t before = sent.Results().size();
  from.Send(to_id, PatternPayload(1 << 20, 7), sent.Done());
  ASSERT_TRUE(sent.WaitFor(before + 1));
  EXPECT_TRUE(sent.Results().back().ok()) << sent.Results().back();
  ASSERT_TRUE(inbox.WaitForMessages(1));
  inbox.TakeMessages();
}

TEST(PlacementPeersTest, ConnectsNamedPeersOnceAndSkipsItself) {
  SendLog sent;
  Inbox self_inbox, peer_inbox;
  std::unique_ptr<UcxDataPlane> self = MakePlane(kSelf, self_inbox);
  std::unique_ptr<UcxDataPlane> peer = MakePlane(kPeer, peer_inbox);
  ASSERT_NE(self, nullptr);
  ASSERT_NE(peer, nullptr);
  PlacementPeers peers("test");
  std::vector<PeerId> connected;
  auto note = [&connected](PeerId id) { connected.push_back(id); };
  const cluster::Placement placement =
      PlacementNaming({{kSelf, self->LocalAddress()}, {kPeer, peer->LocalAddress()}});
  peers.Update(*self, kSelf, placement, note);
  peers.Update(*self, kSelf, placement, note);  // the same placement again: nothing new
  peers.Reconnect(*self, kSelf, note);          // nothing missing
  EXPECT_EQ(connected, std::vector<PeerId>{kPeer});
  ExpectDelivered(*self, kPeer, peer_inbox, sent);
}

TEST(PlacementPeersTest, AForgottenPeerIsConnectedAgainByReconnect) {
  SendLog sent;
  Inbox self_inbox, peer_inbox;
  std::unique_ptr<UcxDataPlane> self = MakePlane(kSelf, self_inbox);
  std::unique_ptr<UcxDataPlane> peer = MakePlane(kPeer, peer_inbox);
  ASSERT_NE(self, nullptr);
  ASSERT_NE(peer, nullptr);
  PlacementPeers peers("test");
  std::vector<PeerId> connected;
  auto note = [&connected](PeerId id) { connected.push_back(id); };
  peers.Update(*self, kSelf, PlacementNaming({{kPeer, peer->LocalAddress()}}), note);
  self->Disconnect(kPeer);
  peers.Forget(kPeer);  // as the peer-error handler does
  peers.Reconnect(*self, kSelf, note);
  EXPECT_EQ(connected, (std::vector<PeerId>{kPeer, kPeer}));
  ExpectDelivered(*self, kPeer, peer_inbox, sent);
}

// The peer was declared dead and came back with a reset data plane: the placement
// names it at a new address, and this side connects to that one although its old
// connection never failed.
TEST(PlacementPeersTest, APeerAtANewAddressIsConnectedAgain) {
  SendLog sent;
  Inbox self_inbox, peer_inbox;
  std::unique_ptr<UcxDataPlane> self = MakePlane(kSelf, self_inbox);
  std::unique_ptr<UcxDataPlane> peer = MakePlane(kPeer, peer_inbox);
  ASSERT_NE(self, nullptr);
  ASSERT_NE(peer, nullptr);
  PlacementPeers self_peers("self");
  PlacementPeers peer_peers("peer");
  std::vector<PeerId> connected;
  auto note = [&connected](PeerId id) { connected.push_back(id); };
  self_peers.Update(*self, kSelf,
                    PlacementNaming({{kSelf, self->LocalAddress()}, {kPeer, peer->LocalAddress()}}),
                    note);
  ExpectDelivered(*self, kPeer, peer_inbox, sent);

  ASSERT_TRUE(peer->Reset().ok());
  peer_peers.ForgetAll();
  const cluster::Placement next =
      PlacementNaming({{kSelf, self->LocalAddress()}, {kPeer, peer->LocalAddress()}});
  peer_peers.Update(*peer, kPeer, next);
  self_peers.Update(*self, kSelf, next, note);
  EXPECT_EQ(connected, (std::vector<PeerId>{kPeer, kPeer}));
  ExpectDelivered(*self, kPeer, peer_inbox, sent);
  ExpectDelivered(*peer, kSelf, self_inbox, sent);
}

}  // namespace
}  // namespace yard::transport
