// An expert worker's data-plane side: dispatches arrive from attention workers, the
// experts of their slots run grouped (GroupedSwiGlu), and one combine answers each
// dispatch with the UNWEIGHTED outputs in the order received (DESIGN.md).
//
// Threading: one compute thread owns the slots and the scratch. OnDispatch (called on
// the data plane's thread) and the slot calls (gRPC threads) only queue work for it.
// Whatever has arrived when the thread wakes is computed together, layer by layer:
// a straggler is never waited for. Every dispatch is validated (format, hidden size,
// slot ids, slot holds an expert of the message's layer); a bad one is dropped and
// counted — the sender's deadline re-routes it — and never crashes the worker. The
// sender of a message that does not even decode as a dispatch (wrong version or
// sizes, slots beyond the capacity, a combine) is broken or hostile: it is
// disconnected and all it sends afterwards is dropped unread. A dispatch that decodes
// but names a slot not holding its layer's expert, or the wrong dtype, is only dropped.
//
//   OnDispatch ─▶ inbox ─▶ [compute thread] decode → group by layer → experts → combine ─▶ Send
//   LoadSlots (pages prefetched on the caller's thread) / ReleaseSlots ─▶ control queue
//     ─▶ [compute thread] between batches
#ifndef SWITCHYARD_EXPERT_WORKER_EXPERT_SERVER_H_
#define SWITCHYARD_EXPERT_WORKER_EXPERT_SERVER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "engine/grouped_experts.h"
#include "engine/model_weights.h"
#include "expert_worker/expert_slots.h"
#include "kernels/cpu/gemm.h"
#include "transport/data_plane.h"
#include "transport/wire_format.h"

namespace yard::expert_worker {

struct ExpertServerOptions {
  // The model's hidden size; dispatches of another width are rejected.
  uint32_t hidden = 0;
  // Slots this worker can hold.
  uint32_t capacity = 0;
  // How the expert matmuls take activations: engine::GemmOptionsFor(the attention
  // workers' FastModelOptions) so that results match a single process bit for bit.
  kernels::cpu::GemmOptions gemm;
  // Tokens per dispatch at most.
  uint32_t max_tokens = 1 << 16;
  // Dispatches waiting at most; beyond it new ones are dropped (and counted) rather
  // than growing memory without bound.
  size_t max_queued = 4096;
  // Combines carry FP32 (exact) or BF16 outputs.
  transport::WireDType combine_dtype = transport::WireDType::kFP32;
  // The dispatch dtype the cluster runs with; a dispatch in another one means a
  // misconfigured attention worker and is rejected. nullopt accepts any.
  std::optional<transport::WireDType> dispatch_dtype;
};

struct ExpertServerStats {
  uint64_t dispatches = 0;      // answered
  uint64_t tokens = 0;          // rows computed
  uint64_t batches = 0;         // compute passes
  uint64_t rejected = 0;        // malformed or misrouted, or from a distrusted peer: dropped
  uint64_t distrusted = 0;      // peers disconnected for sending a malformed message
  uint64_t overflowed = 0;      // dropped because the inbox was full
  uint64_t send_failures = 0;   // combines the data plane could not send
};

class ExpertServer {
 public:
  // `views` must outlive the server. The data plane is attached after construction
  // (it needs OnDispatch as its receive handler); detach it (AttachDataPlane(nullptr))
  // before destroying it.
  ExpertServer(const engine::ModelViews& views, const ExpertServerOptions& options);
  ~ExpertServer();  // stops the compute thread; queued dispatches are dropped
  ExpertServer(const ExpertServer&) = delete;
  ExpertServer& operator=(const ExpertServer&) = delete;

  // Waits for the batch in progress: after it returns, the previous plane is unused.
  void AttachDataPlane(transport::DataPlaneInterface* data_plane);

  // Data-plane receive handler. Any thread; never blocks on compute.
  void OnDispatch(transport::PeerId from, std::vector<uint8_t> message);

  struct SlotLoad {
    uint32_t slot = 0;
    uint32_t layer = 0;
    uint32_t logical_expert = 0;
  };
  // Loads (pages in) or releases slots on the compute thread, between batches; blocks
  // the caller until done. The first error stops the list and is returned.
  // `release_others`: first free every slot that `loads` does not name with the same
  // contents (a coordinator's first placement: what the slots held before is not
  // part of it).
  absl::Status LoadSlots(const std::vector<SlotLoad>& loads, bool release_others = false);
  absl::Status ReleaseSlots(const std::vector<uint32_t>& slots);
  uint32_t SlotsUsed();
  // Every slot that holds an expert, ascending (a re-registration reports them, so
  // that a restarted coordinator can take the placement over as it is).
  std::vector<SlotLoad> LoadedSlots();

  ExpertServerStats stats() const;

 private:
  struct Incoming {
    transport::PeerId from;
    std::vector<uint8_t> bytes;
  };

  void Loop();
  // Runs `task` on the compute thread and waits for it.
  void RunOnComputeThread(std::function<void()> task);
  void ComputeBatch(std::vector<Incoming>& batch);

  const engine::ModelViews& views_;
  const ExpertServerOptions options_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Incoming> inbox_;
  std::deque<std::function<void()>> control_;
  bool stopping_ = false;

  // Compute thread only.
  transport::DataPlaneInterface* data_plane_ = nullptr;
  ExpertSlots slots_;
  absl::flat_hash_set<transport::PeerId> distrusted_;
  engine::GroupedSwiGlu experts_;

  mutable std::mutex stats_mu_;
  ExpertServerStats stats_;

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace yard::expert_worker

#endif  // SWITCHYARD_EXPERT_WORKER_EXPERT_SERVER_H_
