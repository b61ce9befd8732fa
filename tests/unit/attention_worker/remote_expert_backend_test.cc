// RemoteExpertBackend over a fake data plane: the test sees every dispatch, completes
// sends, and plays the expert workers by handing combines (well-formed or not) and
// peer errors to the backend.
#include "attention_worker/remote_expert_backend.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "attention_worker/expert_routing.h"
#include "gtest/gtest.h"
#include "transport/data_plane.h"
#include "transport/wire_format.h"

namespace yard::attention_worker {
namespace {

using transport::PeerId;
using transport::TokenRoute;
using transport::WireDType;

constexpr PeerId kSelf = 1;
constexpr PeerId kWorkerA = 10;
constexpr PeerId kWorkerB = 11;
constexpr int64_t kHidden = 4;
constexpr int64_t kLayer = 1;  // the MoE layer; layer 0 is dense
constexpr int64_t kExperts = 3;

// Records sends; their completions run only when the test calls them. A test whose
// Finish runs on another thread reads the sends through WaitSent.
class FakeDataPlane : public transport::DataPlaneInterface {
 public:
  struct Sent {
    PeerId to = 0;
    transport::Payload bytes;
    transport::SendDone done;
  };

  PeerId self() const override { return kSelf; }
  std::string LocalAddress() const override { return "fake:1"; }
  absl::Status SetSelf(PeerId id) override {
    return id == kSelf ? absl::OkStatus() : absl::FailedPreconditionError("fixed id");
  }
  absl::Status Connect(PeerId, const std::string&) override { return absl::OkStatus(); }
  void Disconnect(PeerId peer) override {
    std::lock_guard<std::mutex> lock(mu);
    disconnected.push_back(peer);
  }
  void Send(PeerId peer, transport::Payload message, transport::SendDone done) override {
    std::lock_guard<std::mutex> lock(mu);
    sent.push_back(Sent{peer, std::move(message), std::move(done)});
    changed.notify_all();
  }

  // Waits (up to 5 s) until `n` sends were made; a copy of send i - 1.
  Sent WaitSent(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    changed.wait_for(lock, std::chrono::seconds(5), [&] { return sent.size() >= n; });
    EXPECT_GE(sent.size(), n);
    return sent.size() >= n ? sent[n - 1] : Sent{};
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return sent.size();
  }

  std::mutex mu;
  std::condition_variable changed;
  std::vector<Sent> sent;
  std::vector<PeerId> disconnected;
};

struct SlotOf {
  PeerId worker;
  uint32_t slot;
  uint32_t expert;
};

// Placement `version` with these slots of layer kLayer, as the backend routes by it.
std::shared_ptr<const ExpertRouting> RoutingOf(uint64_t version, const std::vector<SlotOf>& slots) {
  cluster::Placement p;
  p.set_version(version);
  cluster::LayerPlacement* layer = p.add_layers();
  layer->set_layer(kLayer);
  for (const SlotOf& slot : slots) {
    cluster::Slot* s = layer->add_slots();
    s->set_worker_id(slot.worker);
    s->set_slot(slot.slot);
    s->set_logical_expert(slot.expert);
  }
  absl::StatusOr<ExpertRouting> routing = ExpertRouting::FromPlacement(p, {false, true}, kExperts);
  EXPECT_TRUE(routing.ok()) << routing.status();
  return std::make_shared<const ExpertRouting>(*std::move(routing));
}

// Layer 1: expert 0 on A slot 0 and B slot 0 (two replicas), expert 1 on A slot 1,
// expert 2 on B slot 1.
std::shared_ptr<const ExpertRouting> Routing(uint64_t version = 5) {
  return RoutingOf(version, {{kWorkerA, 0, 0}, {kWorkerB, 0, 0}, {kWorkerA, 1, 1}, {kWorkerB, 1, 2}});
}

RemoteExpertOptions Options(WireDType dtype = WireDType::kFP32,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(5000),
                            std::chrono::milliseconds resend_after = std::chrono::seconds(60)) {
  RemoteExpertOptions o;
  o.hidden = kHidden;
  o.num_experts = kExperts;
  o.dispatch_dtype = dtype;
  o.timeout = timeout;
  o.resend_after = resend_after;
  return o;
}

// Waits this long for rows whose expert has no live replica left.
constexpr std::chrono::milliseconds kShort(300);

// A request and the buffers it points into.
struct Request {
  std::vector<float> x;           // [tokens, kHidden]
  std::vector<int32_t> expert_ids;  // [tokens, top_k]
  engine::ExpertRequest request;

