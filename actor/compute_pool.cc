#include "actor/compute_pool.h"

#include <chrono>

#include "boost/asio/post.hpp"
#include "common/check.h"

namespace yard::actor {
namespace {

std::size_t CheckedThreadCount(int num_threads) {
  YARD_CHECK(num_threads >= 1, "a compute pool needs at least one thread");
  return static_cast<std::size_t>(num_threads);
}

}  // namespace

ComputePool::ComputePool(int num_threads) : pool_(CheckedThreadCount(num_threads)) {}

ComputePool::~ComputePool() { Join(); }

void ComputePool::Post(const char* name, absl::AnyInvocable<void()> work) {
  const auto posted = std::chrono::steady_clock::now();
  // Capturing `this` is safe: the destructor joins, so no work outlives the pool.
  boost::asio::post(pool_, [this, name, work = std::move(work), posted]() mutable {
    const auto start = std::chrono::steady_clock::now();
    work();
    const auto end = std::chrono::steady_clock::now();
    absl::MutexLock lock(&mu_);
    stats_.Record(name, absl::FromChrono(start - posted), absl::FromChrono(end - start));
  });
}

void ComputePool::Join() { pool_.join(); }

std::vector<TaskStats> ComputePool::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_.Snapshot();
}

}  // namespace yard::actor
