// Test helpers for data-plane tests: an Inbox that collects what a data plane's
// handlers report, and a SendLog that collects SendDone results, each waitable with a
// deadline (condition variables, never sleeps).
#ifndef SWITCHYARD_TESTS_UNIT_TRANSPORT_UCX_TEST_INBOX_H_
#define SWITCHYARD_TESTS_UNIT_TRANSPORT_UCX_TEST_INBOX_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "transport/data_plane.h"

namespace yard::transport::testing {

inline constexpr auto kDeadline = std::chrono::seconds(60);

// Bytes of message `index` in a test: a pattern that differs per index and position.
inline Payload PatternPayload(size_t size, uint32_t index) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(size);
  for (size_t i = 0; i < size; ++i) {
    (*bytes)[i] = static_cast<uint8_t>((i * 131 + index * 7 + (i >> 8)) & 0xff);
  }
  return bytes;
}

// Filled by a data plane's handlers (on its progress thread); read by the test thread.
class Inbox {
 public:
  struct Message {
    PeerId from;
    std::vector<uint8_t> bytes;
  };

  DataPlaneHandlers Handlers() {
    return DataPlaneHandlers{
        [this](PeerId from, std::vector<uint8_t> bytes) {
          std::lock_guard<std::mutex> lock(mu_);
          messages_.push_back(Message{from, std::move(bytes)});
          cv_.notify_all();
        },
        [this](PeerId peer, absl::Status why) {
          std::lock_guard<std::mutex> lock(mu_);
          errors_.emplace_back(peer, std::move(why));
          cv_.notify_all();
        }};
  }

  // True when at least `n` messages arrived before the deadline.
  bool WaitForMessages(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return messages_.size() >= n; });
  }
  bool WaitForError() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return !errors_.empty(); });
  }

  std::vector<Message> TakeMessages() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(messages_);
  }
  std::vector<std::pair<PeerId, absl::Status>> Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Message> messages_;
  std::vector<std::pair<PeerId, absl::Status>> errors_;
};

// Collects SendDone results.
class SendLog {
 public:
  SendDone Done() {
    return [this](absl::Status status) {
      std::lock_guard<std::mutex> lock(mu_);
      results_.push_back(std::move(status));
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return results_.size() >= n; });
  }
  // Waits until one result has `code`, or the deadline.
  bool WaitForCode(absl::StatusCode code) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] {
      for (const absl::Status& s : results_) {
        if (s.code() == code) return true;
      }
      return false;
    });
  }
  std::vector<absl::Status> Results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<absl::Status> results_;
};

}  // namespace yard::transport::testing

#endif  // SWITCHYARD_TESTS_UNIT_TRANSPORT_UCX_TEST_INBOX_H_