  Request(int64_t tokens, int64_t top_k, std::vector<int32_t> ids, int64_t layer = kLayer)
      : expert_ids(std::move(ids)) {
    x.resize(tokens * kHidden);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t c = 0; c < kHidden; ++c) x[t * kHidden + c] = 1.0f + t + 0.125f * c;
    }
    request.layer = layer;
    request.tokens = tokens;
    request.hidden = kHidden;
    request.top_k = top_k;
    request.x = x.data();
    request.expert_ids = expert_ids.data();
  }
};

// Three tokens, top-2: rows 0..5 choose experts 0 1 0 2 0 1.
Request ThreeTokens() { return Request(3, 2, {0, 1, 0, 2, 0, 1}); }

struct Dispatch {
  transport::MessageHeader header;
  std::vector<TokenRoute> routes;
  std::vector<float> values;
};

Dispatch DecodeDispatch(const FakeDataPlane::Sent& s) {
  Dispatch d;
  absl::StatusOr<transport::DecodedMessage> m = transport::Decode(*s.bytes, {});
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return d;
  d.header = m->header;
  for (uint32_t i = 0; i < m->header.token_count; ++i) d.routes.push_back(m->route(i));
  d.values.resize(static_cast<size_t>(m->header.token_count) * m->header.hidden);
  m->ValuesToF32(absl::MakeSpan(d.values));
  return d;
}

// The output an expert worker gives for row `row` in this test: recognizable per row
// and per `step_mark`.
float Output(uint32_t row, int64_t c, float step_mark = 0) {
  return 100.0f * row + c + step_mark;
}

// The combine answering `dispatch` with Output(), its routes as given.
std::vector<uint8_t> CombineFor(const Dispatch& dispatch, std::vector<TokenRoute> routes,
                                float step_mark = 0) {
  transport::MessageHeader h = dispatch.header;
  h.dtype = WireDType::kFP32;
  h.token_count = static_cast<uint32_t>(routes.size());
  std::vector<float> y(routes.size() * kHidden);
  for (size_t i = 0; i < routes.size(); ++i) {
    for (int64_t c = 0; c < kHidden; ++c) y[i * kHidden + c] = Output(routes[i].token_index, c, step_mark);
  }
  return transport::EncodeCombine(h, routes, y);
}
std::vector<uint8_t> CombineFor(const Dispatch& dispatch, float step_mark = 0) {
  return CombineFor(dispatch, dispatch.routes, step_mark);
}

// Answers every dispatch sent from index `first` on, as its worker would.
void AnswerAll(RemoteExpertBackend& backend, const FakeDataPlane& plane, size_t first = 0,
               float step_mark = 0) {
  for (size_t i = first; i < plane.sent.size(); ++i) {
    backend.OnCombine(plane.sent[i].to, CombineFor(DecodeDispatch(plane.sent[i]), step_mark));
  }
}

void ExpectOutputs(const std::vector<float>& out, int64_t rows, float step_mark = 0) {
  ASSERT_EQ(out.size(), static_cast<size_t>(rows * kHidden));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < kHidden; ++c) {
      EXPECT_EQ(out[r * kHidden + c], Output(static_cast<uint32_t>(r), c, step_mark))
          << "row " << r << " element " << c;
    }
  }
}

TEST(RemoteExpertBackendTest, StartWithoutRoutingIsFailedPrecondition) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  Request r = ThreeTokens();
  EXPECT_EQ(backend.Start(r.request).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(plane.sent.empty());
  std::vector<float> out(6 * kHidden);
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RemoteExpertBackendTest, WrongHiddenSizeIsInvalidArgument) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  r.request.hidden = kHidden * 2;
  EXPECT_EQ(backend.Start(r.request).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(plane.sent.empty());
}

TEST(RemoteExpertBackendTest, StartWhileInFlightIsFailedPrecondition) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  EXPECT_EQ(backend.Start(r.request).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(plane.sent.size(), 2u);
}

