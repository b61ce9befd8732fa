#include "attention_worker/remote_expert_backend.h"

#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace yard::attention_worker {

using transport::PeerId;

RemoteExpertBackend::RemoteExpertBackend(transport::DataPlaneInterface& data_plane,
                                         const RemoteExpertOptions& options)
    : data_plane_(data_plane), options_(options) {}

void RemoteExpertBackend::SetRouting(std::shared_ptr<const ExpertRouting> routing) {
  routing_ = std::move(routing);
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
  absl::flat_hash_map<int32_t, int64_t> seen_of_expert;
  for (int64_t i = 0; i < total; ++i) {
    const int32_t e = r.expert_ids[i];
    const std::vector<Replica>& replicas = routing.replicas(r.layer, e);
    if (replicas.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", r.layer, " expert ", e, " has no replica"));
    }
    const Replica& pick = replicas[seen_of_expert[e]++ % replicas.size()];
    Outgoing& out = by_worker[pick.worker];
    out.routes.push_back({pick.slot, static_cast<uint32_t>(i)});
    out.source_tokens.push_back(i / r.top_k);
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_) return absl::FailedPreconditionError("Start while a request is in flight");
    in_flight_ = true;
    ++step_id_;
    layer_ = r.layer;
    rows_ = total;
    received_.clear();
    for (const auto& [worker, unused] : by_worker) received_[worker] = nullptr;
    failure_ = absl::OkStatus();
  }

  transport::MessageHeader header;
  header.kind = transport::MessageKind::kDispatch;
  header.placement_version = routing.version();
  header.step_id = step_id_;
  header.layer = static_cast<uint32_t>(r.layer);
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
    const uint64_t step = step_id_;
    const PeerId to = worker;
    data_plane_.Send(worker, std::move(message), [this, step, to](absl::Status s) {
      if (s.ok()) return;
      std::lock_guard<std::mutex> lock(mu_);
      if (in_flight_ && step == step_id_ && failure_.ok()) {
        failure_ = absl::UnavailableError(
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
  std::lock_guard<std::mutex> lock(mu_);
  stats_.bytes_received += received->bytes.size();
  auto it = received_.find(from);
  if (!in_flight_ || it == received_.end() || it->second != nullptr) {
    ++stats_.stale_combines;
    return;
  }
  transport::DecodeLimits limits;
  limits.expected_hidden = static_cast<uint32_t>(options_.hidden);
  limits.token_index_bound = static_cast<uint32_t>(rows_);
  absl::StatusOr<transport::DecodedMessage> decoded =
      transport::Decode(received->bytes, limits);
  if (decoded.ok() && decoded->header.step_id != step_id_) {
    ++stats_.stale_combines;  // an answer to an earlier, failed step
    return;
  }
  if (!decoded.ok() || decoded->header.kind != transport::MessageKind::kCombine ||
      decoded->header.layer != static_cast<uint32_t>(layer_)) {
    if (failure_.ok()) {
      failure_ = absl::DataLossError(absl::StrCat(
          "malformed combine from expert worker ", from, ": ",
          decoded.ok() ? std::string("wrong kind or layer") : std::string(decoded.status().message())));
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
  auto it = received_.find(peer);
  if (in_flight_ && it != received_.end() && it->second == nullptr && failure_.ok()) {
    failure_ = absl::UnavailableError(
        absl::StrCat("expert worker ", peer, " lost: ", why.message()));
    arrived_.notify_all();
  }
}

absl::Status RemoteExpertBackend::Finish(float* out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!in_flight_) return absl::FailedPreconditionError("Finish without Start");
  auto all_arrived = [this] {
    for (const auto& [worker, r] : received_) {
      if (r == nullptr) return false;
    }
    return true;
  };
  const bool done = arrived_.wait_for(lock, options_.timeout, [&] {
    return !failure_.ok() || all_arrived();
  });
  in_flight_ = false;
  if (!failure_.ok()) return failure_;
  if (!done) {
    std::string missing;
    for (const auto& [worker, r] : received_) {
      if (r == nullptr) absl::StrAppend(&missing, missing.empty() ? "" : ", ", worker);
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "layer ", layer_, " step ", step_id_, ": no combine from expert worker(s) ", missing,
        " within ", options_.timeout.count(), " ms"));
  }
  std::map<PeerId, std::unique_ptr<Received>> received = std::move(received_);
  received_.clear();
  const int64_t rows = rows_;
  lock.unlock();

  const int64_t hidden = options_.hidden;
  std::vector<uint8_t> filled(rows, 0);
  for (const auto& [worker, r] : received) {
    const transport::DecodedMessage& m = r->message;
    values_.resize(static_cast<size_t>(m.header.token_count) * hidden);
    m.ValuesToF32(absl::MakeSpan(values_));
    for (uint32_t i = 0; i < m.header.token_count; ++i) {
      const uint32_t row = m.route(i).token_index;
      if (filled[row]++) {
        return absl::DataLossError(absl::StrCat("expert worker ", worker, " answered row ", row,
                                                " twice"));
      }
      std::memcpy(out + row * hidden, &values_[i * hidden], hidden * sizeof(float));
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (!filled[i]) {
      return absl::DataLossError(absl::StrCat("no expert output for row ", i, " of layer ",
                                              layer_));
    }
  }
  return absl::OkStatus();
}

RemoteExpertStats RemoteExpertBackend::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace yard::attention_worker
