#include "transport/ucx/ucx_data_plane.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/transport/ucx/test_inbox.h"

namespace yard::transport {
namespace {

using testing::Inbox;
using testing::PatternPayload;
using testing::SendLog;

constexpr PeerId kA = 1;
constexpr PeerId kB = 2;

// UCX's choice ("") or TCP only. TCP runs rendezvous as AM fragments: UCX 1.13's TCP
// put_zcopy rendezvous asserts (tcp_ep.c:939) or crashes when a peer goes away
// mid-transfer (see UcxOptions::config).
UcxOptions WithTransports(const std::string& transports) {
  UcxOptions options;
  options.transports = transports;
  if (transports == "tcp") options.config.emplace_back("RNDV_SCHEME", "am");
  return options;
}

std::unique_ptr<UcxDataPlane> MakePlane(const UcxOptions& options, PeerId self, Inbox& inbox) {
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> plane =
      UcxDataPlane::Create(options, self, inbox.Handlers());
  EXPECT_TRUE(plane.ok()) << plane.status();
  return plane.ok() ? std::move(*plane) : nullptr;
}

// Two data planes in this process, connected both ways.
struct Pair {
  explicit Pair(const UcxOptions& options) {
    a = MakePlane(options, kA, inbox_a);
    b = MakePlane(options, kB, inbox_b);
    if (a == nullptr || b == nullptr) return;
    EXPECT_TRUE(a->Connect(kB, b->LocalAddress()).ok());
    EXPECT_TRUE(b->Connect(kA, a->LocalAddress()).ok());
  }
  Inbox inbox_a;
  Inbox inbox_b;
  std::unique_ptr<UcxDataPlane> a;
  std::unique_ptr<UcxDataPlane> b;
};

// One message of each size from A to B and from B to A (patterns from `seed` on, B's
// 100 further), each send's outcome to `log`; returns what each side sent.
struct SentBothWays {
  std::vector<Payload> from_a;
  std::vector<Payload> from_b;
};
SentBothWays SendBothWays(Pair& pair, const std::vector<size_t>& sizes, uint32_t seed,
                          SendLog& log) {
  SentBothWays sent;
  for (size_t i = 0; i < sizes.size(); ++i) {
    sent.from_a.push_back(PatternPayload(sizes[i], seed + i));
    sent.from_b.push_back(PatternPayload(sizes[i], seed + 100 + i));
    pair.a->Send(kB, sent.from_a.back(), log.Done());
    pair.b->Send(kA, sent.from_b.back(), log.Done());
  }
  return sent;
}

// Transports the in-process tests run over: UCX's own choice (shared memory between
// two workers of one process here) and TCP only.
class UcxExchangeTest : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Transports, UcxExchangeTest,
                         ::testing::Values(std::string(""), std::string("tcp")),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.empty() ? std::string("ucx_default")
                                                     : info.param;
                         });

TEST_P(UcxExchangeTest, SmallDecodeAndPrefillMessagesBothWaysByteForByte) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Pair pair(WithTransports(GetParam()));
  ASSERT_NE(pair.a, nullptr);
  ASSERT_NE(pair.b, nullptr);
  const std::vector<size_t> sizes = {64, 32 * 7168, 8 << 20};
  const auto [from_a, from_b] = SendBothWays(pair, sizes, 0, sent);
  ASSERT_TRUE(sent.WaitFor(2 * sizes.size()));
  for (const absl::Status& s : sent.Results()) EXPECT_TRUE(s.ok()) << s;
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(sizes.size()));
  ASSERT_TRUE(pair.inbox_a.WaitForMessages(sizes.size()));
  std::vector<Inbox::Message> at_b = pair.inbox_b.TakeMessages();
  std::vector<Inbox::Message> at_a = pair.inbox_a.TakeMessages();
  ASSERT_EQ(at_b.size(), sizes.size());
  ASSERT_EQ(at_a.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(at_b[i].from, kA);
    EXPECT_EQ(at_a[i].from, kB);
    EXPECT_TRUE(at_b[i].bytes == *from_a[i]) << "message " << i << " A->B differs";
    EXPECT_TRUE(at_a[i].bytes == *from_b[i]) << "message " << i << " B->A differs";
  }
  EXPECT_TRUE(pair.inbox_a.Errors().empty());
  EXPECT_TRUE(pair.inbox_b.Errors().empty());
}

