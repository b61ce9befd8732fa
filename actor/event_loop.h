// The executor a process's actors live on: one io_context served by a fixed set of
// threads, and the process's SIGINT/SIGTERM handling.
#ifndef SWITCHYARD_ACTOR_EVENT_LOOP_H_
#define SWITCHYARD_ACTOR_EVENT_LOOP_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"

namespace yard::actor {

// One io_context and the threads that run it. Every actor of a process is constructed
// on executor(); each actor's strand keeps its own tasks serial while the threads run
// different actors in parallel.
//
//   constructed ──Start()──▶ running ──Stop() (any thread, or a signal)──▶ stopped
//        │                                                                    │
//        └──────────────── Join() returns once stopped, threads exited ◀─────┘
//
// A process main: construct the loop, HandleShutdownSignals, build its actors on
// executor(), Start, Join, then destroy the actors (allowed: the loop has stopped),
// then the loop.
//
// Thread rule: the owner calls HandleShutdownSignals, Start and Join from one thread
// (main); Stop and executor may be called from any thread, including loop threads.
//
// Ownership: owns the io_context and its threads. Actors, bound callables and I/O
// objects using executor() must be destroyed before the loop. The destructor stops and
// joins; handlers still queued are destroyed unrun.
class EventLoop {
 public:
  // `num_threads` >= 1.
  explicit EventLoop(int num_threads);
  ~EventLoop();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::any_io_executor executor() { return context_.get_executor(); }

  // On the first SIGINT or SIGTERM, runs `on_signal(signo)` on a loop thread (not on
  // any actor's strand: it should only post to actors). Without `on_signal`, the loop
  // stops at once; a handler that drains first must call Stop() itself when done.
  // Later signals are swallowed. Call once, before Start.
  void HandleShutdownSignals(absl::AnyInvocable<void(int)> on_signal = nullptr);

  // Starts the threads. Call once.
  void Start();

  // Makes the threads return as soon as their current handlers finish. Idempotent.
  void Stop();

  // Blocks until the loop has been stopped and its threads have exited.
  void Join();

  // The signal that triggered HandleShutdownSignals' handler, or 0 if none has.
  int shutdown_signal() const { return shutdown_signal_.load(); }

 private:
  boost::asio::io_context context_;
  // Keeps run() from returning while actors are merely idle.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  const int num_threads_;
  std::vector<std::thread> threads_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::atomic<int> shutdown_signal_{0};
};

}  // namespace yard::actor

#endif  // SWITCHYARD_ACTOR_EVENT_LOOP_H_
