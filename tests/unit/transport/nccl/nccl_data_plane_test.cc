// Two NCCL endpoints in one process, one per GPU (NCCL refuses two ranks of one
// communicator on one GPU, "Duplicate GPU detected"), so this needs two GPUs and skips,
// saying so, on fewer.
#include "transport/nccl/nccl_data_plane.h"

#include <arpa/inet.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "transport/nccl/nccl_control.h"

namespace yard::transport {
namespace {

using std::chrono::milliseconds;

constexpr auto kWait = std::chrono::seconds(60);

Payload PatternPayload(size_t size, uint32_t index) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(size);
  for (size_t i = 0; i < size; ++i) (*bytes)[i] = uint8_t((i * 131 + index * 7 + (i >> 8)) & 0xff);
  return bytes;
}

// Collects what a data plane reports on its progress thread; waited on by the test.
class Inbox {
 public:
  DataPlaneHandlers Handlers() {
    return {[this](PeerId from, std::vector<uint8_t> bytes) {
              std::lock_guard<std::mutex> lock(mu_);
              messages_.emplace_back(from, std::move(bytes));
              cv_.notify_all();
            },
            [this](PeerId peer, absl::Status why) {
              std::lock_guard<std::mutex> lock(mu_);
              errors_.emplace_back(peer, std::move(why));
              cv_.notify_all();
            }};
  }
  SendDone Done() {
    return [this](absl::Status status) {
      std::lock_guard<std::mutex> lock(mu_);
      sends_.push_back(std::move(status));
      cv_.notify_all();
    };
  }
  bool WaitMessages(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return messages_.size() >= n; });
  }
  bool WaitSends(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return sends_.size() >= n; });
  }
  bool WaitError(std::chrono::milliseconds within) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, within, [&] { return !errors_.empty(); });
  }
  std::vector<std::pair<PeerId, std::vector<uint8_t>>> Messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  std::vector<absl::Status> Sends() {
    std::lock_guard<std::mutex> lock(mu_);
    return sends_;
  }
  std::vector<std::pair<PeerId, absl::Status>> Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<PeerId, std::vector<uint8_t>>> messages_;
  std::vector<absl::Status> sends_;
  std::vector<std::pair<PeerId, absl::Status>> errors_;
};

class NcclDataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
    if (devices < 2) {
      GTEST_SKIP() << "needs 2 GPUs, found " << devices
                   << ": NCCL refuses two ranks of one communicator on one GPU";
    }
  }

  static NcclOptions Options(int device) {
    NcclOptions options;
    options.device = device;
    options.host = "127.0.0.1";
    options.op_timeout = milliseconds(3000);
    options.connect_timeout = milliseconds(30000);
    return options;
  }

  std::unique_ptr<NcclDataPlane> Make(int device, PeerId id, Inbox& inbox) {
    auto plane = NcclDataPlane::Create(Options(device), id, inbox.Handlers());
    EXPECT_TRUE(plane.ok()) << plane.status();
    return plane.ok() ? std::move(*plane) : nullptr;
  }
};

TEST_F(NcclDataPlaneTest, ExchangesMessagesBothWaysInOrder) {
  Inbox a_inbox, b_inbox;
  auto a = Make(0, 1, a_inbox);
  auto b = Make(1, 2, b_inbox);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Connect(2, b->LocalAddress()).ok());
  ASSERT_TRUE(b->Connect(1, a->LocalAddress()).ok());
  ASSERT_TRUE(a->Connect(2, b->LocalAddress()).ok());  // idempotent

  const std::vector<size_t> sizes = {0, 1, 4096, 1 << 20, 3, 8 << 20, 17};
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    a->Send(2, PatternPayload(sizes[i], i), a_inbox.Done());
    b->Send(1, PatternPayload(sizes[i], 100 + i), b_inbox.Done());
  }
  ASSERT_TRUE(b_inbox.WaitMessages(sizes.size()));
  ASSERT_TRUE(a_inbox.WaitMessages(sizes.size()));
  ASSERT_TRUE(a_inbox.WaitSends(sizes.size()));
  ASSERT_TRUE(b_inbox.WaitSends(sizes.size()));
  for (const absl::Status& s : a_inbox.Sends()) EXPECT_TRUE(s.ok()) << s;
  for (const absl::Status& s : b_inbox.Sends()) EXPECT_TRUE(s.ok()) << s;
  const auto at_b = b_inbox.Messages();
  const auto at_a = a_inbox.Messages();
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(at_b[i].first, 1u);
    EXPECT_EQ(at_b[i].second, *PatternPayload(sizes[i], i)) << "message " << i;
    EXPECT_EQ(at_a[i].first, 2u);
    EXPECT_EQ(at_a[i].second, *PatternPayload(sizes[i], 100 + i)) << "message " << i;
  }
  EXPECT_TRUE(a_inbox.Errors().empty());
  EXPECT_TRUE(b_inbox.Errors().empty());
}

