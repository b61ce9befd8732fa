#include "expert_worker/expert_server.h"

#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace yard::expert_worker {

using transport::DecodedMessage;
using transport::TokenRoute;

ExpertServer::ExpertServer(const engine::ModelViews& views, const ExpertServerOptions& options)
    : views_(views),
      options_(options),
      slots_(views, options.capacity),
      experts_(options.gemm),
      thread_([this] { Loop(); }) {}

ExpertServer::~ExpertServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ExpertServer::AttachDataPlane(transport::DataPlaneInterface* data_plane) {
  // On the compute thread, between batches: once this returns, no batch uses the old plane.
  RunOnComputeThread([&] { data_plane_ = data_plane; });
}

void ExpertServer::OnDispatch(transport::PeerId from, std::vector<uint8_t> message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (inbox_.size() >= options_.max_queued) {
      std::lock_guard<std::mutex> stats_lock(stats_mu_);
      ++stats_.overflowed;
      return;
    }
    inbox_.push_back(Incoming{from, std::move(message)});
  }
  wake_.notify_one();
}

void ExpertServer::RunOnComputeThread(std::function<void()> task) {
  std::promise<void> done;
  std::future<void> finished = done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    control_.push_back([&task, &done] {
      task();
      done.set_value();
    });
  }
  wake_.notify_one();
  finished.wait();
}

absl::Status ExpertServer::LoadSlots(const std::vector<SlotLoad>& loads, bool release_others) {
  // The weights' pages are read here, on the caller's thread; the compute thread then
  // only installs pointers between two batches, so no step waits on the loading.
  for (const SlotLoad& l : loads) {
    if (absl::Status s = slots_.Prefetch(l.layer, l.logical_expert); !s.ok()) return s;
  }
  absl::Status status;
  RunOnComputeThread([&] {
    if (release_others) {
      std::vector<bool> keep(slots_.capacity());
      for (const SlotLoad& l : loads) {
        const std::optional<SlotContents> held = slots_.Find(l.slot);
        if (held && held->layer == l.layer && held->logical_expert == l.logical_expert) {
          keep[l.slot] = true;
        }
      }
      for (uint32_t s = 0; s < slots_.capacity(); ++s) {
        if (!keep[s]) slots_.Release(s).IgnoreError();  // in range: cannot fail
      }
    }
    for (const SlotLoad& l : loads) {
      status = slots_.Load(l.slot, l.layer, l.logical_expert);
      if (!status.ok()) return;
    }
  });
  return status;
}

absl::Status ExpertServer::ReleaseSlots(const std::vector<uint32_t>& slots) {
  absl::Status status;
  RunOnComputeThread([&] {
    for (uint32_t s : slots) {
      status = slots_.Release(s);
      if (!status.ok()) return;
    }
  });
  return status;
}

std::vector<ExpertServer::SlotLoad> ExpertServer::LoadedSlots() {
  std::vector<SlotLoad> loaded;
  RunOnComputeThread([&] {
    for (uint32_t s = 0; s < slots_.capacity(); ++s) {
      if (const std::optional<SlotContents> held = slots_.Find(s)) {
        loaded.push_back({s, held->layer, held->logical_expert});
      }
    }
  });
  return loaded;
}

uint32_t ExpertServer::SlotsUsed() {
  uint32_t used = 0;
  RunOnComputeThread([&] { used = slots_.used(); });
  return used;
}

ExpertServerStats ExpertServer::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

void ExpertServer::Loop() {
  while (true) {
    std::vector<Incoming> batch;
    std::deque<std::function<void()>> control;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !inbox_.empty() || !control_.empty(); });
      if (stopping_) {
        // Nobody waits on dropped dispatches; a blocked slot call must still return.
        for (auto& task : control_) task();
        return;
      }
      control.swap(control_);
      batch.reserve(inbox_.size());
      for (Incoming& in : inbox_) batch.push_back(std::move(in));
      inbox_.clear();
    }
    for (auto& task : control) task();
    if (!batch.empty()) ComputeBatch(batch);
  }
}

