// A DataPlaneInterface wrapper for tests that delays, drops or fails sends per peer,
// to exercise the engine's retry and failover paths without a real network.
#ifndef SWITCHYARD_TRANSPORT_FAULT_INJECTING_DATA_PLANE_H_
#define SWITCHYARD_TRANSPORT_FAULT_INJECTING_DATA_PLANE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "transport/data_plane.h"

namespace yard::transport {

// How a dropped message completes.
enum class DropMode {
  kSilent,  // SendDone gets OK, as if sent: a loss only a timeout can notice
  kFail,    // SendDone gets kUnavailable
};

struct FaultInjectingOptions {
  // Seeds the generator behind drop probabilities, so a failing run repeats.
  uint64_t seed = 1;
};

// Wraps an inner data plane; receives and the inner transport's own peer errors
// pass straight to the handlers. Every Send goes through one fault thread owned by
// the wrapper, which applies that peer's faults as they are when the message is
// sent, holds delayed messages and forwards them to the inner Send in order:
//
//   Send ─▶ failed peer?  ─▶ done(kUnavailable)              (fault thread)
//        ─▶ drop?         ─▶ done(OK) or done(kUnavailable)  (fault thread)
//        ─▶ held until now + delay (never before an earlier message to the same
//           peer) ─▶ inner Send ─▶ inner's completion
//
// FailPeer also calls on_peer_error(peer) on the fault thread, so handlers may run
// on the fault thread and the inner transport's thread; each is a transport thread
// in the sense of DataPlaneInterface.
//
// Threading: every method, configuration included, may be called from any thread.
// Ownership: owns the inner data plane; the destructor completes held messages with
// kUnavailable on the fault thread, joins it, then destroys the inner data plane.
class FaultInjectingDataPlane : public DataPlaneInterface {
 public:
  // Builds the inner data plane with `handlers` and wraps it.
  static std::unique_ptr<FaultInjectingDataPlane> Create(
      DataPlaneHandlers handlers,
      const std::function<std::unique_ptr<DataPlaneInterface>(DataPlaneHandlers)>&
          make_inner,
      FaultInjectingOptions options = {});
  ~FaultInjectingDataPlane() override;

  PeerId self() const override { return inner_->self(); }
  absl::Status SetSelf(PeerId id) override { return inner_->SetSelf(id); }
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  // kUnavailable while `peer` is failed (FailPeer), else the inner Connect.
  absl::Status Connect(PeerId peer, const std::string& address) override;
  // Held messages to `peer` complete with kUnavailable, then the inner Disconnect.
  void Disconnect(PeerId peer) override;
  void Send(PeerId peer, Payload message, SendDone done) override;

  // Messages to `peer` sent from now on are held for `delay` (order kept).
  void SetDelay(PeerId peer, absl::Duration delay);
  // The next `count` messages to `peer` are dropped.
  void DropNext(PeerId peer, int64_t count);
  // Each message to `peer` is dropped with `probability` in [0, 1] (after DropNext).
  void SetDropProbability(PeerId peer, double probability);
  // How drops to `peer` complete; kSilent by default.
  void SetDropMode(PeerId peer, DropMode mode);
  // `peer` fails now: on_peer_error(peer, why) fires, held and future messages to
  // it complete with kUnavailable, Connect to it fails, until HealPeer.
  void FailPeer(PeerId peer, absl::Status why);
  void HealPeer(PeerId peer);
  // Clears every fault of `peer` except a failure.
  void ClearFaults(PeerId peer);

  // Messages to `peer` dropped so far.
  int64_t dropped(PeerId peer);
  // Messages to `peer` handed to the inner data plane so far.
  int64_t forwarded(PeerId peer);

 private:
  using Clock = std::chrono::steady_clock;

  struct HeldMessage {
    Clock::time_point due;
    Payload message;
    SendDone done;
  };
  struct PeerState {
    absl::Duration delay = absl::ZeroDuration();
    int64_t drop_next = 0;
    double drop_probability = 0.0;
    DropMode drop_mode = DropMode::kSilent;
    bool failed = false;
    absl::Status failure;
    std::deque<HeldMessage> held;
    int64_t dropped = 0;
    int64_t forwarded = 0;
  };

  FaultInjectingDataPlane(PeerErrorHandler on_peer_error, FaultInjectingOptions options);
  // Completes every held message of `state` with `why` (posted to the fault thread).
  // Expects mu_ held.
  void FailHeld(PeerState& state, const absl::Status& why);
  // Queues `f` to run on the fault thread. Expects mu_ held.
  void Post(std::function<void()> f);
  void FaultLoop();

  const PeerErrorHandler on_peer_error_;
  std::unique_ptr<DataPlaneInterface> inner_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::map<PeerId, PeerState> peers_;
  std::deque<std::function<void()>> ready_;  // completions and peer errors
  std::mt19937_64 rng_;
  bool stopping_ = false;
  std::thread fault_thread_;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_FAULT_INJECTING_DATA_PLANE_H_
