// The actor primitive every switchyard process builds on: state owned by one object and
// touched only by tasks serialized on its strand, with named tasks so queueing and run
// time can be measured.
#ifndef SWITCHYARD_ACTOR_ACTOR_H_
#define SWITCHYARD_ACTOR_ACTOR_H_

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "actor/task_stats.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/strand.hpp"

namespace yard::actor {

namespace internal {
// The part of an actor that tasks and bound callables refer to weakly (strand and task
// statistics); the Actor holds the only strong reference, so its destruction is what
// makes queued tasks drop themselves. Defined in actor.cc.
struct Core;
}  // namespace internal

// A strand plus the bookkeeping around it. A component that is an actor holds an
// Actor as a member and does everything that touches its state inside tasks posted
// here (or callables made by Bind), so its state needs no locks:
//
//   class Router {
//    public:
//     void Submit(Request r) {
//       actor_.Post("router.submit", [this, r = std::move(r)]() mutable { ... });
//     }
//    private:
//     ...state, touched only on actor_'s strand...
//     Actor actor_;  // last: destroyed first, so nothing queued runs on dead state
//   };
//
// Capturing `this` in Post is safe because a task posted here runs only while the
// Actor (and hence its owner) is alive; anything handed to another component or thread
// must go through Bind instead.
//
// Thread rule: Post, Bind, OnStrand, name and strand may be called from any thread
// while the Actor is alive. Tasks run one at a time, in post order for posts from one
// thread, on whichever thread runs the executor. Stats is read on the strand.
//
// Ownership: the executor's execution context (the event loop's io_context) must
// outlive the Actor. The owner destroys the Actor either on its strand (from one of its
// tasks) or after the io_context has stopped, so no task of it is running meanwhile;
// tasks still queued are then dropped unrun.
class Actor {
 public:
  using Executor = boost::asio::any_io_executor;
  using Strand = boost::asio::strand<Executor>;
  using Task = absl::AnyInvocable<void()>;

  // `name` appears in off-strand check failures. `executor` is usually the event loop's.
  Actor(std::string name, Executor executor);
  ~Actor();

  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

  const std::string& name() const { return name_; }

  // For binding asio I/O objects (timers, sockets) to this actor's strand. Completion
  // handlers given to them must still not capture `this` raw: wrap them with Bind.
  const Strand& strand() const;

  // Runs `task` on the strand, after the tasks posted before it. `name` is the task's
  // statistics key; it is kept by pointer, so it is a string literal
  // ("component.message").
  void Post(const char* name, Task task);

  // A callable that anyone may keep and invoke from any thread: invoking it with
  // `args...` posts `f(args...)` as a task named `name`. The arguments are decay-copied
  // (or moved) into the message. If the actor has been destroyed by the time the task
  // would run (or already at the call), the call is dropped. The callable is copyable
  // and holds the actor only weakly; it must not be invoked after the io_context is
  // destroyed. `f` itself is shared by all copies and called only on the strand.
  template <class F>
  auto Bind(const char* name, F f) const;

  // Whether the calling thread is running a task of this actor's strand.
  bool OnStrand() const;

  // Statistics of every task name that has run, sorted by name. Call on the strand
  // (e.g. from a task posted by a metrics exporter): the table is not locked.
  std::vector<TaskStats> Stats() const;

 private:
  const std::string name_;
  const std::shared_ptr<internal::Core> core_;
};

namespace internal {

// Posts `task` to `core`'s strand if the actor is still alive, and records its
// statistics when it runs; drops it if the actor died first.
void PostTask(const std::weak_ptr<Core>& core, const char* name, Actor::Task task);

[[noreturn]] void DieOffStrand(const std::string& actor, const char* file, int line);

}  // namespace internal

template <class F>
auto Actor::Bind(const char* name, F f) const {
  // Shared rather than copied into every message, so move-only callables bind too.
  return [core = std::weak_ptr<internal::Core>(core_), name,
          f = std::make_shared<F>(std::move(f))](auto&&... args) {
    internal::PostTask(
        core, name, [f, args = std::make_tuple(std::forward<decltype(args)>(args)...)]() mutable {
          std::apply(*f, std::move(args));
        });
  };
}

}  // namespace yard::actor

// Aborts, naming the actor and the call site, unless the caller runs on `the_actor`'s
// strand (a yard::actor::Actor). Checked in every build: for places off the hot path
// where touching state from the wrong thread would corrupt it silently, and for tests.
#define YARD_CHECK_ON_STRAND(the_actor)                                              \
  do {                                                                               \
    if (!(the_actor).OnStrand()) [[unlikely]] {                                      \
      ::yard::actor::internal::DieOffStrand((the_actor).name(), __FILE__, __LINE__); \
    }                                                                                \
  } while (false)

// YARD_CHECK_ON_STRAND in debug builds (NDEBUG undefined); in -c opt builds it checks
// nothing and does not evaluate `the_actor`, so it may guard every state access.
#ifdef NDEBUG
#define YARD_DCHECK_ON_STRAND(the_actor)  \
  do {                                    \
    (void)sizeof((the_actor).OnStrand()); \
  } while (false)
#else
#define YARD_DCHECK_ON_STRAND(the_actor) YARD_CHECK_ON_STRAND(the_actor)
#endif

#endif  // SWITCHYARD_ACTOR_ACTOR_H_