void ExpertServer::ComputeBatch(std::vector<Incoming>& batch) {
  transport::DecodeLimits limits;
  limits.max_tokens = options_.max_tokens;
  limits.expected_hidden = options_.hidden;
  limits.num_slots = options_.capacity;
  const int64_t hidden = options_.hidden;

  struct Accepted {
    const Incoming* in;
    DecodedMessage message;
    std::vector<float> x;      // [tokens, hidden]
    int64_t first_row = 0;     // in the layer's rows
  };
  std::vector<Accepted> accepted;
  uint64_t rejected = 0, distrusted = 0;
  for (const Incoming& in : batch) {
    if (distrusted_.contains(in.from)) {
      ++rejected;
      continue;
    }
    absl::StatusOr<DecodedMessage> m = transport::Decode(in.bytes, limits);
    std::optional<absl::Status> problem;
    bool malformed = false;
    if (!m.ok()) {
      problem = m.status();
      malformed = true;
    } else if (m->header.kind != transport::MessageKind::kDispatch) {
      problem = absl::InvalidArgumentError("expected a dispatch, got a combine");
      malformed = true;
    } else if (options_.dispatch_dtype && m->header.dtype != *options_.dispatch_dtype) {
      problem = absl::InvalidArgumentError(
          std::string("dispatch in ") + transport::WireDTypeName(m->header.dtype) +
          ", this worker expects " + transport::WireDTypeName(*options_.dispatch_dtype));
    } else {
      for (uint32_t i = 0; i < m->header.token_count && !problem; ++i) {
        const TokenRoute r = m->route(i);
        const std::optional<SlotContents> slot = slots_.Find(r.slot);
        if (!slot || slot->layer != m->header.layer) {
          problem = absl::InvalidArgumentError(
              "dispatch names slot " + std::to_string(r.slot) + " for layer " +
              std::to_string(m->header.layer) + ", which that slot does not hold");
        }
      }
    }
    if (problem) {
      ++rejected;
      std::fprintf(stderr, "expert_server: dropped a message from peer %u%s: %s\n", in.from,
                   malformed ? " and disconnected it" : "", std::string(problem->message()).c_str());
      if (malformed) {
        distrusted_.insert(in.from);
        ++distrusted;
        if (data_plane_ != nullptr) data_plane_->Disconnect(in.from);
      }
      continue;
    }
    Accepted a{&in, *std::move(m), {}, 0};
    a.x.resize(static_cast<size_t>(a.message.header.token_count) * hidden);
    a.message.ValuesToF32(absl::MakeSpan(a.x));
    accepted.push_back(std::move(a));
  }

  // Layer by layer: every row of every message for that layer in one grouped pass.
  absl::flat_hash_map<uint32_t, std::vector<Accepted*>> by_layer;
  for (Accepted& a : accepted) by_layer[a.message.header.layer].push_back(&a);
  std::vector<const engine::SwiGluViews*> candidates;
  absl::flat_hash_map<uint32_t, int32_t> candidate_of_slot;
  std::vector<const float*> rows;
  std::vector<int32_t> expert_of_row;
  std::vector<uint8_t> from_prefill;
  std::vector<float> out;
  uint64_t tokens = 0;
  transport::DataPlaneInterface* data_plane = data_plane_;
  uint64_t send_failures = 0;
  for (auto& [layer, messages] : by_layer) {
    candidates.clear();
    candidate_of_slot.clear();
    rows.clear();
    expert_of_row.clear();
    from_prefill.clear();
    for (Accepted* a : messages) {
      a->first_row = static_cast<int64_t>(rows.size());
      for (uint32_t i = 0; i < a->message.header.token_count; ++i) {
        const TokenRoute route = a->message.route(i);
        auto [it, added] =
            candidate_of_slot.try_emplace(route.slot, static_cast<int32_t>(candidates.size()));
        if (added) candidates.push_back(slots_.Find(route.slot)->weights);
        rows.push_back(a->x.data() + i * hidden);
        expert_of_row.push_back(it->second);
        from_prefill.push_back(route.token_index < a->message.header.prefill_rows);
      }
    }
    out.resize(rows.size() * hidden);
    experts_.Run(candidates, rows, expert_of_row, from_prefill, hidden, out.data());
    tokens += rows.size();
    for (Accepted* a : messages) {
      transport::MessageHeader header = a->message.header;
      header.kind = transport::MessageKind::kCombine;
      header.dtype = options_.combine_dtype;
      header.sender = data_plane != nullptr ? data_plane->self() : 0;
      std::vector<TokenRoute> routes(header.token_count);
      for (uint32_t i = 0; i < header.token_count; ++i) routes[i] = a->message.route(i);
      auto combine = std::make_shared<const std::vector<uint8_t>>(transport::EncodeCombine(
          header, routes,
          absl::MakeConstSpan(out.data() + a->first_row * hidden,
                              static_cast<size_t>(header.token_count) * hidden)));
      if (data_plane == nullptr) {
        ++send_failures;
        continue;
      }
      data_plane->Send(a->in->from, std::move(combine), [this](absl::Status s) {
        if (s.ok()) return;
        std::lock_guard<std::mutex> lock(stats_mu_);
        ++stats_.send_failures;
      });
    }
  }
  // The dispatches' bytes are done with (the combines are encoded): back to the plane.
  if (data_plane != nullptr) {
    for (Incoming& in : batch) data_plane->Recycle(std::move(in.bytes));
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.dispatches += accepted.size();
  stats_.tokens += tokens;
  stats_.rejected += rejected;
  stats_.distrusted += distrusted;
  stats_.send_failures += send_failures;
  ++stats_.batches;
}

}  // namespace yard::expert_worker
