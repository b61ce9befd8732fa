// An in-process DataPlaneInterface for integration tests: endpoints of one process
// exchange messages through a shared InprocFabric, with the same threading and
// failure contract as the real transports (handlers on a transport thread, per-pair
// order, kUnavailable after a disconnect or a peer's destruction).
#ifndef SWITCHYARD_TRANSPORT_INPROC_INPROC_DATA_PLANE_H_
#define SWITCHYARD_TRANSPORT_INPROC_INPROC_DATA_PLANE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/data_plane.h"

namespace yard::transport {

class InprocDataPlane;

// The hub that InprocDataPlane endpoints register with, and the owner of the one
// delivery thread on which every endpoint's handlers and send completions run, in
// the order the events happened (so messages of a pair keep their order).
//
// Threading: all methods of the fabric and its endpoints may be called from any
// thread, handlers included; the fabric's lock is never held while a handler runs.
// Ownership: the fabric must outlive every endpoint created on it; its destructor
// runs what is still queued, then joins the delivery thread.
class InprocFabric {
 public:
  InprocFabric();
  ~InprocFabric();
  InprocFabric(const InprocFabric&) = delete;
  InprocFabric& operator=(const InprocFabric&) = delete;

  // "inproc:<id>", the address of endpoint `id`.
  static std::string AddressOf(PeerId id);
  // The id in an "inproc:<decimal u32>" address; kInvalidArgument otherwise.
  static absl::StatusOr<PeerId> ParseAddress(const std::string& address);

 private:
  friend class InprocDataPlane;

  // One registered endpoint. Handlers are called only while `registered`; the
  // endpoint's destructor waits until `queued` and `running` are 0.
  struct Endpoint {
    PeerId id = 0;
    DataPlaneHandlers handlers;
    bool registered = true;
    int64_t queued = 0;   // queued tasks whose callbacks belong to this endpoint
    int64_t running = 0;  // callbacks of this endpoint now running
  };
  // A direction from -> to opened by from's Connect. `generation` changes whenever
  // the link is broken or reopened, so that queued sends of an older generation fail.
  struct Link {
    uint64_t generation = 0;
    bool broken = false;  // closed by the peer: sends fail with kUnavailable
  };
  struct Task {
    std::shared_ptr<Endpoint> owner;  // whose callback `run` invokes
    std::function<void()> run;
  };

  // All private methods below expect mu_ held unless they say otherwise.
  absl::StatusOr<std::shared_ptr<Endpoint>> Register(PeerId id, DataPlaneHandlers handlers);
  // Unregisters, fails the endpoint's links and waits for its queued callbacks.
  // Takes mu_ itself.
  void Unregister(const std::shared_ptr<Endpoint>& endpoint);
  absl::Status Connect(PeerId from, PeerId to, const std::string& address);
  void Disconnect(PeerId from, PeerId to);
  void Send(const std::shared_ptr<Endpoint>& from, PeerId to, Payload message,
            SendDone done);
  // Removes from -> to and breaks to -> from, telling `to` unless `to` is gone.
  void CloseLinksBetween(PeerId from, PeerId to, const absl::Status& why);
  void Post(std::shared_ptr<Endpoint> owner, std::function<void()> run);
  void PostPeerError(PeerId to_notify, PeerId peer, absl::Status why);
  // Runs `f` as a callback of `endpoint` (counted in `running`), mu_ released.
  void RunAsCallback(std::unique_lock<std::mutex>& lock, Endpoint& endpoint,
                     const std::function<void()>& f);
  void DeliveryLoop();

  std::mutex mu_;
  std::condition_variable wake_;     // the delivery thread: a task or stop
  std::condition_variable drained_;  // endpoints waiting for their callbacks
  std::map<PeerId, std::shared_ptr<Endpoint>> endpoints_;
  std::map<std::pair<PeerId, PeerId>, Link> links_;
  uint64_t next_generation_ = 1;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::thread::id delivery_thread_id_;
  std::thread delivery_thread_;
};

// One endpoint on an InprocFabric; its address is "inproc:<self>".
//
// Threading: any thread (see InprocFabric); handlers and completions run on the
// fabric's delivery thread. Ownership: borrows the fabric, which must outlive it.
// Destroying it (never from one of its own handlers) unregisters it: its queued
// sends complete with kUnavailable before the destructor returns, peers' sends to
// it fail with kUnavailable and every peer it had a link with gets on_peer_error.
class InprocDataPlane : public DataPlaneInterface {
 public:
  // kAlreadyExists when `self` is already registered on `fabric`.
  static absl::StatusOr<std::unique_ptr<InprocDataPlane>> Create(InprocFabric& fabric,
                                                                 PeerId self,
                                                                 DataPlaneHandlers handlers);
  ~InprocDataPlane() override;

  PeerId self() const override { return self_; }
  // In-process endpoints are registered in the fabric by id at Create.
  absl::Status SetSelf(PeerId id) override {
    return id == self_ ? absl::OkStatus()
                       : absl::FailedPreconditionError("inproc endpoints are named at Create");
  }
  std::string LocalAddress() const override { return InprocFabric::AddressOf(self_); }
  // kInvalidArgument for an address that is not "inproc:<peer>"; kUnavailable when
  // no endpoint `peer` is registered.
  absl::Status Connect(PeerId peer, const std::string& address) override;
  // Pending sends to `peer` complete with kUnavailable; `peer` gets on_peer_error
  // and its sends to this endpoint fail with kUnavailable until it reconnects.
  void Disconnect(PeerId peer) override;
  void Send(PeerId peer, Payload message, SendDone done) override;

 private:
  InprocDataPlane(InprocFabric& fabric, PeerId self,
                  std::shared_ptr<InprocFabric::Endpoint> endpoint)
      : fabric_(fabric), self_(self), endpoint_(std::move(endpoint)) {}

  InprocFabric& fabric_;
  const PeerId self_;
  const std::shared_ptr<InprocFabric::Endpoint> endpoint_;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_INPROC_INPROC_DATA_PLANE_H_
