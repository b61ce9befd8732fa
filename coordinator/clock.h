// Where the coordinator's notion of "now" comes from, so liveness can be tested by
// stepping time instead of sleeping.
#ifndef SWITCHYARD_COORDINATOR_CLOCK_H_
#define SWITCHYARD_COORDINATOR_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace yard::coordinator {

// Thread rule: Now may be called from any thread.
class ClockInterface {
 public:
  virtual ~ClockInterface() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock.
class RealClock final : public ClockInterface {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// A clock that moves only when told to (tests).
//
// Thread rule: every method may be called from any thread.
class FakeClock final : public ClockInterface {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}

  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace yard::coordinator

#endif  // SWITCHYARD_COORDINATOR_CLOCK_H_
