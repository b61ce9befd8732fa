#include "attention_worker/remote_expert_backend.h"

#include <algorithm>
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

void RemoteExpertBackend::OfferRouting(std::shared_ptr<const ExpertRouting> routing) {
  std::lock_guard<std::mutex> lock(mu_);
  // The latest arrival, not the highest version: a restarted coordinator numbers its
  // placements afresh.
  offered_ = std::move(routing);
  arrived_.notify_all();
}

void RemoteExpertBackend::OnPeerConnected(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  dead_.erase(peer);
  ++connects_;
  arrived_.notify_all();  // a step's orphans may go there now
}

absl::Status RemoteExpertBackend::Start(const engine::ExpertRequest& r) {
  if (routing_ == nullptr) {
    return absl::FailedPreconditionError("no expert placement received yet");
  }
  if (r.hidden != options_.hidden) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden size ", r.hidden, ", the backend was set up for ", options_.hidden));
  }
  if (r.micro_batch < 0 || r.micro_batch >= engine::kMaxMicroBatches) {
    return absl::InvalidArgumentError(absl::StrCat("micro-batch ", r.micro_batch));
  }
  const int64_t total = r.tokens * r.top_k;
  for (int64_t i = 0; i < total; ++i) {
    if (routing_->replicas(r.layer, r.expert_ids[i]).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", r.layer, " expert ", r.expert_ids[i], " has no replica"));
    }
  }

  std::unique_lock<std::mutex> lock(mu_);
  InFlight& f = in_flight_[r.micro_batch];
  if (f.active) return absl::FailedPreconditionError("Start while the micro-batch is in flight");
  f.active = true;
  f.request = r;
  f.rows = total;
  f.answered = 0;
  f.answered_by.assign(total, 0);
  f.dispatches.clear();
  f.order.clear();
  f.orphans.clear();
  f.avoid.clear();
  f.cause = absl::OkStatus();
  f.failure = absl::OkStatus();
  f.deadline = Clock::now() + options_.timeout;
  std::vector<uint32_t> rows(total);
  for (int64_t i = 0; i < total; ++i) rows[i] = static_cast<uint32_t>(i);
  auto by_worker = Assign(*routing_, f, rows, f.orphans);
  if (!f.orphans.empty()) {
    f.orphans_tried = routing_;
    f.orphans_tried_connects = connects_;
    f.cause = absl::UnavailableError("an expert has no live replica");
  }
  stats_.rows += total;
  SendDispatches(r.micro_batch, *routing_, std::move(by_worker), lock);
  return absl::OkStatus();
}

std::map<PeerId, std::vector<transport::TokenRoute>> RemoteExpertBackend::Assign(
    const ExpertRouting& routing, InFlight& f, const std::vector<uint32_t>& rows,
    std::vector<uint32_t>& orphans) {
  const bool installed = &routing == routing_.get();
  const int64_t layer = f.request.layer;
  std::map<PeerId, std::vector<transport::TokenRoute>> by_worker;
  for (const uint32_t row : rows) {
    const int32_t e = f.request.expert_ids[row];
    const std::vector<Replica>& replicas = routing.replicas(layer, e);
    const size_t n = replicas.size();
    uint64_t& turn = next_replica_[{layer, e}];
    const Replica* pick = nullptr;
    for (size_t k = 0; k < n && pick == nullptr; ++k) {
      const Replica& candidate = replicas[(turn + k) % n];
      if (dead_.contains(candidate.worker) || f.avoid.contains(candidate.worker)) continue;
      pick = &candidate;
      turn += k + 1;
    }
    if (pick == nullptr) {
      orphans.push_back(row);
      continue;
    }
    if (installed) load_.Count(layer, e, *pick);
    by_worker[pick->worker].push_back({pick->slot, row});
  }
  return by_worker;
}

