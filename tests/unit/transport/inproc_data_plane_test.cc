#include "transport/inproc/inproc_data_plane.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace yard::transport {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

// What one endpoint's handlers and send completions saw, filled on the delivery
// thread and read by the test after WaitUntil.
class Recorder {
 public:
  DataPlaneHandlers Handlers() {
    return DataPlaneHandlers{
        [this](PeerId from, std::vector<uint8_t> message) {
          std::lock_guard<std::mutex> lock(mu_);
          EXPECT_NE(std::this_thread::get_id(), test_thread_);
          received_.push_back({from, std::move(message)});
          cv_.notify_all();
        },
        [this](PeerId peer, absl::Status why) {
          std::lock_guard<std::mutex> lock(mu_);
          peer_errors_.push_back({peer, std::move(why)});
          cv_.notify_all();
        }};
  }

  SendDone Done() {
    return [this](absl::Status status) {
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_NE(std::this_thread::get_id(), test_thread_);
      done_.push_back(std::move(status));
      cv_.notify_all();
    };
  }

  // Waits (up to a generous timeout) until `ready` holds; false on timeout.
  bool WaitUntil(const std::function<bool()>& ready) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kTimeout, ready);
  }
  bool WaitForReceived(size_t n) {
    return WaitUntil([&] { return received_.size() >= n; });
  }
  bool WaitForDone(size_t n) {
    return WaitUntil([&] { return done_.size() >= n; });
  }
  bool WaitForPeerErrors(size_t n) {
    return WaitUntil([&] { return peer_errors_.size() >= n; });
  }

  std::vector<std::pair<PeerId, std::vector<uint8_t>>> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  std::vector<absl::Status> done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  std::vector<std::pair<PeerId, absl::Status>> peer_errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return peer_errors_;
  }

 private:
  const std::thread::id test_thread_ = std::this_thread::get_id();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<PeerId, std::vector<uint8_t>>> received_;
  std::vector<absl::Status> done_;
  std::vector<std::pair<PeerId, absl::Status>> peer_errors_;
};

Payload Bytes(std::vector<uint8_t> b) {
  return std::make_shared<const std::vector<uint8_t>>(std::move(b));
}

Payload Counter(uint32_t i) {
  return Bytes({static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8)});
}

