// ExpertServer over the in-process data plane (and, where a test must hold the
// compute thread still, over a fake data plane whose Send waits on a gate).
#include "expert_worker/expert_server.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/grouped_experts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/expert_worker/test_experts.h"
#include "transport/data_plane.h"
#include "transport/inproc/inproc_data_plane.h"
#include "transport/wire_format.h"

namespace yard::expert_worker {
namespace {

using fixture::kExperts;
using fixture::kHidden;
using fixture::TestExperts;
using transport::PeerId;
using transport::TokenRoute;
using ::testing::ElementsAre;
using transport::WireDType;

constexpr PeerId kAttention = 1;
constexpr PeerId kServer = 100;
// A bound on every wait for something the test caused; reaching it fails the test.
constexpr auto kPatience = std::chrono::seconds(20);

ExpertServerOptions Options(uint32_t capacity = 4) {
  ExpertServerOptions o;
  o.hidden = kHidden;
  o.capacity = capacity;
  o.gemm.precision = kernels::cpu::ActivationPrecision::kFp32;  // batch-invariant
  return o;
}

std::vector<float> RandomRows(int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(rows * kHidden);
  for (float& v : x) v = d(rng);
  return x;
}

std::vector<uint8_t> Dispatch(uint32_t layer, const std::vector<TokenRoute>& routes,
                              const std::vector<float>& x, uint64_t step = 1,
                              WireDType dtype = WireDType::kFP32, uint32_t hidden = kHidden) {
  transport::MessageHeader h;
  h.kind = transport::MessageKind::kDispatch;
  h.step_id = step;
  h.layer = layer;
  h.sender = kAttention;
  h.token_count = static_cast<uint32_t>(routes.size());
  h.hidden = hidden;
  h.dtype = dtype;
  return transport::EncodeDispatch(h, routes, x);
}

// A decoded combine with its values as FP32.
struct Combine {
  PeerId from = 0;
  std::vector<uint8_t> bytes;
  transport::MessageHeader header;
  std::vector<TokenRoute> routes;
  std::vector<float> values;  // [T, kHidden]
};

Combine DecodeCombine(PeerId from, std::vector<uint8_t> bytes) {
  Combine c;
  c.from = from;
  c.bytes = std::move(bytes);
  absl::StatusOr<transport::DecodedMessage> m = transport::Decode(c.bytes, {});
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return c;
  c.header = m->header;
  for (uint32_t i = 0; i < m->header.token_count; ++i) c.routes.push_back(m->route(i));
  c.values.resize(static_cast<size_t>(m->header.token_count) * m->header.hidden);
  m->ValuesToF32(absl::MakeSpan(c.values));
  return c;
}

// What the server must answer for row `x` in `slot_expert` (layer, expert): the same
// grouped kernel on that row alone (batch-invariant with FP32 activations), which must
// also agree with plain loops in double.
std::vector<float> Expected(const TestExperts& experts, int layer, int expert, const float* x) {
  engine::GroupedSwiGlu grouped(Options().gemm);
  std::vector<const engine::SwiGluViews*> candidates = {&experts.expert(layer, expert)};
  std::vector<const float*> rows = {x};
  std::vector<int32_t> expert_of_row = {0};
  std::vector<float> out(kHidden);
  grouped.Run(candidates, rows, expert_of_row, {}, kHidden, out.data());
  const std::vector<double> reference = experts.Reference(layer, expert, x);
  for (int64_t c = 0; c < kHidden; ++c) {
    EXPECT_NEAR(out[c], reference[c], 1e-4 * (1 + std::abs(reference[c])));
  }
  return out;
}

void ExpectBitwiseEqual(const float* got, const std::vector<float>& want, const std::string& what) {
  for (size_t c = 0; c < want.size(); ++c) {
    EXPECT_EQ(std::memcmp(&got[c], &want[c], sizeof(float)), 0)
        << what << " element " << c << ": got " << got[c] << ", want " << want[c];
  }
}

// The attention side of an in-process cluster: an endpoint that collects combines.
class InprocHarness {
 public:
  InprocHarness(const TestExperts& experts, const ExpertServerOptions& options)
      : server_(std::make_unique<ExpertServer>(experts.views(), options)) {
    ExpertServer* server = server_.get();
    auto plane = transport::InprocDataPlane::Create(
        fabric_, kServer,
        transport::DataPlaneHandlers{
            [server](PeerId from, std::vector<uint8_t> m) { server->OnDispatch(from, std::move(m)); },
            [](PeerId, absl::Status) {}});
    EXPECT_TRUE(plane.ok()) << plane.status();
    server_plane_ = *std::move(plane);
    server_->AttachDataPlane(server_plane_.get());
    auto attention = transport::InprocDataPlane::Create(
        fabric_, kAttention,
        transport::DataPlaneHandlers{
            [this](PeerId from, std::vector<uint8_t> m) {
              std::lock_guard<std::mutex> lock(mu_);
              received_.push_back(DecodeCombine(from, std::move(m)));
              arrived_.notify_all();
            },
            [](PeerId, absl::Status) {}});
    EXPECT_TRUE(attention.ok()) << attention.status();
    attention_plane_ = *std::move(attention);
    EXPECT_TRUE(attention_plane_->Connect(kServer, transport::InprocFabric::AddressOf(kServer)).ok());
    EXPECT_TRUE(
        server_plane_->Connect(kAttention, transport::InprocFabric::AddressOf(kAttention)).ok());
  }
  ~InprocHarness() {
    // The server sends on its plane and the planes call into the server: detach, then
    // close the planes, then stop the server.
    server_->AttachDataPlane(nullptr);
    attention_plane_.reset();
    server_plane_.reset();
    server_.reset();
  }