TEST_P(UcxExchangeTest, ThousandSmallMessagesArriveInOrder) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Pair pair(WithTransports(GetParam()));
  ASSERT_NE(pair.a, nullptr);
  constexpr uint32_t kCount = 1000;
  for (uint32_t i = 0; i < kCount; ++i) {
    auto bytes = std::make_shared<std::vector<uint8_t>>(64);
    for (int k = 0; k < 4; ++k) (*bytes)[k] = static_cast<uint8_t>(i >> (8 * k));
    pair.a->Send(kB, bytes, sent.Done());
  }
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(kCount));
  std::vector<Inbox::Message> got = pair.inbox_b.TakeMessages();
  ASSERT_EQ(got.size(), kCount);
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(got[i].bytes.size(), 64u);
    uint32_t index = 0;
    for (int k = 0; k < 4; ++k) index |= static_cast<uint32_t>(got[i].bytes[k]) << (8 * k);
    ASSERT_EQ(index, i) << "out of order at " << i;
  }
  ASSERT_TRUE(sent.WaitFor(kCount));
}

// A third endpoint that is not among the registered peers gets nothing through, in
// either size class (eager, rendezvous), while a registered one still does.
TEST_P(UcxExchangeTest, MessagesFromAPeerNotAllowedAreRefused) {
  SendLog sent;
  Pair pair(WithTransports(GetParam()));
  ASSERT_NE(pair.a, nullptr);
  ASSERT_NE(pair.b, nullptr);
  pair.b->SetAllowedPeers({kA});
  constexpr PeerId kStranger = 3;
  Inbox stranger_inbox;
  std::unique_ptr<UcxDataPlane> stranger =
      MakePlane(WithTransports(GetParam()), kStranger, stranger_inbox);
  ASSERT_NE(stranger, nullptr);
  ASSERT_TRUE(stranger->Connect(kB, pair.b->LocalAddress()).ok());
  stranger->Send(kB, PatternPayload(64, 1), sent.Done());
  stranger->Send(kB, PatternPayload(8 << 20, 2), sent.Done());
  const auto deadline = std::chrono::steady_clock::now() + testing::kDeadline;
  while (pair.b->refused_messages() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(pair.b->refused_messages(), 2u);

  const Payload welcome = PatternPayload(64, 3);
  pair.a->Send(kB, welcome, sent.Done());
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(1));
  const std::vector<Inbox::Message> got = pair.inbox_b.TakeMessages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, kA);
  EXPECT_TRUE(got[0].bytes == *welcome);
  EXPECT_EQ(pair.b->refused_messages(), 2u);
  ASSERT_TRUE(sent.WaitFor(3));
}

// Rendezvous messages are fetched after their header arrives, so an eager message sent
// after one can be complete first; the receiver must still deliver in send order.
TEST_P(UcxExchangeTest, EagerAndRendezvousInterleavedArriveInOrder) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  UcxOptions options = WithTransports(GetParam());
  options.config.emplace_back("RNDV_THRESH", "4k");
  Pair pair(options);
  ASSERT_NE(pair.a, nullptr);
  constexpr uint32_t kCount = 300;
  std::vector<Payload> payloads;
  for (uint32_t i = 0; i < kCount; ++i) {
    // Every third message is large (rendezvous), the others small (eager).
    const size_t size = i % 3 == 0 ? 256 * 1024 + i : 16 + i;
    payloads.push_back(PatternPayload(size, i));
    pair.a->Send(kB, payloads.back(), sent.Done());
  }
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(kCount));
  std::vector<Inbox::Message> got = pair.inbox_b.TakeMessages();
  ASSERT_EQ(got.size(), kCount);
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(got[i].bytes == *payloads[i]) << "message " << i << " out of order or corrupt";
  }
  ASSERT_TRUE(sent.WaitFor(kCount));
  for (const absl::Status& s : sent.Results()) EXPECT_TRUE(s.ok()) << s;
}

TEST(UcxDataPlaneTest, LocalAddressIsPrintableAndSelfIsKept) {
  Inbox inbox;
  std::unique_ptr<UcxDataPlane> plane = MakePlane(UcxOptions{}, 42, inbox);
  ASSERT_NE(plane, nullptr);
  EXPECT_EQ(plane->self(), 42u);
  const std::string address = plane->LocalAddress();
  ASSERT_GT(address.size(), 4u);
  EXPECT_EQ(address.substr(0, 4), "ucx:");
  for (char c : address.substr(4)) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << c;
  }
}

