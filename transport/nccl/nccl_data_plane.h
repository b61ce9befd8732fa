// The GPU data plane: whole messages between an attention worker and an expert worker
// over NCCL point-to-point (ncclSend / ncclRecv), for activations that live on the GPU.
// Built only under --config=cuda (tagged "cuda").
//
// Failure isolation (DESIGN.md, "Failure model"): NCCL fails a whole communicator when
// one of its ranks dies, so no communicator here spans the attention and expert pools.
// Each connected peer pair gets its own two-rank communicator, created nonblocking
// (ncclConfig_t::blocking = 0) and aborted (ncclCommAbort) by a watchdog at a deadline,
// so a dead peer fails that pair only and never hangs the process.
//
// Bootstrap: why a TCP control connection. One ncclUniqueId bootstraps exactly one
// communicator (it names a one-shot bootstrap root), but a data-plane address is one
// static string published once through the coordinator, and a pair must be
// re-creatable after a failure. So an address cannot carry the pair's id; it carries
// a TCP control port instead (nccl_address.h). For a pair (a, b) the endpoint with the
// smaller PeerId is rank 0: on Connect it dials the other's control port, calls
// ncclGetUniqueId (a fresh id for this pair and this attempt only), starts
// ncclCommInitRankConfig(rank 0) and sends the id in a kHello (nccl_control.h); the
// other endpoint starts ncclCommInitRankConfig(rank 1) once it has both the kHello and
// its own Connect for that peer. A bootstrap communicator split per pair
// (ncclCommSplit) was rejected: the parent would span both pools, which is exactly what
// must not exist. The control port trusts the cluster network, as UCX's does.
//
// Messages: why the sizes travel over TCP. NCCL p2p is rendezvous: a send completes
// only against a matching receive, and the ops of one communicator run in the order
// they were enqueued on its stream. A receive posted in advance for "the next size"
// would spin a kernel for as long as the peer is idle (one per peer, on the SMs the
// model needs), could not be given a deadline, and would hold back every later op on
// the stream, including our own sends: two peers each waiting in a receive deadlock.
// Instead every message is announced on the control connection, and rank 0 orders the
// pair's operations: rank 0 announces its own sends (kData) and posts them at once;
// rank 1 asks (kRequest) and posts its send when rank 0 answers kGo, which rank 0 sends
// right as it posts the matching receive. Both ranks thus enqueue the same sequence of
// ncclSend / ncclRecv on one communicator and one stream, every posted op has a peer
// op on its way, and "nothing completed for options.op_timeout" means the pair is
// broken.
// Rank 1's sends pay one extra control round trip.
//
// Data path: Send takes host bytes; they are copied into a stream-ordered device
// buffer (cudaMallocAsync + cudaMemcpyAsync on a per-pair copy stream), then sent
// with one ncclSend on the pair's NCCL stream. A receive goes into a device buffer and
// is copied back to host for on_receive. A GPU-resident engine would hand device
// pointers straight to NCCL; SendDevice is that path for the sending side (the
// receiving side still lands in host memory until the engine has a device-side
// receive handler).
//
// Threading: Create starts two threads, both joined by the destructor.
//   * The progress thread owns the control sockets, the pairs' queues, streams and
//     buffers, and makes every nonblocking NCCL call (init, send/recv, the
//     ncclCommGetAsyncError polling of ncclInProgress). Handlers and SendDone run on it.
//   * The watchdog thread is the only caller of ncclCommAbort. Every watchdog_period it
//     checks each communicator's deadline and ncclCommGetAsyncError; it aborts a
//     communicator that is past its deadline, reports an asynchronous error, or that
//     the progress thread asked it to abort (control connection lost, Disconnect),
//     then wakes the progress thread, which fails the pair. ncclCommAbort can take a
//     while, and a deadline must fire even if a CUDA call on the progress thread were
//     to block behind a stuck kernel, hence the separate thread. A per-communicator
//     mutex orders the two: the progress thread only try-locks it, so it never waits
//     for an abort of one pair while serving the others.
// Public methods may be called from any thread; they post to the progress thread and
// return at once (Connect resolves the host name on the caller's thread first).
//
// Ordering: per peer, messages arrive in the order sent (one communicator, one stream,
// NCCL's in-order p2p matching, in-order delivery of completions). A reconnect builds a
// new communicator; nothing of the old one is delivered after its failure.
//
// Device: every communicator, stream and buffer of this endpoint is on
// options.device. NCCL refuses two ranks of one communicator on the same GPU
// ("Duplicate GPU detected", ncclInvalidUsage), so a pair needs two GPUs; Connect
// rejects a peer advertising this endpoint's own host and device.
//
// Per-pair states (progress thread):
//
//   (none) --Connect--> dialing (rank 0) -----------+--> initializing --comm ready--> ready
//                       awaiting hello (rank 1) ----+          |                        |
//      ^                                                       +-- error / deadline ----+
//      |                                                       v
//      +------------ Disconnect / failure (on_peer_error) -- aborted
//
// Send: none -> kFailedPrecondition; queued while setting up; failed -> kUnavailable.
#ifndef SWITCHYARD_TRANSPORT_NCCL_NCCL_DATA_PLANE_H_
#define SWITCHYARD_TRANSPORT_NCCL_NCCL_DATA_PLANE_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "transport/data_plane.h"