  ExpertServer& server() { return *server_; }

  void Send(std::vector<uint8_t> message) {
    attention_plane_->Send(kServer, std::make_shared<const std::vector<uint8_t>>(std::move(message)),
                           [](absl::Status s) { EXPECT_TRUE(s.ok()) << s; });
  }
  // Sends and returns how the send completed.
  absl::Status SendAndWait(std::vector<uint8_t> message) {
    auto done = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> status = done->get_future();
    attention_plane_->Send(kServer, std::make_shared<const std::vector<uint8_t>>(std::move(message)),
                           [done](absl::Status s) { done->set_value(s); });
    return status.get();
  }

  // Waits until `n` combines have arrived in all; returns them.
  std::vector<Combine> WaitForCombines(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(arrived_.wait_for(lock, kPatience, [&] { return received_.size() >= n; }))
        << "got " << received_.size() << " combines, want " << n;
    return received_;
  }

  // Returns once the compute thread has finished every batch it took before now (a
  // slot call runs on the compute thread between batches), so stats are current.
  void Barrier() { server_->SlotsUsed(); }

 private:
  transport::InprocFabric fabric_;
  std::unique_ptr<ExpertServer> server_;
  std::unique_ptr<transport::InprocDataPlane> server_plane_;
  std::unique_ptr<transport::InprocDataPlane> attention_plane_;
  std::mutex mu_;
  std::condition_variable arrived_;
  std::vector<Combine> received_;
};

TEST(ExpertServerTest, DispatchToLoadedSlotsGetsCombineWithRoutesInOrderAndExpertOutputs) {
  TestExperts experts;
  InprocHarness h(experts, Options());
  // slot 0: layer 1 expert 2; slot 1: layer 1 expert 0; slot 3: layer 2 expert 1.
  ASSERT_TRUE(h.server().LoadSlots({{0, 1, 2}, {1, 1, 0}, {3, 2, 1}}).ok());
  EXPECT_EQ(h.server().SlotsUsed(), 3u);

  const std::vector<TokenRoute> routes = {{1, 7}, {0, 3}, {1, 0}, {0, 12}, {0, 5}};
  const std::vector<float> x = RandomRows(5, 11);
  h.Send(Dispatch(1, routes, x, /*step=*/42));
  const std::vector<Combine> got = h.WaitForCombines(1);
  ASSERT_EQ(got.size(), 1u);
  const Combine& c = got[0];
  EXPECT_EQ(c.from, kServer);
  EXPECT_EQ(c.header.kind, transport::MessageKind::kCombine);
  EXPECT_EQ(c.header.step_id, 42u);
  EXPECT_EQ(c.header.layer, 1u);
  EXPECT_EQ(c.header.sender, kServer);
  EXPECT_EQ(c.header.dtype, WireDType::kFP32);
  EXPECT_EQ(c.header.hidden, kHidden);
  EXPECT_EQ(c.routes, routes);
  ASSERT_EQ(c.values.size(), routes.size() * kHidden);
  const int expert_of_slot[] = {2, 0};
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::vector<float> want =
        Expected(experts, 1, expert_of_slot[routes[i].slot], &x[i * kHidden]);
    ExpectBitwiseEqual(&c.values[i * kHidden], want, "row " + std::to_string(i));
  }