// The dispatches of ThreeTokens(): expert 0's rows 0, 2, 4 alternate between its
// replicas A/0 and B/0; expert 1's rows 1, 5 go to A/1, expert 2's row 3 to B/1.
TEST(RemoteExpertBackendTest, DispatchesSpreadReplicasRoundRobinAndCarryTheRows) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32));
  backend.SetRouting(Routing(/*version=*/5));
  Request r = ThreeTokens();
  r.request.prefill_tokens = 2;  // tokens 0 and 1: rows 0-3 of top-2 routing
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);
  ASSERT_EQ(plane.sent[0].to, kWorkerA);
  ASSERT_EQ(plane.sent[1].to, kWorkerB);

  const Dispatch a = DecodeDispatch(plane.sent[0]);
  const Dispatch b = DecodeDispatch(plane.sent[1]);
  EXPECT_NE(a.header.step_id, b.header.step_id);  // each dispatch's combine names it
  EXPECT_EQ(a.routes, (std::vector<TokenRoute>{{0, 0}, {1, 1}, {0, 4}, {1, 5}}));
  EXPECT_EQ(b.routes, (std::vector<TokenRoute>{{0, 2}, {1, 3}}));
  for (const Dispatch* d : {&a, &b}) {
    EXPECT_EQ(d->header.kind, transport::MessageKind::kDispatch);
    EXPECT_EQ(d->header.dtype, WireDType::kFP32);
    EXPECT_EQ(d->header.layer, static_cast<uint32_t>(kLayer));
    EXPECT_EQ(d->header.hidden, static_cast<uint32_t>(kHidden));
    EXPECT_EQ(d->header.sender, kSelf);
    EXPECT_EQ(d->header.placement_version, 5u);
    EXPECT_EQ(d->header.prefill_rows, 4u);  // routes with a token index below it: prefill
    ASSERT_EQ(d->values.size(), d->routes.size() * kHidden);
    for (size_t i = 0; i < d->routes.size(); ++i) {
      const int64_t token = d->routes[i].token_index / 2;  // top_k = 2
      for (int64_t c = 0; c < kHidden; ++c) {
        EXPECT_EQ(d->values[i * kHidden + c], r.x[token * kHidden + c])
            << "route " << i << " element " << c;
      }
    }
  }
  const RemoteExpertStats stats = backend.stats();
  EXPECT_EQ(stats.dispatches, 2u);
  EXPECT_EQ(stats.rows, 6u);
  EXPECT_EQ(stats.bytes_sent, plane.sent[0].bytes->size() + plane.sent[1].bytes->size());

  // Expert 0 alone, five tokens of top-1: the turn goes on from the last step (A, B, A
  // above), so B, A, B, A, B.
  AnswerAll(backend, plane);
  std::vector<float> out(6 * kHidden);
  ASSERT_TRUE(backend.Finish(0, out.data()).ok());
  plane.sent.clear();
  Request five(5, 1, {0, 0, 0, 0, 0});
  ASSERT_TRUE(backend.Start(five.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);
  EXPECT_EQ(DecodeDispatch(plane.sent[0]).routes, (std::vector<TokenRoute>{{0, 1}, {0, 3}}));
  EXPECT_EQ(DecodeDispatch(plane.sent[1]).routes,
            (std::vector<TokenRoute>{{0, 0}, {0, 2}, {0, 4}}));
  EXPECT_GT(DecodeDispatch(plane.sent[0]).header.step_id, a.header.step_id);
}

// Batch-1 decode: one row of expert 0 per step still alternates between its replicas,
// and a new placement starts the turn afresh.
TEST(RemoteExpertBackendTest, OneRowPerStepAlternatesReplicasAcrossSteps) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  std::vector<PeerId> served;
  for (int step = 0; step < 4; ++step) {
    if (step == 2) backend.SetRouting(Routing(/*version=*/2));
    plane.sent.clear();
    Request one(1, 1, {0});
    ASSERT_TRUE(backend.Start(one.request).ok());
    ASSERT_EQ(plane.sent.size(), 1u);
    served.push_back(plane.sent[0].to);
    AnswerAll(backend, plane);
    std::vector<float> out(kHidden);
    ASSERT_TRUE(backend.Finish(0, out.data()).ok());
  }
  EXPECT_EQ(served, (std::vector<PeerId>{kWorkerA, kWorkerB, kWorkerA, kWorkerB}));
  // Every row was counted for its expert and its physical slot, per placement version.
  std::vector<cluster::LoadReport> load = backend.TakeLoad(42);
  ASSERT_EQ(load.size(), 2u);
  for (const cluster::LoadReport& report : load) {
    EXPECT_EQ(report.worker_id(), 42u);
    ASSERT_EQ(report.layers_size(), 1);
    EXPECT_EQ(report.layers(0).layer(), static_cast<uint32_t>(kLayer));
    EXPECT_EQ(report.layers(0).tokens_per_expert(0), 2u) << report.placement_version();
  }
  EXPECT_EQ(load[1].placement_version(), 2u);
}