void RemoteExpertBackend::SendDispatches(int micro_batch, const ExpertRouting& routing,
                                         std::map<PeerId, std::vector<transport::TokenRoute>> by_worker,
                                         std::unique_lock<std::mutex>& lock) {
  if (by_worker.empty()) return;
  InFlight& f = in_flight_[micro_batch];
  const engine::ExpertRequest r = f.request;
  const Clock::time_point resend_at = Clock::now() + options_.resend_after;
  // The dispatch nodes stay put until this thread ends the request, so the rows can be
  // read unlocked.
  std::vector<std::pair<uint64_t, PeerId>> sends;
  for (const auto& [worker, routes] : by_worker) {
    const uint64_t id = ++next_step_id_;
    Dispatch& d = f.dispatches[id];
    d.worker = worker;
    for (const transport::TokenRoute& route : routes) d.rows.push_back(route.token_index);
    d.resend_at = resend_at;
    sends.emplace_back(id, worker);
  }
  lock.unlock();

  transport::MessageHeader header;
  header.kind = transport::MessageKind::kDispatch;
  header.placement_version = routing.version();
  header.layer = static_cast<uint32_t>(r.layer);
  header.micro_batch = static_cast<uint32_t>(micro_batch);
  header.sender = data_plane_.self();
  header.hidden = static_cast<uint32_t>(r.hidden);
  header.dtype = options_.dispatch_dtype;
  header.prefill_rows = static_cast<uint32_t>(r.prefill_tokens * r.top_k);
  uint64_t bytes_sent = 0;
  for (const auto& [id, to] : sends) {
    const std::vector<transport::TokenRoute>& routes = by_worker.at(to);
    const int64_t n = static_cast<int64_t>(routes.size());
    gathered_.resize(n * r.hidden);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&gathered_[i * r.hidden], r.x + (routes[i].token_index / r.top_k) * r.hidden,
                  r.hidden * sizeof(float));
    }
    header.step_id = id;
    header.token_count = static_cast<uint32_t>(n);
    auto message = std::make_shared<const std::vector<uint8_t>>(
        transport::EncodeDispatch(header, routes, gathered_));
    bytes_sent += message->size();
    data_plane_.Send(to, std::move(message), [this, to](absl::Status s) {
      if (s.ok()) return;
      std::lock_guard<std::mutex> lock(mu_);
      LosePeer(to, absl::UnavailableError(
                       absl::StrCat("dispatch to expert worker ", to, " failed: ", s.message())));
      arrived_.notify_all();
    });
  }
  lock.lock();
  stats_.dispatches += sends.size();
  stats_.bytes_sent += bytes_sent;
}

void RemoteExpertBackend::LosePeer(PeerId peer, const absl::Status& why) {
  dead_.insert(peer);
  for (InFlight& f : in_flight_) {
    if (!f.active) continue;
    for (auto& [id, d] : f.dispatches) {
      if (d.worker != peer || !d.bytes.empty() || d.lost || d.abandoned) continue;
      d.lost = true;
      f.cause = why;
    }
  }
}

void RemoteExpertBackend::OnCombine(PeerId from, std::vector<uint8_t> message) {
  std::vector<uint8_t> bytes = std::move(message);
  transport::DecodeLimits limits;
  limits.expected_hidden = static_cast<uint32_t>(options_.hidden);
  absl::StatusOr<transport::DecodedMessage> decoded = transport::Decode(bytes, limits);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.bytes_received += bytes.size();
  // A peer that answers garbage is not trusted again: its unanswered rows go elsewhere
  // and the engine thread closes the connection.
  auto distrust = [&](const std::string& what) {
    to_disconnect_.insert(from);
    LosePeer(from, absl::DataLossError(
                       absl::StrCat("malformed combine from expert worker ", from, ": ", what)));
    arrived_.notify_all();
  };
  if (!decoded.ok()) return distrust(std::string(decoded.status().message()));
  const transport::MessageHeader& h = decoded->header;
  if (h.micro_batch >= engine::kMaxMicroBatches) return distrust("micro-batch out of range");
  InFlight& f = in_flight_[h.micro_batch];
  auto it = f.dispatches.find(h.step_id);
  if (!f.active || it == f.dispatches.end() || it->second.worker != from ||
      !it->second.bytes.empty() || it->second.lost || it->second.abandoned) {
    ++stats_.stale_combines;  // an answer to an ended or abandoned dispatch, or a repeat
    data_plane_.Recycle(std::move(bytes));
    return;
  }
  Dispatch& d = it->second;
  if (h.kind != transport::MessageKind::kCombine ||
      h.layer != static_cast<uint32_t>(f.request.layer)) {
    return distrust("wrong kind or layer");
  }
  // It must answer exactly the rows it was sent, each once (in any order).
  std::vector<uint32_t> answered(h.token_count);
  for (uint32_t i = 0; i < h.token_count; ++i) answered[i] = decoded->route(i).token_index;
  std::sort(answered.begin(), answered.end());
  if (answered != d.rows) {
    return distrust(absl::StrCat("answered ", h.token_count, " rows that are not the ",
                                 d.rows.size(), " it was sent (a row missing, repeated or "
                                 "beyond the request)"));
  }
  d.combine = *std::move(decoded);
  d.bytes = std::move(bytes);  // the views keep pointing into the same buffer
  f.order.push_back(h.step_id);
  const uint32_t index = static_cast<uint32_t>(f.order.size());
  for (const uint32_t row : d.rows) {
    if (f.answered_by[row] == 0) {
      f.answered_by[row] = index;
      ++f.answered;
    }
  }
  arrived_.notify_all();
}