TEST(UcxDataPlaneTest, SetSelfRenamesUntilFirstUseAndSendersCarryTheNewId) {
  Inbox inbox_a, inbox_b;
  std::unique_ptr<UcxDataPlane> a = MakePlane(UcxOptions{}, 0, inbox_a);
  std::unique_ptr<UcxDataPlane> b = MakePlane(UcxOptions{}, kB, inbox_b);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->SetSelf(kA).ok());
  EXPECT_EQ(a->self(), kA);
  ASSERT_TRUE(a->Connect(kB, b->LocalAddress()).ok());
  EXPECT_EQ(a->SetSelf(99).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(a->SetSelf(kA).ok());  // the same id is fine
  a->Send(kB, PatternPayload(64, 0), nullptr);
  ASSERT_TRUE(inbox_b.WaitForMessages(1));
  EXPECT_EQ(inbox_b.TakeMessages()[0].from, kA);
}

TEST(UcxDataPlaneTest, MalformedAddressesAreInvalidArgument) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Inbox inbox, other_inbox;
  std::unique_ptr<UcxDataPlane> plane = MakePlane(UcxOptions{}, kA, inbox);
  std::unique_ptr<UcxDataPlane> other = MakePlane(UcxOptions{}, kB, other_inbox);
  ASSERT_NE(plane, nullptr);
  ASSERT_NE(other, nullptr);
  const std::string good = other->LocalAddress();
  std::string corrupted = good;
  corrupted[good.size() / 2] = corrupted[good.size() / 2] == '0' ? '1' : '0';
  const std::vector<std::string> bad = {
      "",
      "ucx:",
      "ucx:not hex at all!",
      "ucx:zz",
      "ucx:abc",                                  // odd number of digits
      good.substr(0, good.size() / 2),            // truncated
      good.substr(0, good.size() - 2),            // one byte short
      "tcp:" + good.substr(4),                    // wrong prefix
      good.substr(4),                             // no prefix
      corrupted,                                  // checksum mismatch
      good + "00",                                // trailing byte
  };
  for (const std::string& address : bad) {
    absl::Status status = plane->Connect(kB, address);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << "address: " << address;
  }
  // None of them left a connection behind.
  plane->Send(kB, PatternPayload(8, 0), sent.Done());
  ASSERT_TRUE(sent.WaitFor(1));
  EXPECT_EQ(sent.Results()[0].code(), absl::StatusCode::kFailedPrecondition);
  // And the good one still works.
  EXPECT_TRUE(plane->Connect(kB, good).ok());
}

TEST(UcxDataPlaneTest, SendToUnconnectedPeerIsFailedPrecondition) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Inbox inbox;
  std::unique_ptr<UcxDataPlane> plane = MakePlane(UcxOptions{}, kA, inbox);
  ASSERT_NE(plane, nullptr);
  plane->Send(77, PatternPayload(64, 0), sent.Done());
  ASSERT_TRUE(sent.WaitFor(1));
  EXPECT_EQ(sent.Results()[0].code(), absl::StatusCode::kFailedPrecondition)
      << sent.Results()[0];
}

TEST(UcxDataPlaneTest, ConnectIsIdempotentAndDisconnectForgetsThePeer) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Pair pair(UcxOptions{});
  ASSERT_NE(pair.a, nullptr);
  ASSERT_TRUE(pair.a->Connect(kB, pair.b->LocalAddress()).ok());  // again: no-op
  pair.a->Send(kB, PatternPayload(64, 1), sent.Done());
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(1));
  pair.a->Disconnect(kB);
  pair.a->Send(kB, PatternPayload(64, 2), sent.Done());
  ASSERT_TRUE(sent.WaitFor(2));
  EXPECT_TRUE(sent.Results()[0].ok()) << sent.Results()[0];
  EXPECT_EQ(sent.Results()[1].code(), absl::StatusCode::kFailedPrecondition);
  // Reconnecting starts a new stream; the receiver accepts it from sequence 0 again.
  ASSERT_TRUE(pair.a->Connect(kB, pair.b->LocalAddress()).ok());
  pair.a->Send(kB, PatternPayload(64, 3), sent.Done());
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(2));
  std::vector<Inbox::Message> got = pair.inbox_b.TakeMessages();
  EXPECT_TRUE(got[1].bytes == *PatternPayload(64, 3));
  ASSERT_TRUE(sent.WaitFor(3));
  EXPECT_TRUE(sent.Results()[2].ok()) << sent.Results()[2];
}

TEST(UcxDataPlaneTest, DisconnectCompletesInFlightSends) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Pair pair(WithTransports("tcp"));
  ASSERT_NE(pair.a, nullptr);
  constexpr int kCount = 20;
  for (int i = 0; i < kCount; ++i) pair.a->Send(kB, PatternPayload(4 << 20, i), sent.Done());
  pair.a->Disconnect(kB);
  ASSERT_TRUE(sent.WaitFor(kCount));  // every send completes, OK or not
  for (const absl::Status& s : sent.Results()) {
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
  }
}

