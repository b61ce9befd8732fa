// Threads for blocking or heavy work (checkpoint reads, CPU expert GEMMs, tokenizing
// long prompts), kept off the event loop so no actor's strand waits behind it.
#ifndef SWITCHYARD_ACTOR_COMPUTE_POOL_H_
#define SWITCHYARD_ACTOR_COMPUTE_POOL_H_

#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor.h"
#include "actor/task_stats.h"
#include "boost/asio/thread_pool.hpp"

namespace yard::actor {

// A fixed set of threads running posted work, several pieces at once. Work reports
// back to an actor by message (RunThenPost), never by touching the actor's state.
//
// Thread rule: Post and Stats may be called from any thread; work runs on one of the
// pool's threads, concurrently with other work.
//
// Ownership: owns its threads. The destructor waits for all posted work to finish
// (Join), so work may refer to the pool and to anything that outlives it.
class ComputePool {
 public:
  // `num_threads` >= 1.
  explicit ComputePool(int num_threads);
  ~ComputePool();

  ComputePool(const ComputePool&) = delete;
  ComputePool& operator=(const ComputePool&) = delete;

  // Runs `work` on a pool thread. `name` is its statistics key, kept by pointer (a
  // string literal). Must not be called after Join.
  void Post(const char* name, absl::AnyInvocable<void()> work);

  // Waits until every posted piece of work has run, then stops the threads.
  void Join();

  // Statistics of every work name that has run, sorted by name.
  std::vector<TaskStats> Stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  boost::asio::thread_pool pool_;
  mutable absl::Mutex mu_;
  TaskStatsTable stats_ ABSL_GUARDED_BY(mu_);
};

// Runs `work()` on `pool`, then `on_done(result)` (or `on_done()` when `work` returns
// void) as a task named `name` on `actor`'s strand. If the actor is destroyed before
// the result arrives, `on_done` is dropped unrun. `actor` need only be alive during
// this call.
template <class Work, class OnDone>
void RunThenPost(ComputePool& pool, const Actor& actor, const char* name, Work work,
                 OnDone on_done) {
  using Result = std::invoke_result_t<Work&>;
  pool.Post(name,
            [work = std::move(work), deliver = actor.Bind(name, std::move(on_done))]() mutable {
              if constexpr (std::is_void_v<Result>) {
                work();
                deliver();
              } else {
                deliver(work());
              }
            });
}

}  // namespace yard::actor

#endif  // SWITCHYARD_ACTOR_COMPUTE_POOL_H_