  h.Barrier();
  const ExpertServerStats stats = h.server().stats();
  EXPECT_EQ(stats.dispatches, 1u);
  EXPECT_EQ(stats.tokens, 5u);
  EXPECT_EQ(stats.rejected, 0u);
  EXPECT_EQ(stats.send_failures, 0u);
}

// Default (kAuto) matmuls: the rows the dispatch marks as prefill (token index below
// its prefill rows) take BF16 activations once there are bf16_min_rows of them; the
// decode rows after them keep FP32, as in the single-process engine. (Below AVX-512
// kBf16 runs as kFp32, and every row must equal its FP32 result.)
TEST(ExpertServerTest, PrefillRowsTakeBf16AndDecodeRowsKeepFp32) {
  TestExperts experts;
  ExpertServerOptions options = Options();
  options.gemm.precision = kernels::cpu::ActivationPrecision::kAuto;
  options.gemm.bf16_min_rows = 4;
  InprocHarness h(experts, options);
  ASSERT_TRUE(h.server().LoadSlots({{0, 1, 2}}).ok());
  std::vector<TokenRoute> routes;
  for (uint32_t t = 0; t < 8; ++t) routes.push_back({0, t});
  const std::vector<float> x = RandomRows(8, 21);
  std::vector<uint8_t> dispatch = Dispatch(1, routes, x);
  transport::MessageHeader header = transport::Decode(dispatch, {})->header;
  header.prefill_rows = 5;  // rows 0-4 prefill, 5-7 decode
  h.Send(transport::EncodeDispatch(header, routes, x));
  const std::vector<Combine> got = h.WaitForCombines(1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].values.size(), 8 * kHidden);
  for (int64_t i = 0; i < 8; ++i) {
    kernels::cpu::GemmOptions alone;
    alone.precision = i < 5 ? kernels::cpu::ActivationPrecision::kBf16
                            : kernels::cpu::ActivationPrecision::kFp32;
    engine::GroupedSwiGlu grouped(alone);
    const float* row = &x[i * kHidden];
    const engine::SwiGluViews* expert = &experts.expert(1, 2);
    const int32_t zero = 0;
    std::vector<float> want(kHidden);
    grouped.Run(absl::MakeConstSpan(&expert, 1), absl::MakeConstSpan(&row, 1),
                absl::MakeConstSpan(&zero, 1), {}, kHidden, want.data());
    ExpectBitwiseEqual(&got[0].values[i * kHidden], want, "row " + std::to_string(i));
  }
}

