#include "actor/event_loop.h"

#include <csignal>

#include "common/check.h"

namespace yard::actor {

EventLoop::EventLoop(int num_threads) : work_(context_.get_executor()), num_threads_(num_threads) {
  YARD_CHECK(num_threads >= 1, "an event loop needs at least one thread");
}

EventLoop::~EventLoop() {
  Stop();
  Join();
  // The signal set deregisters from the context's signal service: before the context.
  signals_.reset();
}

void EventLoop::HandleShutdownSignals(absl::AnyInvocable<void(int)> on_signal) {
  YARD_CHECK(threads_.empty(), "HandleShutdownSignals must come before Start");
  YARD_CHECK(signals_ == nullptr, "HandleShutdownSignals called twice");
  signals_ = std::make_unique<boost::asio::signal_set>(context_, SIGINT, SIGTERM);
  // Capturing `this` is safe: the loop's handlers never outlive its context.
  signals_->async_wait([this, on_signal = std::move(on_signal)](
                           const boost::system::error_code& error, int signo) mutable {
    if (error) return;  // cancelled when the loop is destroyed
    shutdown_signal_.store(signo);
    if (on_signal) {
      on_signal(signo);
    } else {
      Stop();
    }
  });
}

void EventLoop::Start() {
  YARD_CHECK(threads_.empty(), "EventLoop::Start called twice");
  threads_.reserve(num_threads_);
  for (int i = 0; i < num_threads_; ++i) {
    threads_.emplace_back([this] { context_.run(); });
  }
}

void EventLoop::Stop() { context_.stop(); }

void EventLoop::Join() {
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

}  // namespace yard::actor
