#include "transport/buffer_pool.h"

#include <algorithm>
#include <utility>

namespace yard::transport {

std::vector<uint8_t> BufferPool::Take(size_t size) {
  {
    absl::MutexLock lock(&mu_);
    auto best = buffers_.end();
    for (auto it = buffers_.begin(); it != buffers_.end(); ++it) {
      if (it->size() >= size && (best == buffers_.end() || it->size() < best->size())) best = it;
    }
    if (best != buffers_.end()) {
      std::vector<uint8_t> buffer = std::move(*best);
      bytes_ -= buffer.size();
      buffers_.erase(best);
      buffer.resize(size);  // shrinks: nothing is written
      return buffer;
    }
  }
  return std::vector<uint8_t>(size);
}

void BufferPool::Give(std::vector<uint8_t> buffer) {
  if (buffer.empty() || buffer.size() > max_bytes_) return;
  absl::MutexLock lock(&mu_);
  buffers_.push_back(std::move(buffer));
  bytes_ += buffers_.back().size();
  // Over a limit: drop the smallest (the large ones are the ones worth keeping).
  while (buffers_.size() > max_buffers_ || bytes_ > max_bytes_) {
    auto smallest = std::min_element(
        buffers_.begin(), buffers_.end(),
        [](const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) { return a.size() < b.size(); });
    bytes_ -= smallest->size();
    buffers_.erase(smallest);
  }
}

size_t BufferPool::kept() const {
  absl::MutexLock lock(&mu_);
  return buffers_.size();
}

}  // namespace yard::transport
