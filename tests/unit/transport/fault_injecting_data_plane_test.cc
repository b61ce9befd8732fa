#include "transport/fault_injecting_data_plane.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "transport/inproc/inproc_data_plane.h"

namespace yard::transport {
namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

// Receives, peer errors and send completions of one endpoint, filled on transport
// threads and awaited by the test.
class Recorder {
 public:
  DataPlaneHandlers Handlers() {
    return DataPlaneHandlers{
        [this](PeerId, std::vector<uint8_t> message) {
          std::lock_guard<std::mutex> lock(mu_);
          received_.push_back(std::move(message));
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
      done_.push_back(std::move(status));
      cv_.notify_all();
    };
  }
  // Each waits (up to a generous timeout) until at least `n` have been recorded.
  bool WaitForReceived(size_t n) {
    return WaitUntil([&] { return received_.size() >= n; });
  }
  bool WaitForDone(size_t n) {
    return WaitUntil([&] { return done_.size() >= n; });
  }
  bool WaitForPeerErrors(size_t n) {
    return WaitUntil([&] { return peer_errors_.size() >= n; });
  }
  std::vector<std::vector<uint8_t>> received() {
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
  // `ready` runs with mu_ held.
  bool WaitUntil(const std::function<bool()>& ready) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kTimeout, ready);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<uint8_t>> received_;
  std::vector<absl::Status> done_;
  std::vector<std::pair<PeerId, absl::Status>> peer_errors_;
};

Payload Counter(uint32_t i) {
  return std::make_shared<const std::vector<uint8_t>>(
      std::vector<uint8_t>{static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8)});
}

// Endpoint 1 (wrapped) sends to endpoint 2 (plain) over an InprocFabric.
class FaultInjectingDataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = FaultInjectingDataPlane::Create(
        sender_.Handlers(),
        [&](DataPlaneHandlers h) -> std::unique_ptr<DataPlaneInterface> {
          return *InprocDataPlane::Create(fabric_, 1, std::move(h));
        });
    b_ = *InprocDataPlane::Create(fabric_, 2, receiver_.Handlers());
    ASSERT_TRUE(a_->Connect(2, "inproc:2").ok());
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
  }

  InprocFabric fabric_;
  Recorder sender_;
  Recorder receiver_;
  std::unique_ptr<FaultInjectingDataPlane> a_;
  std::unique_ptr<InprocDataPlane> b_;
};

TEST_F(FaultInjectingDataPlaneTest, PassesThroughWithoutFaults) {
  EXPECT_EQ(a_->self(), 1u);
  EXPECT_EQ(a_->LocalAddress(), "inproc:1");
  for (uint32_t i = 0; i < 100; ++i) a_->Send(2, Counter(i), sender_.Done());
  ASSERT_TRUE(receiver_.WaitForReceived(100));
  ASSERT_TRUE(sender_.WaitForDone(100));
  for (const absl::Status& s : sender_.done()) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(a_->forwarded(2), 100);
}

TEST_F(FaultInjectingDataPlaneTest, DelayHoldsMessagesAndKeepsOrder) {
  a_->SetDelay(2, absl::Milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < 50; ++i) a_->Send(2, Counter(i), sender_.Done());
  // Removing the delay must not let later messages overtake the held ones.
  a_->SetDelay(2, absl::ZeroDuration());
  for (uint32_t i = 50; i < 100; ++i) a_->Send(2, Counter(i), sender_.Done());
  ASSERT_TRUE(receiver_.WaitForReceived(100));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  const auto received = receiver_.received();
  for (uint32_t i = 0; i < 100; ++i) ASSERT_EQ(received[i], *Counter(i)) << i;
}

