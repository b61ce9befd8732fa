// The routed experts of an attention worker's MoE layers, computed on expert workers
// over the data plane (DESIGN.md "One decode step"):
//   Start: pick one replica per (token, expert) — an expert's rows take its live
//          replicas in turn, continuing across steps (at batch 1 too), so its load
//          spreads evenly — and send one dispatch per expert worker (activations in
//          BF16, FP8 + per-128 scales, or FP32);
//   Finish: wait until every row has an answer and place each unweighted output row
//          back at its (token, top-k) position.
// The outputs do not depend on which replica served a row or how the expert workers
// batched it, so the caller's fixed-order sum gives the same bits as a single process
// whose experts saw the same rounded inputs (FastModelOptions::dispatch_precision).
//
// Failures (DESIGN.md "Failure model") are absorbed inside Finish: the rows of a
// dispatch whose worker is lost (peer error, failed send) or answered garbage are
// re-sent to another live replica; a dispatch not answered within `resend_after` is
// sent again to another replica too (the first answer for a row wins); rows whose
// expert has no live replica wait for a newer placement (OfferRouting: the coordinator
// reloads the expert elsewhere) and are sent by it. Only when `timeout` passes with rows
// unanswered does the step fail. Each dispatch has its own step id, which its combine
// echoes, so a late or repeated answer is recognised and dropped.
//
// Threading: Start, Finish and SetRouting run on the engine's thread; OnCombine,
// OnPeerError and OfferRouting on other threads (data plane, placement watch), which
// only hand things over under a mutex. Up to two requests are in flight, one per
// micro-batch (ping-pong).
//
// Per micro-batch:
//   idle ─Start─▶ waiting (combines arrive; lost rows re-sent) ─all rows answered /
//   timeout / malformed beyond repair─▶ Finish returns ─▶ idle
#ifndef SWITCHYARD_ATTENTION_WORKER_REMOTE_EXPERT_BACKEND_H_
#define SWITCHYARD_ATTENTION_WORKER_REMOTE_EXPERT_BACKEND_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "attention_worker/expert_load.h"
#include "attention_worker/expert_routing.h"
#include "engine/expert_backend.h"
#include "transport/data_plane.h"
#include "transport/wire_format.h"

namespace yard::attention_worker {

struct RemoteExpertOptions {
  int64_t hidden = 0;
  // The model's routed experts, for the load counts (0: no counting).
  int64_t num_experts = 0;
  // Activations on the wire: kBF16, kFP8E4M3 or kFP32.
  transport::WireDType dispatch_dtype = transport::WireDType::kBF16;
  // Rows without an answer this long after Start fail the step (DeadlineExceeded).
  std::chrono::milliseconds timeout{30000};
  // A dispatch not answered within this is sent again to another live replica of its
  // experts, if there is one (a slow or silent peer cannot stall a layer).
  std::chrono::milliseconds resend_after{10000};
};

struct RemoteExpertStats {
  uint64_t dispatches = 0;
  uint64_t rows = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t stale_combines = 0;  // for a step no longer awaited, dropped
  uint64_t resent_rows = 0;     // sent again after a loss, garbage or a deadline
};

class RemoteExpertBackend : public engine::ExpertBackendInterface {
 public:
  // Route the data plane's receive handler to OnCombine and its peer-error handler to
  // OnPeerError; its handlers and send completions call into the backend, so destroy
  // the data plane first (and use the backend only while the data plane exists).
  RemoteExpertBackend(transport::DataPlaneInterface& data_plane,
                      const RemoteExpertOptions& options);

  // Installs the placement to route by (takes effect at the next Start).
  void SetRouting(std::shared_ptr<const ExpertRouting> routing);
  // Any thread: each placement as it arrives (before SetRouting installs it), for
  // re-sending the rows of a step in flight whose experts lost every replica. The
  // latest arrival wins, whatever its version (a restarted coordinator starts anew).
  void OfferRouting(std::shared_ptr<const ExpertRouting> routing);
  // Any thread: `peer` is connected (again) and may be routed to.
  void OnPeerConnected(transport::PeerId peer);

  absl::Status Start(const engine::ExpertRequest& request) override;
  absl::Status Finish(int micro_batch, float* out) override;

  // Data-plane thread.
  void OnCombine(transport::PeerId from, std::vector<uint8_t> message);
  void OnPeerError(transport::PeerId peer, absl::Status why);