TEST(RemoteExpertBackendTest, Bf16DispatchCarriesRoundedValues) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kBF16));
  backend.SetRouting(Routing());
  Request r(1, 1, {1});
  for (int64_t c = 0; c < kHidden; ++c) r.x[c] = 1.0f / 3.0f + c;  // not exact in BF16
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 1u);
  EXPECT_EQ(plane.sent[0].to, kWorkerA);
  const Dispatch d = DecodeDispatch(plane.sent[0]);
  EXPECT_EQ(d.header.dtype, WireDType::kBF16);
  EXPECT_EQ(d.routes, (std::vector<TokenRoute>{{1, 0}}));
  for (int64_t c = 0; c < kHidden; ++c) {
    EXPECT_EQ(d.values[c], transport::Bf16ToF32(transport::F32ToBf16(r.x[c])));
    EXPECT_NE(d.values[c], r.x[c]);
  }
}

TEST(RemoteExpertBackendTest, FinishPlacesRowsByTokenIndex) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);
  // B answers first; A answers with its routes reversed: rows go by token index,
  // not by position in the combine.
  const Dispatch a = DecodeDispatch(plane.sent[0]);
  std::vector<TokenRoute> reversed(a.routes.rbegin(), a.routes.rend());
  backend.OnCombine(kWorkerB, CombineFor(DecodeDispatch(plane.sent[1])));
  backend.OnCombine(kWorkerA, CombineFor(a, reversed));
  for (auto& s : plane.sent) s.done(absl::OkStatus());
  std::vector<float> out(6 * kHidden, -1.0f);
  ASSERT_TRUE(backend.Finish(0, out.data()).ok());
  ExpectOutputs(out, 6);
  EXPECT_GT(backend.stats().bytes_received, 0u);
  EXPECT_EQ(backend.stats().stale_combines, 0u);
}

TEST(RemoteExpertBackendTest, CombineArrivingWhileFinishWaitsCompletesIt) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  const std::vector<uint8_t> late = CombineFor(DecodeDispatch(plane.sent[1]));
  std::thread worker([&] { backend.OnCombine(kWorkerB, late); });
  std::vector<float> out(6 * kHidden);
  const absl::Status s = backend.Finish(0, out.data());
  worker.join();
  ASSERT_TRUE(s.ok()) << s;
  ExpectOutputs(out, 6);
}

TEST(RemoteExpertBackendTest, MissingCombineIsDeadlineExceeded) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, std::chrono::milliseconds(200)));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));  // B never answers
  std::vector<float> out(6 * kHidden);
  const auto begin = std::chrono::steady_clock::now();
  const absl::Status s = backend.Finish(0, out.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(std::string(s.message()).find("11"), std::string::npos) << s;
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(200));

  // The backend is usable again.
  plane.sent.clear();
  ASSERT_TRUE(backend.Start(r.request).ok());
  AnswerAll(backend, plane);
  ASSERT_TRUE(backend.Finish(0, out.data()).ok());
  ExpectOutputs(out, 6);
}

// B's send fails: its row of expert 0 goes to the other replica (A); its row of
// expert 2, which only B holds, waits for a placement that never comes.
TEST(RemoteExpertBackendTest, FailedSendResendsWhatItCanAndFailsUnavailableAtTheDeadline) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);
  plane.sent[0].done(absl::OkStatus());
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  plane.sent[1].done(absl::UnavailableError("worker 11 unreachable"));
  std::vector<float> out(6 * kHidden);
  const absl::Status s = backend.Finish(0, out.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(std::string(s.message()).find("no live replica"), std::string::npos) << s;
  ASSERT_EQ(plane.sent.size(), 3u);
  EXPECT_EQ(plane.sent[2].to, kWorkerA);
  EXPECT_EQ(DecodeDispatch(plane.sent[2]).routes, (std::vector<TokenRoute>{{0, 2}}));
  EXPECT_EQ(backend.stats().resent_rows, 1u);

  // Once B is connected again it is routed to, and a send of the earlier step failing
  // late does not fail the current one.
  backend.OnPeerConnected(kWorkerB);
  FakeDataPlane::Sent old = plane.sent[2];
  plane.sent.clear();
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);
  AnswerAll(backend, plane);
  old.done(absl::UnavailableError("late"));
  const absl::Status again = backend.Finish(0, out.data());
  EXPECT_TRUE(again.ok()) << again;
  ExpectOutputs(out, 6);
}