void RemoteExpertBackend::OnPeerError(PeerId peer, absl::Status why) {
  std::lock_guard<std::mutex> lock(mu_);
  LosePeer(peer, absl::UnavailableError(
                     absl::StrCat("expert worker ", peer, " lost: ", why.message())));
  arrived_.notify_all();
}

std::vector<uint32_t> RemoteExpertBackend::TakeRowsToResend(
    InFlight& f, Clock::time_point now, std::shared_ptr<const ExpertRouting>& by) {
  std::vector<uint32_t> rows;
  auto take_unanswered = [&](const Dispatch& d) {
    for (const uint32_t row : d.rows) {
      if (f.answered_by[row] == 0) rows.push_back(row);
    }
  };
  // Offered placements arrive before they are installed, so the offered one is never
  // older than routing_.
  by = offered_ != nullptr ? offered_ : routing_;
  // Orphans are retried with a newer placement, or once a peer (re)connected (its
  // replicas count again: e.g. after this worker's data plane was reset).
  const bool retry_orphans =
      !f.orphans.empty() && (by != f.orphans_tried || connects_ != f.orphans_tried_connects);
  // The coordinator made that placement from its heartbeats: a worker that was late
  // earlier in this step and is named there is alive (it was stopped, or slow, and
  // came back), so it may serve again; still silent, it is late again below.
  if (retry_orphans) f.avoid.clear();
  const std::vector<uint32_t>& placed = by->workers();
  for (auto& [id, d] : f.dispatches) {
    if (!d.lost && d.bytes.empty() && !d.abandoned &&
        !std::binary_search(placed.begin(), placed.end(), d.worker)) {
      // The latest placement leaves the worker out: the coordinator declared it dead
      // (silent, not disconnected) and moved its experts. Re-send now rather than wait
      // for resend_after.
      d.lost = true;
      f.cause = absl::UnavailableError(
          absl::StrCat("expert worker ", d.worker, " left the placement"));
    }
    if (d.lost) {
      d.lost = false;
      d.abandoned = true;
      take_unanswered(d);
    } else if (d.bytes.empty() && !d.abandoned && !d.resent && now >= d.resend_at) {
      // Late: ask another replica too; whichever answers first serves the row.
      d.resent = true;
      f.avoid.insert(d.worker);
      f.cause = absl::DeadlineExceededError(absl::StrCat(
          "expert worker ", d.worker, " did not answer within ", options_.resend_after.count(),
          " ms"));
      take_unanswered(d);
    }
  }
  if (retry_orphans) {
    for (const uint32_t row : f.orphans) {
      if (f.answered_by[row] == 0) rows.push_back(row);
    }
    f.orphans.clear();
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

void RemoteExpertBackend::EndRequest(InFlight& f) {
  f.active = false;
  for (auto& [id, d] : f.dispatches) {
    if (!d.bytes.empty()) data_plane_.Recycle(std::move(d.bytes));
  }
  f.dispatches.clear();
  f.order.clear();
}

absl::Status RemoteExpertBackend::Finish(int micro_batch, float* out) {
  if (micro_batch < 0 || micro_batch >= engine::kMaxMicroBatches) {
    return absl::InvalidArgumentError(absl::StrCat("micro-batch ", micro_batch));
  }
  std::unique_lock<std::mutex> lock(mu_);
  InFlight& f = in_flight_[micro_batch];
  if (!f.active) return absl::FailedPreconditionError("Finish without Start");
  while (true) {
    if (!to_disconnect_.empty()) {
      std::set<PeerId> untrusted;
      untrusted.swap(to_disconnect_);
      lock.unlock();
      for (const PeerId peer : untrusted) data_plane_.Disconnect(peer);
      lock.lock();
      continue;
    }
    const Clock::time_point now = Clock::now();
    std::shared_ptr<const ExpertRouting> by;
    const std::vector<uint32_t> rows = TakeRowsToResend(f, now, by);
    if (!rows.empty()) {
      std::vector<uint32_t> orphans;
      auto by_worker = Assign(*by, f, rows, orphans);
      if (!orphans.empty()) {
        f.orphans_tried = by;
        f.orphans_tried_connects = connects_;
      }
      f.orphans.insert(f.orphans.end(), orphans.begin(), orphans.end());
      stats_.resent_rows += rows.size() - orphans.size();
      if (!by_worker.empty()) {
        SendDispatches(micro_batch, *by, std::move(by_worker), lock);
        continue;
      }
    }
    if (f.answered == f.rows) break;
    if (now >= f.deadline) {
      std::string missing;
      for (const auto& [id, d] : f.dispatches) {
        if (d.bytes.empty() && !d.abandoned) {
          absl::StrAppend(&missing, missing.empty() ? "" : ", ", d.worker);
        }
      }
      std::string message = absl::StrCat(
          "layer ", f.request.layer, ": ", f.rows - f.answered, " of ", f.rows,
          " expert rows unanswered within ", options_.timeout.count(), " ms");
      if (!missing.empty()) absl::StrAppend(&message, "; no combine from expert worker(s) ", missing);
      if (!f.orphans.empty()) {
        absl::StrAppend(&message, "; ", f.orphans.size(), " rows have no live replica");
      }
      if (!f.cause.ok()) absl::StrAppend(&message, " (", f.cause.message(), ")");
      const absl::StatusCode code =
          f.cause.ok() ? absl::StatusCode::kDeadlineExceeded : f.cause.code();
      EndRequest(f);
      return absl::Status(code, message);
    }
    Clock::time_point wake = f.deadline;
    for (const auto& [id, d] : f.dispatches) {
      if (d.bytes.empty() && !d.abandoned && !d.resent) wake = std::min(wake, d.resend_at);
    }
    arrived_.wait_until(lock, wake);
  }

  // Every row has an answer: take the combines out of the request and copy unlocked.
  f.active = false;
  std::map<uint64_t, Dispatch> dispatches = std::move(f.dispatches);
  std::vector<uint64_t> order = std::move(f.order);
  std::vector<uint32_t> answered_by = std::move(f.answered_by);
  f.dispatches.clear();
  f.order.clear();
  lock.unlock();
  absl::Cleanup recycle = [&] {
    for (auto& [id, d] : dispatches) {
      if (!d.bytes.empty()) data_plane_.Recycle(std::move(d.bytes));
    }
  };
  const int64_t hidden = options_.hidden;
  for (size_t k = 0; k < order.size(); ++k) {
    const transport::DecodedMessage& m = dispatches.at(order[k]).combine;
    values_.resize(static_cast<size_t>(m.header.token_count) * hidden);
    m.ValuesToF32(absl::MakeSpan(values_));
    for (uint32_t i = 0; i < m.header.token_count; ++i) {
      const uint32_t row = m.route(i).token_index;
      if (answered_by[row] != k + 1) continue;  // another dispatch answered it first
      std::memcpy(out + static_cast<int64_t>(row) * hidden, &values_[i * hidden],
                  hidden * sizeof(float));
    }
  }
  return absl::OkStatus();
}

RemoteExpertStats RemoteExpertBackend::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace yard::attention_worker
