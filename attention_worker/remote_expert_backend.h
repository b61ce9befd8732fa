// The routed experts of an attention worker's MoE layers, computed on expert workers
// over the data plane (DESIGN.md "One decode step"):
//   Start: pick one replica per (token, expert) — an expert's rows take its R replicas
//          in turn, continuing across steps (at batch 1 too), so its load spreads
//          evenly — and send one dispatch
//          per expert worker (activations in BF16, FP8 + per-128 scales, or FP32);
//   Finish: wait for every worker's combine and place each unweighted output row back
//          at its (token, top-k) position.
// The outputs do not depend on which replica served a row or how the expert workers
// batched it, so the caller's fixed-order sum gives the same bits as a single process
// whose experts saw the same rounded inputs (FastModelOptions::dispatch_precision).
//
// Threading: Start, Finish and SetRouting run on the engine's thread; OnCombine and
// OnPeerError on the data plane's thread, which only hands bytes over under a mutex.
// Up to two requests are in flight, one per micro-batch (ping-pong); a combine finds
// its request by the micro-batch and step id it echoes.
//
// Per micro-batch:
//   idle ─Start─▶ waiting (combines arrive) ─all arrived / failed / deadline─▶ Finish ─▶ idle
#ifndef SWITCHYARD_ATTENTION_WORKER_REMOTE_EXPERT_BACKEND_H_
#define SWITCHYARD_ATTENTION_WORKER_REMOTE_EXPERT_BACKEND_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
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
  // A combine not back within this fails the step (DeadlineExceeded).
  std::chrono::milliseconds timeout{30000};
};

struct RemoteExpertStats {
  uint64_t dispatches = 0;
  uint64_t rows = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t stale_combines = 0;  // for a step no longer awaited, dropped
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
  struct Received {
    std::vector<uint8_t> bytes;
    transport::DecodedMessage message;  // views into bytes
  };

  transport::DataPlaneInterface& data_plane_;
  const RemoteExpertOptions options_;
  std::shared_ptr<const ExpertRouting> routing_;  // engine thread
  ExpertLoadCounter load_;
  // (layer, expert) → how many rows it has sent under routing_ (engine thread).
  absl::flat_hash_map<std::pair<int64_t, int32_t>, uint64_t> next_replica_;

  // One micro-batch's request in flight (the engine thread writes it at Start; the
  // data plane thread fills `received` under mu_).
  struct InFlight {
    bool active = false;
    uint64_t step_id = 0;
    int64_t layer = 0;
    int64_t rows = 0;
    std::map<transport::PeerId, std::unique_ptr<Received>> received;  // expected → combine
    absl::Status failure;
  };

  mutable std::mutex mu_;
  std::condition_variable arrived_;
  uint64_t next_step_id_ = 0;  // unique per Start, across micro-batches
  InFlight in_flight_[engine::kMaxMicroBatches];
  RemoteExpertStats stats_;

  // Engine thread scratch.
  std::vector<float> gathered_;
  std::vector<float> values_;
};

}  // namespace yard::attention_worker

#endif  // SWITCHYARD_ATTENTION_WORKER_REMOTE_EXPERT_BACKEND_H_