TEST_F(NcclDataPlaneTest, SendDeviceDeliversDeviceBytes) {
  Inbox a_inbox, b_inbox;
  auto a = Make(0, 1, a_inbox);
  auto b = Make(1, 2, b_inbox);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Connect(2, b->LocalAddress()).ok());
  ASSERT_TRUE(b->Connect(1, a->LocalAddress()).ok());
  const Payload expected = PatternPayload(65536, 9);
  void* dev = nullptr;
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dev, expected->size()), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, expected->data(), expected->size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  a->SendDevice(2, dev, expected->size(), a_inbox.Done());
  ASSERT_TRUE(b_inbox.WaitMessages(1));
  ASSERT_TRUE(a_inbox.WaitSends(1));
  EXPECT_TRUE(a_inbox.Sends()[0].ok()) << a_inbox.Sends()[0];
  EXPECT_EQ(b_inbox.Messages()[0].second, *expected);
  cudaFree(dev);
}

TEST_F(NcclDataPlaneTest, DestroyedPeerFailsThePairWithinTheDeadline) {
  Inbox a_inbox, b_inbox;
  auto a = Make(0, 1, a_inbox);
  auto b = Make(1, 2, b_inbox);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Connect(2, b->LocalAddress()).ok());
  ASSERT_TRUE(b->Connect(1, a->LocalAddress()).ok());
  a->Send(2, PatternPayload(1000, 1), a_inbox.Done());
  ASSERT_TRUE(b_inbox.WaitMessages(1));

  b.reset();  // aborts its communicator and closes its side
  ASSERT_TRUE(a_inbox.WaitError(Options(0).op_timeout + milliseconds(2000)));
  const auto errors = a_inbox.Errors();
  EXPECT_EQ(errors[0].first, 2u);
  EXPECT_EQ(errors[0].second.code(), absl::StatusCode::kUnavailable) << errors[0].second;

  a->Send(2, PatternPayload(10, 2), a_inbox.Done());
  ASSERT_TRUE(a_inbox.WaitSends(2));
  EXPECT_EQ(a_inbox.Sends()[1].code(), absl::StatusCode::kUnavailable) << a_inbox.Sends()[1];
}

// A rank 1 that joins the communicator and reads the control frames but never posts a
// receive: a live but stuck peer. Only the watchdog's deadline can end the pair.
TEST_F(NcclDataPlaneTest, StuckPeerIsAbortedAtTheDeadline) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  std::thread stuck([listener] {
    const int fd = accept(listener, nullptr, nullptr);
    uint8_t hello[kNcclControlHeaderBytes + kNcclUniqueIdBytes];
    size_t got = 0;
    while (got < sizeof(hello)) {
      const ssize_t n = read(fd, hello + got, sizeof(hello) - got);
      if (n <= 0) break;
      got += n;
    }
    ncclComm_t comm = nullptr;
    if (got == sizeof(hello)) {
      ncclUniqueId id;
      std::memcpy(id.internal, hello + kNcclControlHeaderBytes, sizeof(id.internal));
      cudaSetDevice(1);
      ncclCommInitRank(&comm, 2, id, 1);
    }
    uint8_t sink[256];
    while (read(fd, sink, sizeof(sink)) > 0) {
    }
    if (comm != nullptr) ncclCommAbort(comm);
    close(fd);
  });

  Inbox a_inbox;
  auto a = Make(0, 1, a_inbox);
  ASSERT_TRUE(a);
  const std::string address = "nccl:127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/1";
  ASSERT_TRUE(a->Connect(2, address).ok());
  a->Send(2, PatternPayload(4096, 1), a_inbox.Done());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(a_inbox.WaitError(Options(0).op_timeout + milliseconds(30000)));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, Options(0).op_timeout - milliseconds(100));
  EXPECT_EQ(a_inbox.Errors()[0].second.code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(a_inbox.WaitSends(1));
  EXPECT_EQ(a_inbox.Sends()[0].code(), absl::StatusCode::kUnavailable);
  a.reset();
  stuck.join();
  close(listener);
}

}  // namespace
}  // namespace yard::transport