TEST(RemoteExpertBackendTest, PeerErrorOfAWorkerWithoutReplicasFailsAtTheDeadline) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  backend.OnPeerError(99, absl::UnavailableError("not involved"));  // ignored
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  backend.OnPeerError(kWorkerA, absl::UnavailableError("already answered"));  // ignored
  backend.OnPeerError(kWorkerB, absl::UnavailableError("connection reset"));
  std::vector<float> out(6 * kHidden);
  const absl::Status s = backend.Finish(0, out.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(std::string(s.message()).find("connection reset"), std::string::npos) << s;
}

// The failure model: a lost worker's rows go to surviving replicas at once; rows of
// an expert it alone held wait for the next placement (the coordinator reloaded the
// expert elsewhere) and go where it says. The step completes with every row right.
TEST(RemoteExpertBackendTest, LostWorkersRowsGoToSurvivorsAndToTheNextPlacement) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);  // A: rows 0 1 4 5; B: rows 2 3
  const Dispatch a = DecodeDispatch(plane.sent[0]);
  std::vector<float> out(6 * kHidden, -1.0f);
  absl::Status finished;
  std::thread engine([&] { finished = backend.Finish(0, out.data()); });
  backend.OnPeerError(kWorkerB, absl::UnavailableError("killed"));
  // Row 2 (expert 0) goes to A's replica at once; row 3 (expert 2) has none left.
  const Dispatch resent = DecodeDispatch(plane.WaitSent(3));
  EXPECT_EQ(plane.sent[2].to, kWorkerA);
  EXPECT_EQ(resent.routes, (std::vector<TokenRoute>{{0, 2}}));
  // v6 moves expert 2 to A's slot 2.
  backend.OfferRouting(RoutingOf(6, {{kWorkerA, 0, 0}, {kWorkerA, 1, 1}, {kWorkerA, 2, 2}}));
  const Dispatch moved = DecodeDispatch(plane.WaitSent(4));
  EXPECT_EQ(plane.sent[3].to, kWorkerA);
  EXPECT_EQ(moved.routes, (std::vector<TokenRoute>{{2, 3}}));
  EXPECT_EQ(moved.header.placement_version, 6u);
  backend.OnCombine(kWorkerA, CombineFor(moved));
  backend.OnCombine(kWorkerA, CombineFor(resent));
  backend.OnCombine(kWorkerA, CombineFor(a));
  engine.join();
  ASSERT_TRUE(finished.ok()) << finished;
  ExpectOutputs(out, 6);
  EXPECT_EQ(backend.stats().resent_rows, 2u);
}

// A silent worker (no answer, no peer error) that the next placement leaves out: the
// coordinator declared it dead and moved its experts, so its rows go where that
// placement says at once, not after resend_after.
TEST(RemoteExpertBackendTest, RowsOfASilentWorkerLeftOutOfTheNextPlacementMoveAtOnce) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(
      plane, Options(WireDType::kFP32, std::chrono::seconds(60), std::chrono::seconds(60)));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);  // A: rows 0 1 4 5; B: rows 2 3
  const Dispatch a = DecodeDispatch(plane.sent[0]);
  std::vector<float> out(6 * kHidden, -1.0f);
  absl::Status finished;
  std::thread engine([&] { finished = backend.Finish(0, out.data()); });
  backend.OfferRouting(RoutingOf(6, {{kWorkerA, 0, 0}, {kWorkerA, 1, 1}, {kWorkerA, 2, 2}}));
  const Dispatch moved = DecodeDispatch(plane.WaitSent(3));
  EXPECT_EQ(plane.sent[2].to, kWorkerA);
  EXPECT_EQ(moved.routes, (std::vector<TokenRoute>{{0, 2}, {2, 3}}));
  EXPECT_EQ(moved.header.placement_version, 6u);
  backend.OnCombine(kWorkerA, CombineFor(a));
  backend.OnCombine(kWorkerA, CombineFor(moved));
  engine.join();
  ASSERT_TRUE(finished.ok()) << finished;
  ExpectOutputs(out, 6);
}

