#include "attention_worker/remote_expert_backend.h"

#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace yard::attention_worker {

using transport::PeerId;

RemoteExpertBackend::RemoteExpertBackend(transport::DataPlaneInterface& data_plane,
                                         const RemoteExpertOptions& options)
    : data_plane_(data_plane), options_(options), load_(options.num_experts) {}

void RemoteExpertBackend::SetRouting(std::shared_ptr<const ExpertRouting> routing) {
  routing_ = std::move(routing);
  next_replica_.clear();
  if (routing_ != nullptr) load_.Install(*routing_);
}

absl::Status RemoteExpertBackend::Start(const engine::ExpertRequest& r) {
  if (routing_ == nullptr) {
    return absl::FailedPreconditionError("no expert placement received yet");
  }
  if (r.hidden != options_.hidden) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden size ", r.hidden, ", the backend was set up for ", options_.hidden));
  }
  const ExpertRouting& routing = *routing_;
  const int64_t total = r.tokens * r.top_k;

  struct Outgoing {
    std::vector<transport::TokenRoute> routes;
    std::vector<int64_t> source_tokens;
  };
  std::map<PeerId, Outgoing> by_worker;
  for (int64_t i = 0; i < total; ++i) {
    const int32_t e = r.expert_ids[i];
    const std::vector<Replica>& replicas = routing.replicas(r.layer, e);
    if (replicas.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", r.layer, " expert ", e, " has no replica"));
    }
    const Replica& pick = replicas[next_replica_[{r.layer, e}]++ % replicas.size()];
    load_.Count(r.layer, e, pick);
    Outgoing& out = by_worker[pick.worker];
    out.routes.push_back({pick.slot, static_cast<uint32_t>(i)});
    out.source_tokens.push_back(i / r.top_k);
  }

  if (r.micro_batch < 0 || r.micro_batch >= engine::kMaxMicroBatches) {
    return absl::InvalidArgumentError(absl::StrCat("micro-batch ", r.micro_batch));
  }
  uint64_t step_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    InFlight& f = in_flight_[r.micro_batch];
    if (f.active) {
      return absl::FailedPreconditionError("Start while the micro-batch is in flight");
    }
    f.active = true;
    f.step_id = step_id = ++next_step_id_;
    f.layer = r.layer;
    f.rows = total;
    f.received.clear();
    for (const auto& [worker, unused] : by_worker) f.received[worker] = nullptr;
    f.failure = absl::OkStatus();
  }

  transport::MessageHeader header;
  header.kind = transport::MessageKind::kDispatch;
  header.placement_version = routing.version();
  header.step_id = step_id;
  header.layer = static_cast<uint32_t>(r.layer);
  header.micro_batch = static_cast<uint32_t>(r.micro_batch);
  header.sender = data_plane_.self();
  header.hidden = static_cast<uint32_t>(r.hidden);
  header.dtype = options_.dispatch_dtype;
  uint64_t bytes_sent = 0;
  for (auto& [worker, out] : by_worker) {
    const int64_t n = static_cast<int64_t>(out.routes.size());
    gathered_.resize(n * r.hidden);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&gathered_[i * r.hidden], r.x + out.source_tokens[i] * r.hidden,
                  r.hidden * sizeof(float));
    }
    header.token_count = static_cast<uint32_t>(n);
    auto message = std::make_shared<const std::vector<uint8_t>>(
        transport::EncodeDispatch(header, out.routes, gathered_));
    bytes_sent += message->size();
    const PeerId to = worker;
    const int mb = r.micro_batch;
    data_plane_.Send(worker, std::move(message), [this, step_id, mb, to](absl::Status s) {
      if (s.ok()) return;
      std::lock_guard<std::mutex> lock(mu_);
      InFlight& f = in_flight_[mb];
      if (f.active && f.step_id == step_id && f.failure.ok()) {
        f.failure = absl::UnavailableError(
            absl::StrCat("dispatch to expert worker ", to, " failed: ", s.message()));
        arrived_.notify_all();
      }
    });
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.dispatches += by_worker.size();
  stats_.rows += total;
  stats_.bytes_sent += bytes_sent;
  return absl::OkStatus();
}