TEST(ExpertServerTest, Bf16CombineCarriesRoundedOutputs) {
  TestExperts experts;
  ExpertServerOptions options = Options();
  options.combine_dtype = WireDType::kBF16;
  InprocHarness h(experts, options);
  ASSERT_TRUE(h.server().LoadSlots({{0, 2, 1}}).ok());
  const std::vector<float> x = RandomRows(2, 5);
  h.Send(Dispatch(2, {{0, 0}, {0, 1}}, x));
  const std::vector<Combine> got = h.WaitForCombines(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.dtype, WireDType::kBF16);
  for (int i = 0; i < 2; ++i) {
    const std::vector<float> want = Expected(experts, 2, 1, &x[i * kHidden]);
    for (int64_t c = 0; c < kHidden; ++c) {
      EXPECT_EQ(got[0].values[i * kHidden + c],
                transport::Bf16ToF32(transport::F32ToBf16(want[c])));
    }
  }
}

TEST(ExpertServerTest, MisroutedDispatchesAreDroppedAndCountedWhileGoodOnesAreAnswered) {
  TestExperts experts;
  ExpertServerOptions options = Options(/*capacity=*/4);
  options.dispatch_dtype = WireDType::kFP32;
  InprocHarness h(experts, options);
  ASSERT_TRUE(h.server().LoadSlots({{0, 1, 0}, {1, 2, 0}}).ok());  // slot 2 and 3 free
  const std::vector<float> x = RandomRows(1, 3);

  int bad = 0;
  h.Send(Dispatch(1, {{2, 0}}, x));  // slot 2 not loaded
  ++bad;
  h.Send(Dispatch(1, {{0, 0}, {1, 1}}, RandomRows(2, 6)));  // slot 1 holds layer 2
  ++bad;
  h.Send(Dispatch(2, {{0, 0}}, x));  // slot 0 holds layer 1
  ++bad;
  h.Send(Dispatch(1, {{0, 0}}, x, 1, WireDType::kBF16));  // not the cluster's dispatch dtype
  ++bad;

  // A good one after all of them is still answered, and it is the only answer.
  h.Send(Dispatch(1, {{0, 4}}, x, /*step=*/77));
  const std::vector<Combine> got = h.WaitForCombines(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.step_id, 77u);
  ExpectBitwiseEqual(got[0].values.data(), Expected(experts, 1, 0, x.data()), "good row");

  h.Barrier();
  const ExpertServerStats stats = h.server().stats();
  EXPECT_EQ(stats.rejected, static_cast<uint64_t>(bad));
  EXPECT_EQ(stats.distrusted, 0u);
  EXPECT_EQ(stats.dispatches, 1u);
  EXPECT_EQ(stats.tokens, 1u);
  // Nothing else was sent for the rejected ones.
  EXPECT_EQ(h.WaitForCombines(1).size(), 1u);
}