// A worker that does not answer within resend_after: its rows are also sent to
// another replica; the first answer serves the row and the late one is dropped.
TEST(RemoteExpertBackendTest, SilentWorkersRowsAreSentToAnotherReplica) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(
      plane, Options(WireDType::kFP32, std::chrono::seconds(5), std::chrono::milliseconds(50)));
  backend.SetRouting(Routing());
  Request one(1, 1, {0});
  ASSERT_TRUE(backend.Start(one.request).ok());
  ASSERT_EQ(plane.sent.size(), 1u);
  EXPECT_EQ(plane.sent[0].to, kWorkerA);
  const Dispatch slow = DecodeDispatch(plane.sent[0]);
  std::vector<float> out(kHidden);
  absl::Status finished;
  std::thread engine([&] { finished = backend.Finish(0, out.data()); });
  const Dispatch again = DecodeDispatch(plane.WaitSent(2));
  EXPECT_EQ(plane.sent[1].to, kWorkerB);
  backend.OnCombine(kWorkerB, CombineFor(again));
  engine.join();
  ASSERT_TRUE(finished.ok()) << finished;
  ExpectOutputs(out, 1);
  backend.OnCombine(kWorkerA, CombineFor(slow, /*step_mark=*/0.5f));
  EXPECT_EQ(backend.stats().stale_combines, 1u);
}

TEST(RemoteExpertBackendTest, PeerErrorsOfOtherWorkersDoNotFailTheStep) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request r(1, 1, {1});  // only worker A is awaited
  ASSERT_TRUE(backend.Start(r.request).ok());
  ASSERT_EQ(plane.sent.size(), 1u);
  backend.OnPeerError(kWorkerB, absl::UnavailableError("gone"));
  AnswerAll(backend, plane);
  std::vector<float> out(kHidden);
  EXPECT_TRUE(backend.Finish(0, out.data()).ok());
  ExpectOutputs(out, 1);
}

TEST(RemoteExpertBackendTest, CombineOfAnOlderStepIsStaleAndDoesNotCompleteTheCurrentOne) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, std::chrono::milliseconds(200)));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  std::vector<float> out(6 * kHidden);

  // Step 1: B's combine comes too late; the step fails.
  ASSERT_TRUE(backend.Start(r.request).ok());
  const Dispatch step1_b = DecodeDispatch(plane.sent[1]);
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  ASSERT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDeadlineExceeded);

  // Step 2: B's step-1 combine arrives first. It is dropped, so step 2 still lacks B.
  plane.sent.clear();
  ASSERT_TRUE(backend.Start(r.request).ok());
  backend.OnCombine(kWorkerB, CombineFor(step1_b));
  EXPECT_EQ(backend.stats().stale_combines, 1u);
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDeadlineExceeded);

  // Step 3: stale again, then both answers: the step's own values come out.
  plane.sent.clear();
  ASSERT_TRUE(backend.Start(r.request).ok());
  backend.OnCombine(kWorkerB, CombineFor(step1_b, /*step_mark=*/0.5f));
  AnswerAll(backend, plane, 0, /*step_mark=*/0.25f);
  // A second answer from the same worker for this step is dropped too.
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0]), 0.75f));
  const absl::Status s = backend.Finish(0, out.data());
  ASSERT_TRUE(s.ok()) << s;
  ExpectOutputs(out, 6, 0.25f);
  EXPECT_EQ(backend.stats().stale_combines, 3u);

  // After Finish nothing is awaited: any combine is stale.
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  EXPECT_EQ(backend.stats().stale_combines, 4u);
}

// A late combine of an earlier step that had MORE rows than the current one is just
// as stale; it must not fail the current step.
TEST(RemoteExpertBackendTest, StaleCombineOfALargerEarlierStepIsDroppedNotDataLoss) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, std::chrono::milliseconds(200)));
  backend.SetRouting(Routing());
  std::vector<float> out(6 * kHidden);

  Request six_rows = ThreeTokens();
  ASSERT_TRUE(backend.Start(six_rows.request).ok());
  const Dispatch step1_b = DecodeDispatch(plane.sent[1]);  // rows 2 and 3
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  ASSERT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDeadlineExceeded);

  plane.sent.clear();
  Request two_rows(1, 2, {1, 2});  // row 0 to A, row 1 to B
  ASSERT_TRUE(backend.Start(two_rows.request).ok());
  ASSERT_EQ(plane.sent.size(), 2u);
  backend.OnCombine(kWorkerB, CombineFor(step1_b));  // step 1's, token indices 2 and 3
  AnswerAll(backend, plane);
  const absl::Status s = backend.Finish(0, out.data());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(backend.stats().stale_combines, 1u);
}

