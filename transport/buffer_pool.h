// Received-message buffers kept for reuse. A worker receives a dispatch or combine of
// up to tens of MiB per layer and step; a fresh std::vector of that size is zero-filled
// (and, when its pages are new, faulted in) before the transport copies into it. Buffers
// handed back through DataPlaneInterface::Recycle keep their size, so the next message
// of at most that size truncates one instead: no fill, no fault.
//
// Thread-safe (one mutex; a few operations per message).
#ifndef SWITCHYARD_TRANSPORT_BUFFER_POOL_H_
#define SWITCHYARD_TRANSPORT_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace yard::transport {

class BufferPool {
 public:
  // At most `max_buffers` kept, and at most `max_bytes` of them in all.
  explicit BufferPool(size_t max_buffers = 16, size_t max_bytes = size_t{1} << 30)
      : max_buffers_(max_buffers), max_bytes_(max_bytes) {}

  // A buffer of exactly `size` bytes with unspecified contents: the smallest kept one
  // that is at least that large, truncated; else a new one.
  std::vector<uint8_t> Take(size_t size) ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps `buffer` (its size is what a later Take can reuse without filling) unless
  // the pool is full; then the smallest buffer goes.
  void Give(std::vector<uint8_t> buffer) ABSL_LOCKS_EXCLUDED(mu_);

  size_t kept() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t max_buffers_;
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  std::vector<std::vector<uint8_t>> buffers_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_BUFFER_POOL_H_