TEST(ExpertServerTest, ASenderOfAMalformedMessageIsDisconnectedAndNotHeardAgain) {
  const std::vector<float> x = RandomRows(1, 3);
  std::vector<uint8_t> truncated = Dispatch(1, {{0, 0}}, x);
  truncated.pop_back();
  transport::MessageHeader combine;
  combine.layer = 1;
  combine.token_count = 1;
  combine.hidden = kHidden;
  combine.dtype = WireDType::kFP32;
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> malformed = {
      {"garbage bytes", {1, 2, 3, 4, 5}},
      {"empty", {}},
      {"truncated", truncated},
      {"narrower hidden size",
       Dispatch(1, {{0, 0}}, std::vector<float>(kHidden / 2, 0.5f), 1, WireDType::kFP32,
                kHidden / 2)},
      {"wider hidden size",
       Dispatch(1, {{0, 0}}, std::vector<float>(kHidden * 2, 0.5f), 1, WireDType::kFP32,
                kHidden * 2)},
      {"slot beyond the capacity", Dispatch(1, {{9, 0}}, x)},
      {"a combine", transport::EncodeCombine(combine, std::vector<TokenRoute>{{0, 0}}, x)},
  };
  for (const auto& [name, message] : malformed) {
    TestExperts experts;
    InprocHarness h(experts, Options(/*capacity=*/4));
    ASSERT_TRUE(h.server().LoadSlots({{0, 1, 0}}).ok());
    h.Send(message);
    for (int i = 0; i < 500 && h.server().stats().distrusted < 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(h.server().stats().distrusted, 1u) << name;
    // The connection is closed; a well-formed dispatch after it does not get through
    // (and would be dropped unread if the transport still delivered it).
    const absl::Status sent = h.SendAndWait(Dispatch(1, {{0, 0}}, x));
    EXPECT_EQ(sent.code(), absl::StatusCode::kUnavailable) << name << ": " << sent;
    h.Barrier();
    const ExpertServerStats stats = h.server().stats();
    EXPECT_EQ(stats.dispatches, 0u) << name;
  }
}

TEST(ExpertServerTest, AnyDispatchDtypeIsAcceptedWithoutAConfiguredOne) {
  TestExperts experts;
  InprocHarness h(experts, Options());  // dispatch_dtype unset
  ASSERT_TRUE(h.server().LoadSlots({{0, 1, 1}}).ok());
  // Values exact in BF16, so the expert sees the same input either way.
  std::vector<float> x(kHidden);
  for (int64_t c = 0; c < kHidden; ++c) x[c] = 0.25f * static_cast<float>(c - 3);
  h.Send(Dispatch(1, {{0, 0}}, x, 1, WireDType::kBF16));
  h.Send(Dispatch(1, {{0, 0}}, x, 2, WireDType::kFP8E4M3));
  const std::vector<Combine> got = h.WaitForCombines(2);
  ASSERT_EQ(got.size(), 2u);
  ExpectBitwiseEqual(got[0].values.data(), Expected(experts, 1, 1, x.data()), "bf16 dispatch");
  h.Barrier();
  EXPECT_EQ(h.server().stats().rejected, 0u);
}

TEST(ExpertServerTest, LoadSlotsErrorsAreReturnedAndStopTheList) {
  TestExperts experts;
  InprocHarness h(experts, Options(/*capacity=*/2));
  EXPECT_EQ(h.server().LoadSlots({{2, 1, 0}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.server().LoadSlots({{0, 0, 0}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.server().LoadSlots({{0, 1, kExperts}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.server().SlotsUsed(), 0u);
  // Every expert is checked (and prefetched) before any slot changes: a bad expert
  // anywhere in the list loads nothing.
  EXPECT_EQ(h.server().LoadSlots({{0, 1, 0}, {1, 7, 0}, {1, 1, 1}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.server().SlotsUsed(), 0u);
  // A slot error stops the list: slot 0 is loaded, then slot 9 is beyond the capacity.
  EXPECT_EQ(h.server().LoadSlots({{0, 1, 0}, {9, 1, 0}, {1, 1, 1}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(h.server().SlotsUsed(), 1u);
  EXPECT_EQ(h.server().LoadSlots({{0, 1, 1}}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(h.server().LoadSlots({{0, 1, 0}}).ok());  // the same expert again
  EXPECT_EQ(h.server().ReleaseSlots({5}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(h.server().ReleaseSlots({0, 1}).ok());
  EXPECT_EQ(h.server().SlotsUsed(), 0u);
}

TEST(ExpertServerTest, LoadedSlotsListsTheHeldSlotsAndReleaseOthersFreesTheRest) {
  TestExperts experts;
  InprocHarness h(experts, Options(/*capacity=*/4));
  ASSERT_TRUE(h.server().LoadSlots({{3, 2, 1}, {0, 1, 0}, {1, 1, 1}}).ok());
  auto held = [&] {
    std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> out;
    for (const ExpertServer::SlotLoad& l : h.server().LoadedSlots()) {
      out.emplace_back(l.slot, l.layer, l.logical_expert);
    }
    return out;
  };
  EXPECT_THAT(held(), ElementsAre(std::make_tuple(0u, 1u, 0u), std::make_tuple(1u, 1u, 1u),
                                  std::make_tuple(3u, 2u, 1u)));
  // A coordinator's first placement: slot 0 keeps its expert, slot 1 gets another one
  // (it held something else), slots 2 and 3 are freed.
  ASSERT_TRUE(h.server().LoadSlots({{0, 1, 0}, {1, 2, 0}}, /*release_others=*/true).ok());
  EXPECT_THAT(held(), ElementsAre(std::make_tuple(0u, 1u, 0u), std::make_tuple(1u, 2u, 0u)));
  // Without it, a slot holding another expert is refused as before.
  EXPECT_EQ(h.server().LoadSlots({{1, 1, 1}}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ExpertServerTest, ReleasedSlotNoLongerAnswers) {
  TestExperts experts;
  InprocHarness h(experts, Options());
  ASSERT_TRUE(h.server().LoadSlots({{0, 1, 0}, {1, 1, 1}}).ok());
  ASSERT_TRUE(h.server().ReleaseSlots({0}).ok());
  const std::vector<float> x = RandomRows(1, 9);
  h.Send(Dispatch(1, {{0, 0}}, x, 1));  // released: rejected
  h.Send(Dispatch(1, {{1, 0}}, x, 2));
  const std::vector<Combine> got = h.WaitForCombines(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header.step_id, 2u);
  h.Barrier();
  EXPECT_EQ(h.server().stats().rejected, 1u);
}

// A data plane whose Send records the message and then waits until the gate opens,
// holding the server's compute thread still so that dispatches pile up in its inbox.
class GatedDataPlane : public transport::DataPlaneInterface {
 public:
  PeerId self() const override { return kServer; }
  std::string LocalAddress() const override { return "gated"; }
  absl::Status SetSelf(PeerId) override { return absl::OkStatus(); }
  absl::Status Connect(PeerId, const std::string&) override { return absl::OkStatus(); }
  void Disconnect(PeerId) override {}
  void Send(PeerId peer, transport::Payload message, transport::SendDone done) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      sent_.push_back(DecodeCombine(peer, *message));
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_; });
    }
    done(absl::OkStatus());
  }

  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  std::vector<Combine> WaitForSends(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(changed_.wait_for(lock, kPatience, [&] { return sent_.size() >= n; }))
        << "got " << sent_.size() << " sends, want " << n;
    return sent_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool open_ = false;
  std::vector<Combine> sent_;
};

TEST(ExpertServerTest, FullInboxDropsAndCountsOverflow) {
  TestExperts experts;
  ExpertServerOptions options = Options();
  options.max_queued = 2;
  GatedDataPlane plane;
  {
    ExpertServer server(experts.views(), options);
    server.AttachDataPlane(&plane);
    ASSERT_TRUE(server.LoadSlots({{0, 1, 0}}).ok());
    const std::vector<float> x = RandomRows(1, 1);
    server.OnDispatch(kAttention, Dispatch(1, {{0, 0}}, x, 1));
    plane.WaitForSends(1);  // the compute thread is now held in Send
    for (uint64_t step = 2; step <= 5; ++step) {
      server.OnDispatch(kAttention, Dispatch(1, {{0, 0}}, x, step));  // 2, 3 fit; 4, 5 do not
    }
    EXPECT_EQ(server.stats().overflowed, 2u);
    plane.Open();
    const std::vector<Combine> sent = plane.WaitForSends(3);
    ASSERT_EQ(sent.size(), 3u);
    EXPECT_EQ(sent[0].header.step_id, 1u);
    EXPECT_EQ(sent[1].header.step_id, 2u);
    EXPECT_EQ(sent[2].header.step_id, 3u);
    server.SlotsUsed();  // the batch is done
    const ExpertServerStats stats = server.stats();
    EXPECT_EQ(stats.overflowed, 2u);
    EXPECT_EQ(stats.dispatches, 3u);
    EXPECT_EQ(stats.rejected, 0u);
  }
  EXPECT_EQ(plane.WaitForSends(3).size(), 3u);  // nothing for the dropped ones
}

TEST(ExpertServerTest, DispatchesArrivingTogetherAreBatchedAndEachAnsweredCorrectly) {
  TestExperts experts;
  GatedDataPlane plane;
  ExpertServer server(experts.views(), Options());
  server.AttachDataPlane(&plane);
  // Layer 1: slots 0, 1; layer 2: slot 2.
  ASSERT_TRUE(server.LoadSlots({{0, 1, 0}, {1, 1, 2}, {2, 2, 1}}).ok());
  const std::vector<float> warm = RandomRows(1, 1);
  server.OnDispatch(kAttention, Dispatch(1, {{0, 0}}, warm, 1));
  plane.WaitForSends(1);  // compute thread held: the next three arrive together

  const std::vector<float> a = RandomRows(3, 21), b = RandomRows(2, 22), c = RandomRows(2, 23);
  const std::vector<TokenRoute> routes_a = {{1, 0}, {0, 1}, {1, 2}};
  const std::vector<TokenRoute> routes_b = {{0, 5}, {1, 4}};
  const std::vector<TokenRoute> routes_c = {{2, 1}, {2, 0}};
  server.OnDispatch(2, Dispatch(1, routes_a, a, 10));
  server.OnDispatch(3, Dispatch(2, routes_c, c, 30));
  server.OnDispatch(4, Dispatch(1, routes_b, b, 20));
  plane.Open();
  const std::vector<Combine> sent = plane.WaitForSends(4);
  ASSERT_EQ(sent.size(), 4u);
  server.SlotsUsed();
  const ExpertServerStats stats = server.stats();
  EXPECT_EQ(stats.batches, 2u) << "the three waiting dispatches should form one batch";
  EXPECT_EQ(stats.dispatches, 4u);
  EXPECT_EQ(stats.tokens, 1u + 3u + 2u + 2u);

  const int expert_of_slot[] = {0, 2, 1};
  const int layer_of_slot[] = {1, 1, 2};
  struct Want {
    PeerId to;
    uint64_t step;
    const std::vector<TokenRoute>* routes;
    const std::vector<float>* x;
  };
  for (const Want& w : {Want{2, 10, &routes_a, &a}, Want{4, 20, &routes_b, &b},
                        Want{3, 30, &routes_c, &c}}) {
    const Combine* found = nullptr;
    for (const Combine& s : sent) {
      if (s.header.step_id == w.step) found = &s;
    }
    ASSERT_NE(found, nullptr) << "no combine for step " << w.step;
    EXPECT_EQ(found->from, w.to) << "step " << w.step << " answered to the wrong peer";
    EXPECT_EQ(found->routes, *w.routes);
    ASSERT_EQ(found->values.size(), w.routes->size() * kHidden);
    for (size_t i = 0; i < w.routes->size(); ++i) {
      const uint32_t slot = (*w.routes)[i].slot;
      ExpectBitwiseEqual(&found->values[i * kHidden],
                         Expected(experts, layer_of_slot[slot], expert_of_slot[slot],
                                  &(*w.x)[i * kHidden]),
                         "step " + std::to_string(w.step) + " row " + std::to_string(i));
    }
  }
}

TEST(ExpertServerTest, WithoutADataPlaneAnswersCountAsSendFailures) {
  TestExperts experts;
  ExpertServer server(experts.views(), Options());
  ASSERT_TRUE(server.LoadSlots({{0, 1, 0}}).ok());
  server.OnDispatch(kAttention, Dispatch(1, {{0, 0}}, RandomRows(1, 2)));
  // A slot call runs between batches: the first may run before the batch (both taken
  // in one wake), the second is queued while the batch is taken or running, so after
  // it the batch is done.
  server.SlotsUsed();
  server.SlotsUsed();
  EXPECT_EQ(server.stats().dispatches, 1u);
  EXPECT_EQ(server.stats().send_failures, 1u);
}

}  // namespace
}  // namespace yard::expert_worker