  RemoteExpertStats stats() const;
  // Routed rows per (layer, expert) and per physical slot since the last call (any
  // thread; see ExpertLoadCounter).
  std::vector<cluster::LoadReport> TakeLoad(uint32_t worker_id) { return load_.Take(worker_id); }

 private:
  using Clock = std::chrono::steady_clock;

  // One dispatch of a request: to one worker, the request's rows `rows` (ascending).
  struct Dispatch {
    transport::PeerId worker = 0;
    std::vector<uint32_t> rows;
    Clock::time_point resend_at;
    bool lost = false;     // its rows are to be sent elsewhere
    bool resent = false;   // sent elsewhere after resend_after (still accepted)
    bool abandoned = false;  // lost and its rows taken for re-sending
    std::vector<uint8_t> bytes;  // the combine (empty until it arrives)
    transport::DecodedMessage combine;  // views into bytes
  };

  // One micro-batch's request in flight (the engine thread writes it at Start and
  // Finish; the other threads fill dispatches and mark losses under mu_).
  struct InFlight {
    bool active = false;
    engine::ExpertRequest request;  // x and expert_ids stay valid until Finish
    int64_t rows = 0;
    int64_t answered = 0;              // rows with an answer
    std::vector<uint32_t> answered_by;  // per row: 0, or 1 + index in `order`
    std::map<uint64_t, Dispatch> dispatches;  // by step id
    std::vector<uint64_t> order;              // step ids of the combines taken
    std::vector<uint32_t> orphans;            // rows with no live replica yet
    std::shared_ptr<const ExpertRouting> orphans_tried;  // the routing they last failed with
    uint64_t orphans_tried_connects = 0;                 // and connects_ then
    std::set<transport::PeerId> avoid;        // workers late for this request
    absl::Status cause;                       // why rows had to be re-sent (last)
    absl::Status failure;                     // beyond repair
    Clock::time_point deadline;
  };

  // The (slot, row) routes per worker for `rows` of `f` under `routing`, skipping dead
  // peers and f.avoid; rows without such a replica come back in `orphans`. Engine
  // thread, under mu_.
  std::map<transport::PeerId, std::vector<transport::TokenRoute>> Assign(
      const ExpertRouting& routing, InFlight& f, const std::vector<uint32_t>& rows,
      std::vector<uint32_t>& orphans);
  // Registers and sends one dispatch per worker of `by_worker` (unlocks mu_ to send).
  void SendDispatches(int micro_batch, const ExpertRouting& routing,
                      std::map<transport::PeerId, std::vector<transport::TokenRoute>> by_worker,
                      std::unique_lock<std::mutex>& lock);
  // Marks `peer`'s unanswered dispatches of every request lost (under mu_).
  void LosePeer(transport::PeerId peer, const absl::Status& why);
  // The rows of f to send again now (lost, late, or orphans with a newer routing), and
  // the routing to send them by. Engine thread, under mu_.
  std::vector<uint32_t> TakeRowsToResend(InFlight& f, Clock::time_point now,
                                         std::shared_ptr<const ExpertRouting>& by);
  absl::Status CopyOut(InFlight& f, float* out);
  void EndRequest(InFlight& f);

  transport::DataPlaneInterface& data_plane_;
  const RemoteExpertOptions options_;
  std::shared_ptr<const ExpertRouting> routing_;  // engine thread
  ExpertLoadCounter load_;
  // (layer, expert) → how many rows it has sent under routing_ (engine thread).
  absl::flat_hash_map<std::pair<int64_t, int32_t>, uint64_t> next_replica_;

  mutable std::mutex mu_;
  std::condition_variable arrived_;
  uint64_t next_step_id_ = 0;  // unique per dispatch, across micro-batches
  InFlight in_flight_[engine::kMaxMicroBatches];
  std::set<transport::PeerId> dead_;                // lost peers, until reconnected
  uint64_t connects_ = 0;  // OnPeerConnected calls: orphans are retried after one
  std::set<transport::PeerId> to_disconnect_;       // sent garbage; closed by the engine thread
  std::shared_ptr<const ExpertRouting> offered_;  // latest placement to arrive
  RemoteExpertStats stats_;

  // Engine thread scratch.
  std::vector<float> gathered_;
  std::vector<float> values_;
};

}  // namespace yard::attention_worker

#endif  // SWITCHYARD_ATTENTION_WORKER_REMOTE_EXPERT_BACKEND_H_