std::unique_ptr<InprocDataPlane> MakeEndpoint(InprocFabric& fabric, PeerId id,
                                              Recorder& recorder) {
  absl::StatusOr<std::unique_ptr<InprocDataPlane>> e =
      InprocDataPlane::Create(fabric, id, recorder.Handlers());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

TEST(InprocDataPlaneTest, AddressesRoundTripAndBadOnesAreRejected) {
  EXPECT_EQ(InprocFabric::AddressOf(12), "inproc:12");
  EXPECT_EQ(*InprocFabric::ParseAddress("inproc:12"), 12u);
  for (const char* bad : {"", "inproc:", "inproc:-1", "inproc: 1", "inproc:1x",
                          "ucx:1", "inproc:99999999999", "INPROC:1"}) {
    EXPECT_EQ(InprocFabric::ParseAddress(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(InprocDataPlaneTest, SendsAndReceivesBothWays) {
  InprocFabric fabric;
  Recorder ra, rb;
  auto a = MakeEndpoint(fabric, 1, ra);
  auto b = MakeEndpoint(fabric, 2, rb);
  EXPECT_EQ(a->self(), 1u);
  EXPECT_EQ(b->LocalAddress(), "inproc:2");
  ASSERT_TRUE(a->Connect(2, b->LocalAddress()).ok());
  ASSERT_TRUE(a->Connect(2, b->LocalAddress()).ok());  // idempotent
  ASSERT_TRUE(b->Connect(1, a->LocalAddress()).ok());

  a->Send(2, Bytes({1, 2, 3}), ra.Done());
  b->Send(1, Bytes({9}), rb.Done());
  ASSERT_TRUE(rb.WaitForReceived(1));
  ASSERT_TRUE(ra.WaitForReceived(1));
  ASSERT_TRUE(ra.WaitForDone(1));
  ASSERT_TRUE(rb.WaitForDone(1));
  EXPECT_EQ(rb.received()[0].first, 1u);
  EXPECT_EQ(rb.received()[0].second, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(ra.received()[0].first, 2u);
  EXPECT_EQ(ra.received()[0].second, (std::vector<uint8_t>{9}));
  EXPECT_TRUE(ra.done()[0].ok());
  EXPECT_TRUE(rb.done()[0].ok());
  EXPECT_TRUE(ra.peer_errors().empty());
}

TEST(InprocDataPlaneTest, KeepsOrderOfAThousandMessages) {
  InprocFabric fabric;
  Recorder ra, rb;
  auto a = MakeEndpoint(fabric, 1, ra);
  auto b = MakeEndpoint(fabric, 2, rb);
  ASSERT_TRUE(a->Connect(2, "inproc:2").ok());
  constexpr uint32_t kCount = 1000;
  for (uint32_t i = 0; i < kCount; ++i) a->Send(2, Counter(i), ra.Done());
  ASSERT_TRUE(rb.WaitForReceived(kCount));
  ASSERT_TRUE(ra.WaitForDone(kCount));
  const auto received = rb.received();
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(received[i].first, 1u);
    ASSERT_EQ(received[i].second, *Counter(i)) << i;
  }
  for (const absl::Status& s : ra.done()) ASSERT_TRUE(s.ok()) << s;
}

TEST(InprocDataPlaneTest, SendToUnconnectedPeerFailsPrecondition) {
  InprocFabric fabric;
  Recorder ra, rb;
  auto a = MakeEndpoint(fabric, 1, ra);
  auto b = MakeEndpoint(fabric, 2, rb);
  a->Send(2, Bytes({1}), ra.Done());
  ASSERT_TRUE(ra.WaitForDone(1));
  EXPECT_EQ(ra.done()[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(rb.received().empty());
}

TEST(InprocDataPlaneTest, ConnectChecksTheAddress) {
  InprocFabric fabric;
  Recorder ra, rb;
  auto a = MakeEndpoint(fabric, 1, ra);
  auto b = MakeEndpoint(fabric, 2, rb);
  EXPECT_EQ(a->Connect(2, "tcp://10.0.0.1:1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Connect(2, "inproc:3").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Connect(3, "inproc:3").code(), absl::StatusCode::kUnavailable);
}

TEST(InprocDataPlaneTest, DuplicateIdIsRejected) {
  InprocFabric fabric;
  Recorder ra;
  auto a = MakeEndpoint(fabric, 1, ra);
  EXPECT_EQ(InprocDataPlane::Create(fabric, 1, ra.Handlers()).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(InprocDataPlaneTest, DisconnectFailsInFlightSendsAndTellsThePeer) {
  InprocFabric fabric;
  Recorder ra, rb;
  // Endpoint 3's first receive holds the delivery thread until released, so that
  // the messages sent meanwhile are in flight when Disconnect runs.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool entered = false;
  bool released = false;
  DataPlaneHandlers blocking = rb.Handlers();
  ReceiveHandler record = blocking.on_receive;
  blocking.on_receive = [&](PeerId from, std::vector<uint8_t> m) {
    {
      std::unique_lock<std::mutex> lock(gate_mu);
      entered = true;
      gate_cv.notify_all();
      gate_cv.wait_for(lock, kTimeout, [&] { return released; });
    }
    record(from, std::move(m));
  };
  auto a = MakeEndpoint(fabric, 1, ra);
  auto b = *InprocDataPlane::Create(fabric, 3, blocking);
  ASSERT_TRUE(a->Connect(3, "inproc:3").ok());
  ASSERT_TRUE(b->Connect(1, "inproc:1").ok());
  a->Send(3, Counter(0), ra.Done());
  {
    std::unique_lock<std::mutex> lock(gate_mu);
    ASSERT_TRUE(gate_cv.wait_for(lock, kTimeout, [&] { return entered; }));
  }
  for (uint32_t i = 1; i <= 10; ++i) a->Send(3, Counter(i), ra.Done());
  a->Disconnect(3);
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    released = true;
  }
  gate_cv.notify_all();

  ASSERT_TRUE(ra.WaitForDone(11));
  const auto done = ra.done();
  EXPECT_TRUE(done[0].ok()) << done[0];  // delivered before the disconnect
  for (size_t i = 1; i < done.size(); ++i) {
    EXPECT_EQ(done[i].code(), absl::StatusCode::kUnavailable) << i;
  }
  ASSERT_TRUE(rb.WaitForPeerErrors(1));
  EXPECT_EQ(rb.peer_errors()[0].first, 1u);
  EXPECT_EQ(rb.peer_errors()[0].second.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(rb.received().size(), 1u);
  EXPECT_TRUE(ra.peer_errors().empty());  // the side that disconnected is not told

  // The peer's own link is broken until it reconnects; a's is gone.
  b->Send(1, Bytes({5}), rb.Done());
  a->Send(3, Bytes({5}), ra.Done());
  ASSERT_TRUE(rb.WaitForDone(1));
  ASSERT_TRUE(ra.WaitForDone(12));
  EXPECT_EQ(rb.done()[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ra.done()[11].code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b->Connect(1, "inproc:1").ok());
  b->Send(1, Bytes({6}), rb.Done());
  ASSERT_TRUE(ra.WaitForReceived(1));
  EXPECT_EQ(ra.received()[0].second, std::vector<uint8_t>{6});
}

TEST(InprocDataPlaneTest, DestroyingAnEndpointFailsItsPeers) {
  InprocFabric fabric;
  Recorder ra, rb;
  auto a = MakeEndpoint(fabric, 1, ra);
  auto b = MakeEndpoint(fabric, 2, rb);
  ASSERT_TRUE(a->Connect(2, "inproc:2").ok());
  ASSERT_TRUE(b->Connect(1, "inproc:1").ok());
  a->Send(2, Bytes({1}), ra.Done());
  ASSERT_TRUE(ra.WaitForDone(1));
  // b's own pending sends complete before its destructor returns.
  for (int i = 0; i < 20; ++i) b->Send(1, Bytes({2}), rb.Done());
  b.reset();
  EXPECT_EQ(rb.done().size(), 20u);

  ASSERT_TRUE(ra.WaitForPeerErrors(1));
  EXPECT_EQ(ra.peer_errors()[0].first, 2u);
  EXPECT_EQ(ra.peer_errors()[0].second.code(), absl::StatusCode::kUnavailable);
  a->Send(2, Bytes({3}), ra.Done());
  ASSERT_TRUE(ra.WaitForDone(2));
  EXPECT_EQ(ra.done()[1].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(a->Connect(2, "inproc:2").code(), absl::StatusCode::kUnavailable);

  // The id can be registered again and reached after reconnecting.
  Recorder rb2;
  auto b2 = MakeEndpoint(fabric, 2, rb2);
  ASSERT_TRUE(a->Connect(2, "inproc:2").ok());
  a->Send(2, Bytes({4}), ra.Done());
  ASSERT_TRUE(rb2.WaitForReceived(1));
  EXPECT_EQ(rb2.received()[0].second, std::vector<uint8_t>{4});
}

TEST(InprocDataPlaneTest, HandlersMaySendAndSendNeverRunsCallbacksInline) {
  InprocFabric fabric;
  Recorder ra;
  std::unique_ptr<InprocDataPlane> b;
  // b echoes every message back from its receive handler.
  DataPlaneHandlers echo{[&](PeerId from, std::vector<uint8_t> m) {
                           b->Send(from, Bytes(std::move(m)), [](absl::Status) {});
                         },
                         [](PeerId, absl::Status) {}};
  auto a = MakeEndpoint(fabric, 1, ra);
  b = *InprocDataPlane::Create(fabric, 2, echo);
  ASSERT_TRUE(a->Connect(2, "inproc:2").ok());
  ASSERT_TRUE(b->Connect(1, "inproc:1").ok());
  for (uint32_t i = 0; i < 100; ++i) a->Send(2, Counter(i), ra.Done());
  ASSERT_TRUE(ra.WaitForReceived(100));
  const auto received = ra.received();
  for (uint32_t i = 0; i < 100; ++i) ASSERT_EQ(received[i].second, *Counter(i));
  b.reset();
}

}  // namespace
}  // namespace yard::transport
