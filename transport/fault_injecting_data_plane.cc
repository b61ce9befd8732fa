#include "transport/fault_injecting_data_plane.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace yard::transport {

std::unique_ptr<FaultInjectingDataPlane> FaultInjectingDataPlane::Create(
    DataPlaneHandlers handlers,
    const std::function<std::unique_ptr<DataPlaneInterface>(DataPlaneHandlers)>& make_inner,
    FaultInjectingOptions options) {
  std::unique_ptr<FaultInjectingDataPlane> plane(
      new FaultInjectingDataPlane(handlers.on_peer_error, options));
  plane->inner_ = make_inner(std::move(handlers));
  YARD_CHECK(plane->inner_ != nullptr, "make_inner must return a data plane");
  return plane;
}

FaultInjectingDataPlane::FaultInjectingDataPlane(PeerErrorHandler on_peer_error,
                                                 FaultInjectingOptions options)
    : on_peer_error_(std::move(on_peer_error)), rng_(options.seed) {
  fault_thread_ = std::thread([this] { FaultLoop(); });
}

FaultInjectingDataPlane::~FaultInjectingDataPlane() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Status why =
        absl::UnavailableError("fault-injecting data plane destroyed");
    for (auto& [peer, state] : peers_) FailHeld(state, why);
    stopping_ = true;
  }
  wake_.notify_all();
  fault_thread_.join();
}

absl::Status FaultInjectingDataPlane::Connect(PeerId peer, const std::string& address) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = peers_.find(peer);
    if (it != peers_.end() && it->second.failed) {
      return absl::UnavailableError(absl::StrCat("peer ", peer, " is failed by fault "
                                                 "injection: ",
                                                 it->second.failure.ToString()));
    }
  }
  return inner_->Connect(peer, address);
}

void FaultInjectingDataPlane::Disconnect(PeerId peer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    FailHeld(peers_[peer],
             absl::UnavailableError(absl::StrCat("peer ", peer, " disconnected")));
  }
  inner_->Disconnect(peer);
}

void FaultInjectingDataPlane::Send(PeerId peer, Payload message, SendDone done) {
  std::lock_guard<std::mutex> lock(mu_);
  PeerState& state = peers_[peer];
  if (state.failed) {
    Post([done = std::move(done), why = state.failure, peer] {
      done(absl::UnavailableError(absl::StrCat("peer ", peer, " is failed by fault "
                                               "injection: ",
                                               why.ToString())));
    });
    return;
  }
  bool drop = false;
  if (state.drop_next > 0) {
    --state.drop_next;
    drop = true;
  } else if (state.drop_probability > 0.0) {
    drop = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < state.drop_probability;
  }
  if (drop) {
    ++state.dropped;
    const bool fail = state.drop_mode == DropMode::kFail;
    Post([done = std::move(done), fail, peer] {
      done(fail ? absl::UnavailableError(absl::StrCat(
                      "message to peer ", peer, " dropped by fault injection"))
                : absl::OkStatus());
    });
    return;
  }
  Clock::time_point due = Clock::now() + absl::ToChronoNanoseconds(state.delay);
  if (!state.held.empty() && state.held.back().due > due) due = state.held.back().due;
  state.held.push_back(HeldMessage{due, std::move(message), std::move(done)});
  wake_.notify_one();
}

void FaultInjectingDataPlane::SetDelay(PeerId peer, absl::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  peers_[peer].delay = delay;
}

void FaultInjectingDataPlane::DropNext(PeerId peer, int64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  peers_[peer].drop_next = count;
}

void FaultInjectingDataPlane::SetDropProbability(PeerId peer, double probability) {
  YARD_CHECK(probability >= 0.0 && probability <= 1.0, "probability in [0, 1]");
  std::lock_guard<std::mutex> lock(mu_);
  peers_[peer].drop_probability = probability;
}

void FaultInjectingDataPlane::SetDropMode(PeerId peer, DropMode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  peers_[peer].drop_mode = mode;
}

void FaultInjectingDataPlane::FailPeer(PeerId peer, absl::Status why) {
  YARD_CHECK(!why.ok(), "a failure needs a non-OK status");
  std::lock_guard<std::mutex> lock(mu_);
  PeerState& state = peers_[peer];
  state.failed = true;
  state.failure = why;
  FailHeld(state, absl::UnavailableError(absl::StrCat(
                      "peer ", peer, " failed by fault injection: ", why.ToString())));
  Post([this, peer, why = std::move(why)] {
    if (on_peer_error_) on_peer_error_(peer, why);
  });
}

void FaultInjectingDataPlane::HealPeer(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  PeerState& state = peers_[peer];
  state.failed = false;
  state.failure = absl::OkStatus();
}

void FaultInjectingDataPlane::ClearFaults(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  PeerState& state = peers_[peer];
  state.delay = absl::ZeroDuration();
  state.drop_next = 0;
  state.drop_probability = 0.0;
  state.drop_mode = DropMode::kSilent;
}

int64_t FaultInjectingDataPlane::dropped(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_[peer].dropped;
}

int64_t FaultInjectingDataPlane::forwarded(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_[peer].forwarded;
}

void FaultInjectingDataPlane::FailHeld(PeerState& state, const absl::Status& why) {
  for (HeldMessage& held : state.held) {
    Post([done = std::move(held.done), why] { done(why); });
  }
  state.held.clear();
}

void FaultInjectingDataPlane::Post(std::function<void()> f) {
  ready_.push_back(std::move(f));
  wake_.notify_one();
}

void FaultInjectingDataPlane::FaultLoop() {
  struct Forward {
    PeerId peer;
    HeldMessage message;
  };
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    std::deque<std::function<void()>> run;
    run.swap(ready_);
    std::vector<Forward> forward;
    const Clock::time_point now = Clock::now();
    Clock::time_point next_due = Clock::time_point::max();
    for (auto& [peer, state] : peers_) {
      while (!state.held.empty() && state.held.front().due <= now) {
        forward.push_back(Forward{peer, std::move(state.held.front())});
        state.held.pop_front();
        ++state.forwarded;
      }
      if (!state.held.empty() && state.held.front().due < next_due) {
        next_due = state.held.front().due;
      }
    }
    if (run.empty() && forward.empty()) {
      if (stopping_) return;  // the destructor failed every held message first
      if (next_due == Clock::time_point::max()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, next_due);
      }
      continue;
    }
    // Only this thread calls the inner Send, so a peer's messages keep their order.
    lock.unlock();
    for (std::function<void()>& f : run) f();
    for (Forward& f : forward) {
      inner_->Send(f.peer, std::move(f.message.message), std::move(f.message.done));
    }
    lock.lock();
  }
}

}  // namespace yard::transport
