#include "transport/placement_peers.h"

#include <functional>
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

// This worker (kSelf) and one peer, each with a data plane over TCP.
class PlacementPeersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    self_ = MakePlane(kSelf, self_inbox_);
    peer_ = MakePlane(kPeer, peer_inbox_);
    ASSERT_NE(self_, nullptr);
    ASSERT_NE(peer_, nullptr);
  }
  cluster::Placement BothAtTheirAddresses() const {
    return PlacementNaming({{kSelf, self_->LocalAddress()}, {kPeer, peer_->LocalAddress()}});
  }
  void Update(const cluster::Placement& placement) {
    peers_.Update(*self_, kSelf, placement, note_);
  }

  SendLog sent_;  // first: SendDones may run until the data planes are destroyed
  Inbox self_inbox_;
  Inbox peer_inbox_;
  std::unique_ptr<UcxDataPlane> self_;
  std::unique_ptr<UcxDataPlane> peer_;
  PlacementPeers peers_{"test"};
  std::vector<PeerId> connected_;  // what on_connected was told, in order
  std::function<void(PeerId)> note_ = [this](PeerId id) { connected_.push_back(id); };
};

TEST_F(PlacementPeersTest, ConnectsNamedPeersOnceAndSkipsItself) {
  Update(BothAtTheirAddresses());
  Update(BothAtTheirAddresses());        // the same placement again: nothing new
  peers_.Reconnect(*self_, kSelf, note_);  // nothing missing
  EXPECT_EQ(connected_, std::vector<PeerId>{kPeer});
  ExpectDelivered(*self_, kPeer, peer_inbox_, sent_);
}

TEST_F(PlacementPeersTest, AForgottenPeerIsConnectedAgainByReconnect) {
  Update(BothAtTheirAddresses());
  self_->Disconnect(kPeer);
  peers_.Forget(kPeer);  // as the peer-error handler does
  peers_.Reconnect(*self_, kSelf, note_);
  EXPECT_EQ(connected_, (std::vector<PeerId>{kPeer, kPeer}));
  ExpectDelivered(*self_, kPeer, peer_inbox_, sent_);
}

// The peer was declared dead and came back (Rejoin: a reset data plane, its peers
// forgotten): the placement names it at a new address, and this side connects to that
// one although its old connection never failed.
TEST_F(PlacementPeersTest, APeerAtANewAddressIsConnectedAgain) {
  Update(BothAtTheirAddresses());
  ExpectDelivered(*self_, kPeer, peer_inbox_, sent_);

  PlacementPeers peer_side("peer");
  peer_side.Update(*peer_, kPeer, BothAtTheirAddresses());
  const std::string old_address = peer_->LocalAddress();
  cluster::RegisterRequest registration;
  ASSERT_TRUE(peer_side.Rejoin(*peer_, registration));
  const std::string& rejoined = registration.info().data_plane_address();
  EXPECT_NE(rejoined, old_address);
  EXPECT_EQ(rejoined, peer_->LocalAddress());
  peer_side.Update(*peer_, kPeer, BothAtTheirAddresses());  // connects to self_ afresh
  Update(BothAtTheirAddresses());
  EXPECT_EQ(connected_, (std::vector<PeerId>{kPeer, kPeer}));
  ExpectDelivered(*self_, kPeer, peer_inbox_, sent_);
  ExpectDelivered(*peer_, kSelf, self_inbox_, sent_);
}

}  // namespace
}  // namespace yard::transport
