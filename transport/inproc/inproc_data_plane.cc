#include "transport/inproc/inproc_data_plane.h"

#include <cstdlib>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/check.h"

namespace yard::transport {
namespace {

constexpr char kScheme[] = "inproc:";

}  // namespace

// --- InprocFabric ---

InprocFabric::InprocFabric() {
  delivery_thread_ = std::thread([this] { DeliveryLoop(); });
  delivery_thread_id_ = delivery_thread_.get_id();
}

InprocFabric::~InprocFabric() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    YARD_CHECK(endpoints_.empty(), "every InprocDataPlane must be destroyed first");
    stopping_ = true;
  }
  wake_.notify_all();
  delivery_thread_.join();
}

std::string InprocFabric::AddressOf(PeerId id) { return absl::StrCat(kScheme, id); }

absl::StatusOr<PeerId> InprocFabric::ParseAddress(const std::string& address) {
  const absl::string_view a(address.data(), address.size());
  uint32_t id = 0;
  // SimpleAtoi accepts signs and spaces; the address must be digits only.
  const absl::string_view digits =
      absl::StartsWith(a, kScheme) ? a.substr(sizeof(kScheme) - 1) : absl::string_view();
  const bool all_digits =
      !digits.empty() && digits.find_first_not_of("0123456789") == absl::string_view::npos;
  if (!all_digits || !absl::SimpleAtoi(digits, &id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inproc address \"", address, "\": expected \"inproc:<peer id>\""));
  }
  return id;
}

absl::StatusOr<std::shared_ptr<InprocFabric::Endpoint>> InprocFabric::Register(
    PeerId id, DataPlaneHandlers handlers) {
  std::lock_guard<std::mutex> lock(mu_);
  if (endpoints_.count(id) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("inproc endpoint ", id, " is already registered"));
  }
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->id = id;
  endpoint->handlers = std::move(handlers);
  endpoints_[id] = endpoint;
  return endpoint;
}

void InprocFabric::Unregister(const std::shared_ptr<Endpoint>& endpoint) {
  std::unique_lock<std::mutex> lock(mu_);
  YARD_CHECK(std::this_thread::get_id() != delivery_thread_id_,
             "an InprocDataPlane must not be destroyed from a handler");
  const PeerId id = endpoint->id;
  endpoint->registered = false;
  endpoints_.erase(id);
  std::set<PeerId> peers;
  for (const auto& [key, link] : links_) {
    if (key.first == id) peers.insert(key.second);
    if (key.second == id) peers.insert(key.first);
  }
  for (PeerId peer : peers) {
    CloseLinksBetween(id, peer,
                      absl::UnavailableError(absl::StrCat("peer ", id, " was destroyed")));
  }
  drained_.wait(lock, [&] { return endpoint->queued == 0 && endpoint->running == 0; });
}

absl::Status InprocFabric::Connect(PeerId from, PeerId to, const std::string& address) {
  absl::StatusOr<PeerId> id = ParseAddress(address);
  if (!id.ok()) return id.status();
  if (*id != to) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inproc address \"", address, "\" is endpoint ", *id, ", not peer ", to));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (endpoints_.count(to) == 0) {
    return absl::UnavailableError(absl::StrCat("no inproc endpoint ", to));
  }
  auto it = links_.find({from, to});
  if (it != links_.end() && !it->second.broken) return absl::OkStatus();
  links_[{from, to}] = Link{next_generation_++, false};
  return absl::OkStatus();
}

void InprocFabric::Disconnect(PeerId from, PeerId to) {
  std::lock_guard<std::mutex> lock(mu_);
  CloseLinksBetween(from, to,
                    absl::UnavailableError(absl::StrCat("peer ", from, " disconnected")));
}

void InprocFabric::CloseLinksBetween(PeerId from, PeerId to, const absl::Status& why) {
  bool existed = links_.erase({from, to}) != 0;
  auto back = links_.find({to, from});
  if (back != links_.end()) {
    existed = true;
    back->second.broken = true;
    back->second.generation = next_generation_++;
  }
  if (existed && to != from) PostPeerError(to, from, why);
}