TEST(RemoteExpertBackendTest, TwoMicroBatchesInFlightAreAnsweredByTheirOwnCombines) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  Request first = ThreeTokens();  // micro-batch 0: workers A and B
  Request second(2, 1, {1, 1});   // micro-batch 1: worker A only
  second.request.micro_batch = 1;
  ASSERT_TRUE(backend.Start(first.request).ok());
  ASSERT_TRUE(backend.Start(second.request).ok());
  ASSERT_EQ(plane.sent.size(), 3u);
  const Dispatch mb0_a = DecodeDispatch(plane.sent[0]);
  const Dispatch mb0_b = DecodeDispatch(plane.sent[1]);
  const Dispatch mb1_a = DecodeDispatch(plane.sent[2]);
  EXPECT_EQ(mb0_a.header.micro_batch, 0u);
  EXPECT_EQ(mb0_b.header.micro_batch, 0u);
  EXPECT_EQ(mb1_a.header.micro_batch, 1u);
  EXPECT_NE(mb1_a.header.step_id, mb0_a.header.step_id);
  // Micro-batch 1 is in flight already.
  EXPECT_EQ(backend.Start(second.request).code(), absl::StatusCode::kFailedPrecondition);

  // Worker A answers micro-batch 1 first; it finishes before micro-batch 0.
  backend.OnCombine(kWorkerA, CombineFor(mb1_a, /*step_mark=*/0.5f));
  std::vector<float> out1(2 * kHidden);
  ASSERT_TRUE(backend.Finish(1, out1.data()).ok());
  ExpectOutputs(out1, 2, 0.5f);

  backend.OnCombine(kWorkerB, CombineFor(mb0_b));
  backend.OnCombine(kWorkerA, CombineFor(mb0_a));
  std::vector<float> out0(6 * kHidden);
  ASSERT_TRUE(backend.Finish(0, out0.data()).ok());
  ExpectOutputs(out0, 6);
  EXPECT_EQ(backend.stats().stale_combines, 0u);
}

TEST(RemoteExpertBackendTest, MicroBatchOutOfRangeIsInvalidArgument) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options());
  backend.SetRouting(Routing());
  for (int mb : {-1, engine::kMaxMicroBatches}) {
    Request r = ThreeTokens();
    r.request.micro_batch = mb;
    EXPECT_EQ(backend.Start(r.request).code(), absl::StatusCode::kInvalidArgument) << mb;
    std::vector<float> out(6 * kHidden);
    EXPECT_EQ(backend.Finish(mb, out.data()).code(), absl::StatusCode::kInvalidArgument) << mb;
  }
  EXPECT_TRUE(plane.sent.empty());
}

TEST(RemoteExpertBackendTest, PeerErrorFailsEveryMicroBatchAwaitingThatWorker) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request first = ThreeTokens();  // A and B
  Request second(1, 1, {2});      // B only
  second.request.micro_batch = 1;
  ASSERT_TRUE(backend.Start(first.request).ok());
  ASSERT_TRUE(backend.Start(second.request).ok());
  backend.OnPeerError(kWorkerB, absl::UnavailableError("reset"));
  std::vector<float> out(6 * kHidden);
  EXPECT_EQ(backend.Finish(1, out.data()).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kUnavailable);
}