void RemoteExpertBackend::OnCombine(PeerId from, std::vector<uint8_t> message) {
  auto received = std::make_unique<Received>();
  received->bytes = std::move(message);
  // The header alone names the micro-batch and step; everything is checked below.
  transport::DecodeLimits limits;
  limits.expected_hidden = static_cast<uint32_t>(options_.hidden);
  absl::StatusOr<transport::DecodedMessage> decoded = transport::Decode(received->bytes, limits);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.bytes_received += received->bytes.size();
  if (!decoded.ok() || decoded->header.micro_batch >= engine::kMaxMicroBatches) {
    // Which request it answers is unknown: fail whatever awaits this worker.
    for (InFlight& f : in_flight_) {
      auto it = f.received.find(from);
      if (f.active && it != f.received.end() && it->second == nullptr && f.failure.ok()) {
        f.failure = absl::DataLossError(absl::StrCat(
            "malformed combine from expert worker ", from, ": ",
            decoded.ok() ? std::string("micro-batch out of range")
                         : std::string(decoded.status().message())));
      }
    }
    arrived_.notify_all();
    return;
  }
  InFlight& f = in_flight_[decoded->header.micro_batch];
  auto it = f.received.find(from);
  if (!f.active || decoded->header.step_id != f.step_id || it == f.received.end() ||
      it->second != nullptr) {
    ++stats_.stale_combines;  // an answer to an earlier, failed step, or a repeat
    return;
  }
  if (decoded->header.kind != transport::MessageKind::kCombine ||
      decoded->header.layer != static_cast<uint32_t>(f.layer)) {
    if (f.failure.ok()) {
      f.failure = absl::DataLossError(absl::StrCat("combine from expert worker ", from,
                                                   ": wrong kind or layer"));
    }
    arrived_.notify_all();
    return;
  }
  received->message = *std::move(decoded);
  it->second = std::move(received);
  arrived_.notify_all();
}

void RemoteExpertBackend::OnPeerError(PeerId peer, absl::Status why) {
  std::lock_guard<std::mutex> lock(mu_);
  for (InFlight& f : in_flight_) {
    auto it = f.received.find(peer);
    if (f.active && it != f.received.end() && it->second == nullptr && f.failure.ok()) {
      f.failure =
          absl::UnavailableError(absl::StrCat("expert worker ", peer, " lost: ", why.message()));
    }
  }
  arrived_.notify_all();
}

absl::Status RemoteExpertBackend::Finish(int micro_batch, float* out) {
  if (micro_batch < 0 || micro_batch >= engine::kMaxMicroBatches) {
    return absl::InvalidArgumentError(absl::StrCat("micro-batch ", micro_batch));
  }
  std::unique_lock<std::mutex> lock(mu_);
  InFlight& f = in_flight_[micro_batch];
  if (!f.active) return absl::FailedPreconditionError("Finish without Start");
  auto all_arrived = [&f] {
    for (const auto& [worker, r] : f.received) {
      if (r == nullptr) return false;
    }
    return true;
  };
  const bool done = arrived_.wait_for(lock, options_.timeout, [&] {
    return !f.failure.ok() || all_arrived();
  });
  f.active = false;
  if (!f.failure.ok()) return f.failure;
  if (!done) {
    std::string missing;
    for (const auto& [worker, r] : f.received) {
      if (r == nullptr) absl::StrAppend(&missing, missing.empty() ? "" : ", ", worker);
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "layer ", f.layer, " step ", f.step_id, ": no combine from expert worker(s) ", missing,
        " within ", options_.timeout.count(), " ms"));
  }
  std::map<PeerId, std::unique_ptr<Received>> received = std::move(f.received);
  f.received.clear();
  // However this ends, the combines' buffers go back to the data plane for reuse.
  absl::Cleanup recycle = [&] {
    for (auto& [worker, r] : received) data_plane_.Recycle(std::move(r->bytes));
  };
  const int64_t rows = f.rows;
  const int64_t layer = f.layer;
  lock.unlock();

  const int64_t hidden = options_.hidden;
  std::vector<uint8_t> filled(rows, 0);
  for (const auto& [worker, r] : received) {
    const transport::DecodedMessage& m = r->message;
    values_.resize(static_cast<size_t>(m.header.token_count) * hidden);
    m.ValuesToF32(absl::MakeSpan(values_));
    for (uint32_t i = 0; i < m.header.token_count; ++i) {
      const uint32_t row = m.route(i).token_index;
      if (row >= rows || filled[row]++) {
        return absl::DataLossError(absl::StrCat("expert worker ", worker, " answered row ", row,
                                                row >= rows ? " (out of range)" : " twice"));
      }
      std::memcpy(out + row * hidden, &values_[i * hidden], hidden * sizeof(float));
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (!filled[i]) {
      return absl::DataLossError(absl::StrCat("no expert output for row ", i, " of layer ",
                                              layer));
    }
  }
  return absl::OkStatus();
}

RemoteExpertStats RemoteExpertBackend::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace yard::attention_worker