TEST_F(FaultInjectingDataPlaneTest, DropNextIsSilentByDefault) {
  a_->DropNext(2, 3);
  for (uint32_t i = 0; i < 10; ++i) a_->Send(2, Counter(i), sender_.Done());
  ASSERT_TRUE(sender_.WaitForDone(10));
  ASSERT_TRUE(receiver_.WaitForReceived(7));
  for (const absl::Status& s : sender_.done()) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(a_->dropped(2), 3);
  EXPECT_EQ(a_->forwarded(2), 7);
  const auto received = receiver_.received();
  ASSERT_EQ(received.size(), 7u);
  for (uint32_t i = 0; i < 7; ++i) EXPECT_EQ(received[i], *Counter(i + 3));
}

TEST_F(FaultInjectingDataPlaneTest, DropsCanFail) {
  a_->SetDropMode(2, DropMode::kFail);
  a_->DropNext(2, 2);
  for (uint32_t i = 0; i < 4; ++i) a_->Send(2, Counter(i), sender_.Done());
  ASSERT_TRUE(sender_.WaitForDone(4));
  int unavailable = 0;
  for (const absl::Status& s : sender_.done()) {
    if (s.code() == absl::StatusCode::kUnavailable) ++unavailable;
  }
  EXPECT_EQ(unavailable, 2);
  ASSERT_TRUE(receiver_.WaitForReceived(2));
}

TEST_F(FaultInjectingDataPlaneTest, DropProbabilityIsSeededAndRoughlyRight) {
  a_->SetDropProbability(2, 0.25);
  constexpr int kCount = 2000;
  for (uint32_t i = 0; i < kCount; ++i) a_->Send(2, Counter(i), sender_.Done());
  ASSERT_TRUE(sender_.WaitForDone(kCount));
  const int64_t dropped = a_->dropped(2);
  EXPECT_GT(dropped, kCount * 0.18);
  EXPECT_LT(dropped, kCount * 0.32);
  ASSERT_TRUE(receiver_.WaitForReceived(static_cast<size_t>(kCount - dropped)));
  // The same seed drops the same messages.
  InprocFabric fabric;
  Recorder other;
  auto again = FaultInjectingDataPlane::Create(
      other.Handlers(), [&](DataPlaneHandlers h) -> std::unique_ptr<DataPlaneInterface> {
        return *InprocDataPlane::Create(fabric, 1, std::move(h));
      });
  again->SetDropProbability(2, 0.25);
  for (uint32_t i = 0; i < kCount; ++i) again->Send(2, Counter(i), other.Done());
  ASSERT_TRUE(other.WaitForDone(kCount));
  EXPECT_EQ(again->dropped(2), dropped);
}

TEST_F(FaultInjectingDataPlaneTest, FailPeerFailsSendsAndFiresTheHandler) {
  a_->SetDelay(2, absl::Seconds(60));  // held when the peer fails
  a_->Send(2, Counter(0), sender_.Done());
  a_->FailPeer(2, absl::UnavailableError("worker 2 lost its heartbeat"));
  a_->Send(2, Counter(1), sender_.Done());
  ASSERT_TRUE(sender_.WaitForDone(2));
  for (const absl::Status& s : sender_.done()) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
  ASSERT_TRUE(sender_.WaitForPeerErrors(1));
  EXPECT_EQ(sender_.peer_errors()[0].first, 2u);
  EXPECT_EQ(sender_.peer_errors()[0].second.message(), "worker 2 lost its heartbeat");
  EXPECT_EQ(a_->Connect(2, "inproc:2").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(receiver_.received().empty());

  a_->HealPeer(2);
  a_->ClearFaults(2);
  ASSERT_TRUE(a_->Connect(2, "inproc:2").ok());
  a_->Send(2, Counter(2), sender_.Done());
  ASSERT_TRUE(receiver_.WaitForReceived(1));
  EXPECT_EQ(receiver_.received()[0], *Counter(2));
}

TEST_F(FaultInjectingDataPlaneTest, DestructionCompletesHeldMessages) {
  a_->SetDelay(2, absl::Seconds(60));
  for (uint32_t i = 0; i < 5; ++i) a_->Send(2, Counter(i), sender_.Done());
  a_.reset();
  const auto done = sender_.done();
  ASSERT_EQ(done.size(), 5u);
  for (const absl::Status& s : done) EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace yard::transport