void InprocFabric::Send(const std::shared_ptr<Endpoint>& from, PeerId to, Payload message,
                        SendDone done) {
  YARD_CHECK(message != nullptr, "Send needs a message");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = links_.find({from->id, to});
  if (it == links_.end()) {
    Post(from, [to, done = std::move(done)] {
      done(absl::FailedPreconditionError(absl::StrCat("peer ", to, " is not connected")));
    });
    return;
  }
  if (it->second.broken) {
    Post(from, [to, done = std::move(done)] {
      done(absl::UnavailableError(absl::StrCat("peer ", to, " closed the connection")));
    });
    return;
  }
  const uint64_t generation = it->second.generation;
  Post(from, [this, from_id = from->id, to, generation, message = std::move(message),
              done = std::move(done)] {
    std::unique_lock<std::mutex> lock(mu_);
    auto link = links_.find({from_id, to});
    auto target = endpoints_.find(to);
    const bool deliverable = link != links_.end() && !link->second.broken &&
                             link->second.generation == generation &&
                             target != endpoints_.end() && target->second->registered;
    if (deliverable) {
      std::shared_ptr<Endpoint> receiver = target->second;
      RunAsCallback(lock, *receiver, [&] {
        if (receiver->handlers.on_receive) {
          receiver->handlers.on_receive(from_id, std::vector<uint8_t>(*message));
        }
      });
    }
    lock.unlock();
    done(deliverable ? absl::OkStatus()
                     : absl::UnavailableError(absl::StrCat(
                           "connection to peer ", to, " closed before delivery")));
  });
}

void InprocFabric::Post(std::shared_ptr<Endpoint> owner, std::function<void()> run) {
  ++owner->queued;
  tasks_.push_back(Task{std::move(owner), std::move(run)});
  wake_.notify_one();
}

void InprocFabric::PostPeerError(PeerId to_notify, PeerId peer, absl::Status why) {
  auto it = endpoints_.find(to_notify);
  if (it == endpoints_.end()) return;
  std::shared_ptr<Endpoint> endpoint = it->second;
  Post(endpoint, [this, endpoint, peer, why = std::move(why)] {
    bool registered;
    {
      std::lock_guard<std::mutex> lock(mu_);
      registered = endpoint->registered;
    }
    // The endpoint's destructor waits for this task, so its handlers are alive.
    if (registered && endpoint->handlers.on_peer_error) {
      endpoint->handlers.on_peer_error(peer, why);
    }
  });
}

void InprocFabric::RunAsCallback(std::unique_lock<std::mutex>& lock, Endpoint& endpoint,
                                 const std::function<void()>& f) {
  ++endpoint.running;
  lock.unlock();
  f();
  lock.lock();
  --endpoint.running;
  drained_.notify_all();
}

void InprocFabric::DeliveryLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, and everything queued has run
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    RunAsCallback(lock, *task.owner, task.run);
    --task.owner->queued;
    drained_.notify_all();
  }
}

// --- InprocDataPlane ---

absl::StatusOr<std::unique_ptr<InprocDataPlane>> InprocDataPlane::Create(
    InprocFabric& fabric, PeerId self, DataPlaneHandlers handlers) {
  absl::StatusOr<std::shared_ptr<InprocFabric::Endpoint>> endpoint =
      fabric.Register(self, std::move(handlers));
  if (!endpoint.ok()) return endpoint.status();
  return std::unique_ptr<InprocDataPlane>(
      new InprocDataPlane(fabric, self, *std::move(endpoint)));
}

InprocDataPlane::~InprocDataPlane() { fabric_.Unregister(endpoint_); }

absl::Status InprocDataPlane::Connect(PeerId peer, const std::string& address) {
  return fabric_.Connect(self_, peer, address);
}

void InprocDataPlane::Disconnect(PeerId peer) { fabric_.Disconnect(self_, peer); }

void InprocDataPlane::Send(PeerId peer, Payload message, SendDone done) {
  fabric_.Send(endpoint_, peer, std::move(message), std::move(done));
}

}  // namespace yard::transport