// A peer that goes away must turn into on_peer_error and failed sends, not a hang.
// TCP: a closed socket is noticed at once (shared memory would wait for keepalive).
TEST(UcxDataPlaneTest, DestroyedPeerBecomesPeerErrorAndUnavailableSends) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog warmup;
  SendLog in_flight;
  SendLog later;
  SendLog after;
  Pair pair(WithTransports("tcp"));
  ASSERT_NE(pair.a, nullptr);
  pair.a->Send(kB, PatternPayload(64, 0), warmup.Done());
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(1));
  ASSERT_TRUE(warmup.WaitFor(1));
  for (int i = 0; i < 4; ++i) pair.a->Send(kB, PatternPayload(8 << 20, i), in_flight.Done());
  pair.b.reset();
  ASSERT_TRUE(in_flight.WaitFor(4));  // OK if they left before B went, else kUnavailable
  for (const absl::Status& s : in_flight.Results()) {
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
  }
  // Keep sending until the failure shows: a peer error, and kUnavailable sends.
  size_t sends = 0;
  auto failed = [&] {
    for (const absl::Status& s : later.Results()) {
      if (s.code() == absl::StatusCode::kUnavailable) return true;
    }
    return false;
  };
  while (!failed()) {
    ASSERT_LT(sends, 100000u) << "sends to a destroyed peer never failed";
    pair.a->Send(kB, PatternPayload(64 << 10, 0), later.Done());
    ASSERT_TRUE(later.WaitFor(++sends));
  }
  ASSERT_TRUE(pair.inbox_a.WaitForError());
  EXPECT_EQ(pair.inbox_a.Errors()[0].first, kB);
  EXPECT_EQ(pair.inbox_a.Errors()[0].second.code(), absl::StatusCode::kUnavailable);
  // Once failed, sends fail at once with kUnavailable (not kFailedPrecondition).
  pair.a->Send(kB, PatternPayload(64, 0), after.Done());
  ASSERT_TRUE(after.WaitFor(1));
  EXPECT_EQ(after.Results()[0].code(), absl::StatusCode::kUnavailable);
}

// A worker declared dead comes back with a new UCP worker (Reset): its sends in flight
// end, its connections are gone, its address changes, and once both sides connect
// again messages of every size flow both ways. (Remaking only B's endpoints is not
// enough over TCP: A's endpoint stays paired with B's closed one; UcxDataPlane::Reset.)
TEST(UcxDataPlaneTest, ResetGivesANewAddressAndBothSidesConnectAgain) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog before;
  SendLog in_flight;
  SendLog unconnected;
  SendLog after;
  Pair pair(WithTransports("tcp"));
  ASSERT_NE(pair.a, nullptr);
  ASSERT_NE(pair.b, nullptr);
  pair.a->Send(kB, PatternPayload(8 << 20, 0), before.Done());
  ASSERT_TRUE(before.WaitFor(1));
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(1));
  pair.inbox_b.TakeMessages();

  const std::string old_address = pair.b->LocalAddress();
  for (int i = 0; i < 4; ++i) pair.b->Send(kA, PatternPayload(8 << 20, i), in_flight.Done());
  ASSERT_TRUE(pair.b->Reset().ok());
  ASSERT_TRUE(in_flight.WaitFor(4));
  for (const absl::Status& s : in_flight.Results()) {
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
  }
  EXPECT_NE(pair.b->LocalAddress(), old_address);
  ASSERT_TRUE(pair.inbox_b.WaitForError()) << "B hears that its connection to A closed";
  EXPECT_EQ(pair.inbox_b.Errors()[0].first, kA);
  EXPECT_EQ(pair.inbox_b.Errors()[0].second.code(), absl::StatusCode::kUnavailable);
  pair.b->Send(kA, PatternPayload(64, 0), unconnected.Done());
  ASSERT_TRUE(unconnected.WaitFor(1));
  EXPECT_EQ(unconnected.Results()[0].code(), absl::StatusCode::kFailedPrecondition)
      << "B's connections are gone with its old worker";

  // A's Connect to the new address replaces its old connection.
  ASSERT_TRUE(pair.a->Connect(kB, pair.b->LocalAddress()).ok());
  ASSERT_TRUE(pair.b->Connect(kA, pair.a->LocalAddress()).ok());
  const std::vector<size_t> sizes = {64, 32 * 7168, 8 << 20};
  const auto [from_a, from_b] = SendBothWays(pair, sizes, 10, after);
  ASSERT_TRUE(after.WaitFor(2 * sizes.size()));
  for (const absl::Status& s : after.Results()) EXPECT_TRUE(s.ok()) << s;
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(sizes.size()));
  const std::vector<Inbox::Message> at_b = pair.inbox_b.TakeMessages();
  ASSERT_EQ(at_b.size(), sizes.size());
  // A may also hold some of B's sends from before the reset, ahead of these.
  std::vector<Inbox::Message> at_a;
  const auto deadline = std::chrono::steady_clock::now() + testing::kDeadline;
  while (at_a.size() < sizes.size() || !(at_a.back().bytes == *from_b.back())) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "B's messages did not reach A";
    ASSERT_TRUE(pair.inbox_a.WaitForMessages(1));
    for (Inbox::Message& m : pair.inbox_a.TakeMessages()) at_a.push_back(std::move(m));
  }
  const size_t first = at_a.size() - sizes.size();
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_TRUE(at_b[i].bytes == *from_a[i]) << "message " << i << " A->B differs";
    EXPECT_TRUE(at_a[first + i].bytes == *from_b[i]) << "message " << i << " B->A differs";
  }
}

