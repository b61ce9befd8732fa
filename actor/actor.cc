#include "actor/actor.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "boost/asio/post.hpp"

namespace yard::actor {
namespace internal {

struct Core {
  explicit Core(Actor::Executor executor) : strand(std::move(executor)) {}

  const Actor::Strand strand;
  // Touched only on `strand`.
  TaskStatsTable stats;
};

void PostTask(const std::weak_ptr<Core>& weak_core, const char* name, Actor::Task task) {
  // The strand is reached through the core rather than kept by callers, so a bound
  // callable that outlives the actor holds no strand (whose destruction after the
  // io_context's would touch a dead service).
  const std::shared_ptr<Core> core = weak_core.lock();
  if (core == nullptr) return;
  const auto posted = std::chrono::steady_clock::now();
  boost::asio::post(core->strand, [weak_core, name, task = std::move(task), posted]() mutable {
    // The owner destroys the actor only on this strand or after the loop stopped, so
    // the actor cannot die between this check and the end of the task.
    const std::shared_ptr<Core> alive = weak_core.lock();
    if (alive == nullptr) return;
    const auto start = std::chrono::steady_clock::now();
    task();
    const auto end = std::chrono::steady_clock::now();
    alive->stats.Record(name, absl::FromChrono(start - posted), absl::FromChrono(end - start));
  });
}

void DieOffStrand(const std::string& actor, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: actor '%s' touched off its strand\n", file, line, actor.c_str());
  std::abort();
}

}  // namespace internal

Actor::Actor(std::string name, Executor executor)
    : name_(std::move(name)), core_(std::make_shared<internal::Core>(std::move(executor))) {}

Actor::~Actor() = default;

const Actor::Strand& Actor::strand() const { return core_->strand; }

void Actor::Post(const char* name, Task task) { internal::PostTask(core_, name, std::move(task)); }

bool Actor::OnStrand() const { return core_->strand.running_in_this_thread(); }

std::vector<TaskStats> Actor::Stats() const {
  YARD_DCHECK_ON_STRAND(*this);
  return core_->stats.Snapshot();
}

}  // namespace yard::actor