namespace yard::transport {

struct NcclOptions {
  // The CUDA device of every communicator and buffer of this endpoint. Default 0.
  int device = 0;

  // The IPv4 address the control port binds to and the host LocalAddress() advertises.
  // Empty (default): bind every interface and advertise gethostname(), which peers
  // must be able to resolve. NCCL's own bootstrap and transport pick their interfaces
  // from NCCL_SOCKET_IFNAME / NCCL_IB_HCA as usual.
  std::string host;

  // How long a ready pair with outstanding operations (sends queued or in NCCL,
  // announced receives) may go without completing one before its communicator is
  // aborted. Measured from the last completion, not from each Send, so a long queue
  // behind a healthy peer does not trip it. Default 10 s.
  std::chrono::milliseconds op_timeout{10'000};

  // How long Connect's setup (control connection, kHello, communicator init) may take
  // before the pair is aborted. Default 30 s (NCCL init can take seconds).
  std::chrono::milliseconds connect_timeout{30'000};

  // How often the watchdog checks deadlines and asynchronous errors. Default 50 ms.
  std::chrono::milliseconds watchdog_period{50};

  // How long the progress thread sleeps between polls of CUDA events and NCCL state
  // while GPU work is outstanding (when idle it sleeps in poll() on its sockets).
  // Default 20 us.
  std::chrono::microseconds gpu_poll_interval{20};

  // A message announced larger than this by a peer fails the pair (kInvalidArgument);
  // bounds what a confused peer makes us allocate. Default 1 GiB.
  size_t max_message_bytes = size_t{1} << 30;
};

// DataPlaneInterface over one two-rank NCCL communicator per connected peer.
// Ownership: the data plane owns its threads, sockets, communicators, streams and
// device buffers; a Payload is held until its bytes have been copied to the device.
// The destructor completes queued and in-flight sends with kUnavailable, has every
// communicator aborted, releases the rest and joins both threads.
class NcclDataPlane final : public DataPlaneInterface {
 public:
  // Binds the control port and starts the threads. kInvalidArgument for bad options
  // (no such device, a host that is not an IPv4 literal), kUnavailable when the
  // device or the port cannot be set up.
  static absl::StatusOr<std::unique_ptr<NcclDataPlane>> Create(const NcclOptions& options,
                                                               PeerId self,
                                                               DataPlaneHandlers handlers);

  // Must not be called from a handler (it joins the progress thread).
  ~NcclDataPlane() override;

  NcclDataPlane(const NcclDataPlane&) = delete;
  NcclDataPlane& operator=(const NcclDataPlane&) = delete;

  PeerId self() const override;
  // Allowed until the first Connect or Send, then kFailedPrecondition for another id
  // (the id decides the rank of every pair).
  absl::Status SetSelf(PeerId id) override;
  // "nccl:host:port/device" (nccl_address.h).
  std::string LocalAddress() const override;

  // Parses and resolves `address` on the caller's thread (kInvalidArgument: malformed,
  // the peer is this endpoint, or it names this endpoint's own GPU; kUnavailable: the
  // host does not resolve), then sets the pair up asynchronously; a setup failure is
  // reported through on_peer_error. Idempotent for the same address; a different
  // address replaces the pair.
  absl::Status Connect(PeerId peer, const std::string& address) override;
  void Disconnect(PeerId peer) override;
  void Send(PeerId peer, Payload message, SendDone done) override;

  // Sends `bytes` bytes at `device_bytes` (memory on options.device, complete before
  // this call, i.e. its producing stream synchronized, and left unchanged until `done`
  // runs) without the host round trip. Same ordering, completion and errors as Send;
  // the receiver gets it through on_receive like any message.
  void SendDevice(PeerId peer, const void* device_bytes, size_t bytes, SendDone done);

 private:
  class Impl;
  explicit NcclDataPlane(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace yard::transport

#endif  // SWITCHYARD_TRANSPORT_NCCL_NCCL_DATA_PLANE_H_