TEST(UcxDataPlaneTest, DestroyingSenderCompletesEverySend) {
  // Declared first: SendDones may run until the data planes are destroyed.
  SendLog sent;
  Pair pair(WithTransports("tcp"));
  ASSERT_NE(pair.a, nullptr);
  constexpr int kCount = 16;
  for (int i = 0; i < kCount; ++i) pair.a->Send(kB, PatternPayload(8 << 20, i), sent.Done());
  pair.a.reset();  // joins the progress thread: every SendDone has run by now
  EXPECT_EQ(sent.Results().size(), static_cast<size_t>(kCount));
  for (const absl::Status& s : sent.Results()) {
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
  }
}

TEST(UcxDataPlaneTest, HandlersMaySendFromTheProgressThread) {
  // B echoes from inside its receive handler.
  Inbox inbox_a;
  std::unique_ptr<UcxDataPlane> a = MakePlane(UcxOptions{}, kA, inbox_a);
  std::unique_ptr<UcxDataPlane> b;
  DataPlaneHandlers echo{[&b](PeerId from, std::vector<uint8_t> bytes) {
                           b->Send(from, std::make_shared<const std::vector<uint8_t>>(
                                             std::move(bytes)),
                                   nullptr);
                         },
                         nullptr};
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> created =
      UcxDataPlane::Create(UcxOptions{}, kB, echo);
  ASSERT_TRUE(created.ok()) << created.status();
  b = std::move(*created);
  ASSERT_TRUE(a->Connect(kB, b->LocalAddress()).ok());
  ASSERT_TRUE(b->Connect(kA, a->LocalAddress()).ok());
  for (uint32_t i = 0; i < 10; ++i) a->Send(kB, PatternPayload(100 + i * 50000, i), nullptr);
  ASSERT_TRUE(inbox_a.WaitForMessages(10));
  std::vector<Inbox::Message> got = inbox_a.TakeMessages();
  for (uint32_t i = 0; i < 10; ++i) {
    EXPECT_EQ(got[i].from, kB);
    EXPECT_TRUE(got[i].bytes == *PatternPayload(100 + i * 50000, i)) << i;
  }
  b.reset();  // before `a`, whose address B's handler may still use
}

TEST(UcxDataPlaneTest, ConfigValueUcxCannotParseIsInvalidArgument) {
  UcxOptions options;
  options.config.emplace_back("RNDV_THRESH", "not-a-size");
  Inbox inbox;
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> plane =
      UcxDataPlane::Create(options, kA, inbox.Handlers());
  EXPECT_EQ(plane.status().code(), absl::StatusCode::kInvalidArgument) << plane.status();
}

TEST(UcxDataPlaneTest, BusyPollModeExchangesMessages) {
  UcxOptions options;
  options.busy_poll = true;
  Pair pair(options);
  ASSERT_NE(pair.a, nullptr);
  pair.a->Send(kB, PatternPayload(32 * 7168, 5), nullptr);
  ASSERT_TRUE(pair.inbox_b.WaitForMessages(1));
  EXPECT_TRUE(pair.inbox_b.TakeMessages()[0].bytes == *PatternPayload(32 * 7168, 5));
}

}  // namespace
}  // namespace yard::transport