TEST(RemoteExpertBackendTest, MalformedCombineIsDataLoss) {
  struct Case {
    const char* what;
    std::function<std::vector<uint8_t>(const Dispatch&)> make;
  };
  const std::vector<Case> cases = {
      {"garbage", [](const Dispatch&) { return std::vector<uint8_t>{1, 2, 3}; }},
      {"truncated",
       [](const Dispatch& d) {
         std::vector<uint8_t> b = CombineFor(d);
         b.resize(b.size() - 3);
         return b;
       }},
      {"a dispatch",
       [](const Dispatch& d) {
         std::vector<float> y(d.routes.size() * kHidden, 1.0f);
         return transport::EncodeDispatch(d.header, d.routes, y);
       }},
      {"another layer",
       [](const Dispatch& d) {
         Dispatch other = d;
         other.header.layer = 0;
         return CombineFor(other);
       }},
      {"another hidden size",
       [](const Dispatch& d) {
         transport::MessageHeader h = d.header;
         h.hidden = kHidden * 2;
         h.dtype = WireDType::kFP32;
         std::vector<float> y(d.routes.size() * kHidden * 2, 1.0f);
         return transport::EncodeCombine(h, d.routes, y);
       }},
  };
  for (const Case& c : cases) {
    FakeDataPlane plane;
    RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
    backend.SetRouting(Routing());
    Request r = ThreeTokens();
    ASSERT_TRUE(backend.Start(r.request).ok());
    backend.OnCombine(kWorkerA, c.make(DecodeDispatch(plane.sent[0])));
    std::vector<float> out(6 * kHidden);
    // A is not trusted again: disconnected, its expert-0 rows re-sent to B, and its
    // expert-1 rows (no other replica) fail the step.
    const absl::Status s = backend.Finish(0, out.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.what << ": " << s;
    EXPECT_EQ(plane.disconnected, std::vector<PeerId>{kWorkerA}) << c.what;
    ASSERT_EQ(plane.sent.size(), 3u) << c.what;
    EXPECT_EQ(plane.sent[2].to, kWorkerB) << c.what;
  }
}

TEST(RemoteExpertBackendTest, CombineAnsweringARowBeyondTheRequestIsDataLoss) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  const Dispatch a = DecodeDispatch(plane.sent[0]);
  std::vector<TokenRoute> beyond = a.routes;
  beyond[0].token_index = 6;  // the request has rows 0..5
  backend.OnCombine(kWorkerA, CombineFor(a, beyond));
  backend.OnCombine(kWorkerB, CombineFor(DecodeDispatch(plane.sent[1])));
  std::vector<float> out(6 * kHidden);
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDataLoss);
}

TEST(RemoteExpertBackendTest, CombineAnsweringARowTwiceIsDataLoss) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  const Dispatch a = DecodeDispatch(plane.sent[0]);  // rows 0 1 4 5
  std::vector<TokenRoute> twice = a.routes;
  twice[1] = twice[0];  // row 0 twice, row 1 never
  backend.OnCombine(kWorkerA, CombineFor(a, twice));
  backend.OnCombine(kWorkerB, CombineFor(DecodeDispatch(plane.sent[1])));
  std::vector<float> out(6 * kHidden);
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDataLoss);
}

TEST(RemoteExpertBackendTest, RowAnsweredByTwoWorkersIsDataLoss) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  const Dispatch b = DecodeDispatch(plane.sent[1]);  // rows 2 3
  std::vector<TokenRoute> stolen = b.routes;
  stolen[0].token_index = 0;  // A's row 0, and B's row 2 never
  backend.OnCombine(kWorkerA, CombineFor(DecodeDispatch(plane.sent[0])));
  backend.OnCombine(kWorkerB, CombineFor(b, stolen));
  std::vector<float> out(6 * kHidden);
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDataLoss);
}

TEST(RemoteExpertBackendTest, CombineMissingARowIsDataLoss) {
  FakeDataPlane plane;
  RemoteExpertBackend backend(plane, Options(WireDType::kFP32, kShort));
  backend.SetRouting(Routing());
  Request r = ThreeTokens();
  ASSERT_TRUE(backend.Start(r.request).ok());
  const Dispatch a = DecodeDispatch(plane.sent[0]);
  std::vector<TokenRoute> fewer(a.routes.begin(), a.routes.end() - 1);  // no row 5
  backend.OnCombine(kWorkerA, CombineFor(a, fewer));
  backend.OnCombine(kWorkerB, CombineFor(DecodeDispatch(plane.sent[1])));
  std::vector<float> out(6 * kHidden);
  EXPECT_EQ(backend.Finish(0, out.data()).code(), absl::StatusCode::kDataLoss);
}

// ExpertBackendInterface::Start: "InvalidArgument for a layer without experts or an
// expert id out of range". Each call runs in a child process so that a crash fails
// this test alone.
TEST(RemoteExpertBackendTest, LayerWithoutExpertsOrExpertOutOfRangeIsInvalidArgument) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  struct Case {
    const char* what;
    int64_t layer;
    int32_t expert;
  };
  for (const Case& c : {Case{"dense layer", 0, 0}, Case{"layer beyond the model", 9, 0},
                        Case{"expert out of range", kLayer, kExperts},
                        Case{"negative expert", kLayer, -1}}) {
    EXPECT_EXIT(
        {
          FakeDataPlane plane;
          RemoteExpertBackend backend(plane, Options());
          backend.SetRouting(Routing());
          Request r(1, 1, {c.expert}, c.layer);
          const absl::Status s = backend.Start(r.request);
          std::exit(s.code() == absl::StatusCode::kInvalidArgument && plane.sent.empty() ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "")
        << c.what;
  }
}

}  // namespace
}  // namespace yard::attention_worker
