// Attention and expert workers' data paths in one process over the in-process data
// plane: a FastModel whose routed experts run on ExpertServers must give logits
// bitwise identical to a single-process FastModel whose experts see the same
// BF16-rounded inputs (--deterministic), for any number of expert workers, with
// replicas, and with several sequences batched together.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "attention_worker/expert_routing.h"
#include "attention_worker/remote_expert_backend.h"
#include "engine/fast_model.h"
#include "engine/kv_cache.h"
#include "expert_worker/expert_server.h"
#include "gtest/gtest.h"
#include "model/checkpoint/checkpoint.h"
#include "model/presets.h"
#include "tools/make_model/random_checkpoint.h"
#include "transport/inproc/inproc_data_plane.h"

namespace yard {
namespace {

using engine::ForwardBatch;
using engine::ForwardSequence;

constexpr transport::PeerId kAttention = 1;
constexpr transport::PeerId kFirstExpertWorker = 100;

struct Checkpoint {
  model::ModelConfig config;
  std::unique_ptr<model::Checkpoint> checkpoint;
};

Checkpoint Write(const char* preset) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + preset;
  model::RandomCheckpointOptions write;
  write.progress = model::ProgressMode::kNever;
  write.overwrite = true;
  EXPECT_TRUE(model::WriteRandomCheckpoint(*model::PresetConfig(preset), dir, write).ok());
  auto opened = model::OpenValidatedCheckpoint(dir, model::ProgressMode::kNever);
  EXPECT_TRUE(opened.ok()) << opened.status();
  return Checkpoint{opened->config, std::move(opened->checkpoint)};
}

std::unique_ptr<engine::PagedLatentCache> MakeCache(const model::ModelConfig& config) {
  engine::KvCacheOptions options;
  options.block_tokens = 16;
  options.num_blocks = 64;
  return *engine::PagedLatentCache::Create(engine::LatentCacheShapeFor(config, false), options);
}

// Runs three sequences of different lengths: a prefill of all three together, then
// `steps` decode steps of all three (inputs: the argmax of `model`'s own logits), and
// returns every logits row in order.
std::vector<float> Run(engine::FastModel& model, engine::PagedLatentCache& cache, int steps) {
  const int64_t vocab = model.config().vocab_size;
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 99, 1024, 7}, {42}, {3, 3, 3, 60000, 8, 1, 2}};
  std::vector<float> all;
  std::vector<int64_t> length(prompts.size());
  std::vector<int32_t> next(prompts.size());
  for (int step = 0; step <= steps; ++step) {
    ForwardBatch batch;
    for (size_t s = 0; s < prompts.size(); ++s) {
      ForwardSequence seq;
      seq.sequence_id = static_cast<engine::SequenceId>(s + 1);
      seq.tokens = step == 0 ? prompts[s] : std::vector<int32_t>{next[s]};
      seq.start_position = length[s];
      EXPECT_TRUE(cache.Reserve(seq.sequence_id, seq.end_position()).ok());
      auto table = cache.BlockTable(seq.sequence_id);
      seq.block_table.assign(table.begin(), table.end());
      seq.needs_logits = true;
      length[s] = seq.end_position();
      batch.sequences.push_back(std::move(seq));
    }
    auto result = model.Forward(batch);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return all;
    all.insert(all.end(), result->logits.begin(), result->logits.end());
    for (size_t s = 0; s < prompts.size(); ++s) {
      const float* row = result->logits.data() + s * vocab;
      next[s] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    }
  }
  for (size_t s = 0; s < prompts.size(); ++s) cache.Free(static_cast<engine::SequenceId>(s + 1));
  return all;
}

struct ClusterShape {
  int expert_workers;
  int replicas;  // copies of every expert, on different workers where possible
};

void CheckClusterMatchesSingleProcess(const char* preset, ClusterShape shape) {
  Checkpoint ckpt = Write(preset);
  const model::ModelConfig& config = ckpt.config;
  engine::FastModelOptions options;
  options.deterministic = true;
  options.max_context = 256;
  options.dispatch_precision = engine::DispatchPrecision::kBf16;

  auto single_cache = MakeCache(config);
  auto single = engine::FastModel::Create(config, *ckpt.checkpoint, *single_cache, options);
  ASSERT_TRUE(single.ok()) << single.status();
  const std::vector<float> want = Run(**single, *single_cache, 12);

  // The cluster: expert e of MoE layer l, replica r, on worker (e + l + r) mod W.
  auto views = engine::BindModelViews(config, *ckpt.checkpoint);
  ASSERT_TRUE(views.ok());
  transport::InprocFabric fabric;
  cluster::Placement placement;
  placement.set_version(1);
  std::vector<std::vector<expert_worker::ExpertServer::SlotLoad>> loads(shape.expert_workers);
  std::vector<bool> moe_layers(config.num_hidden_layers);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    moe_layers[l] = config.IsMoeLayer(l);
    if (!moe_layers[l]) continue;
    cluster::LayerPlacement* layer = placement.add_layers();
    layer->set_layer(static_cast<uint32_t>(l));
    for (int64_t e = 0; e < config.n_routed_experts; ++e) {
      for (int r = 0; r < shape.replicas; ++r) {
        const int w = static_cast<int>((e + l + r) % shape.expert_workers);
        cluster::Slot* slot = layer->add_slots();
        slot->set_worker_id(kFirstExpertWorker + w);
        slot->set_slot(static_cast<uint32_t>(loads[w].size()));
        slot->set_logical_expert(static_cast<uint32_t>(e));
        loads[w].push_back({slot->slot(), static_cast<uint32_t>(l), static_cast<uint32_t>(e)});
      }
    }
  }
  expert_worker::ExpertServerOptions server_options;
  server_options.hidden = static_cast<uint32_t>(config.hidden_size);
  server_options.gemm = engine::GemmOptionsFor(options);
  std::vector<std::unique_ptr<expert_worker::ExpertServer>> servers;
  std::vector<std::unique_ptr<transport::InprocDataPlane>> expert_planes;
  for (int w = 0; w < shape.expert_workers; ++w) {
    server_options.capacity = static_cast<uint32_t>(loads[w].size());
    servers.push_back(std::make_unique<expert_worker::ExpertServer>(*views, server_options));
    expert_worker::ExpertServer* server = servers.back().get();
    ASSERT_TRUE(server->LoadSlots(loads[w]).ok());
    auto plane = transport::InprocDataPlane::Create(
        fabric, kFirstExpertWorker + w,
        transport::DataPlaneHandlers{
            [server](transport::PeerId from, std::vector<uint8_t> m) {
              server->OnDispatch(from, std::move(m));
            },
            [](transport::PeerId, absl::Status) {}});
    ASSERT_TRUE(plane.ok()) << plane.status();
    server->AttachDataPlane(plane->get());
    expert_planes.push_back(std::move(*plane));
  }

  attention_worker::RemoteExpertOptions remote_options;
  remote_options.hidden = config.hidden_size;
  remote_options.dispatch_dtype = transport::WireDType::kBF16;
  std::unique_ptr<attention_worker::RemoteExpertBackend> remote;
  auto attention_plane = transport::InprocDataPlane::Create(
      fabric, kAttention,
      transport::DataPlaneHandlers{
          [&remote](transport::PeerId from, std::vector<uint8_t> m) {
            remote->OnCombine(from, std::move(m));
          },
          [&remote](transport::PeerId peer, absl::Status why) { remote->OnPeerError(peer, why); }});
  ASSERT_TRUE(attention_plane.ok());
  remote = std::make_unique<attention_worker::RemoteExpertBackend>(**attention_plane,
                                                                   remote_options);
  for (int w = 0; w < shape.expert_workers; ++w) {
    const transport::PeerId id = kFirstExpertWorker + w;
    ASSERT_TRUE((*attention_plane)->Connect(id, transport::InprocFabric::AddressOf(id)).ok());
    ASSERT_TRUE(
        expert_planes[w]->Connect(kAttention, transport::InprocFabric::AddressOf(kAttention)).ok());
  }
  auto routing =
      attention_worker::ExpertRouting::FromPlacement(placement, moe_layers, config.n_routed_experts);
  ASSERT_TRUE(routing.ok()) << routing.status();
  remote->SetRouting(std::make_shared<attention_worker::ExpertRouting>(*std::move(routing)));

  auto cluster_cache = MakeCache(config);
  // The attention side runs its batches as two micro-batches in ping-pong, as the
  // attention worker does: the logits must not change by a bit.
  options.micro_batches = 2;
  auto attention =
      engine::FastModel::Create(config, *ckpt.checkpoint, *cluster_cache, options, remote.get());
  ASSERT_TRUE(attention.ok()) << attention.status();
  const std::vector<float> got = Run(**attention, *cluster_cache, 12);

  ASSERT_EQ(got.size(), want.size());
  size_t first_difference = got.size();
  for (size_t i = 0; i < got.size() && first_difference == got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) first_difference = i;
  }
  EXPECT_EQ(first_difference, got.size())
      << "logit " << first_difference << ": cluster " << got[first_difference]
      << ", single process " << want[first_difference];
  uint64_t answered = 0;
  for (auto& s : servers) {
    EXPECT_EQ(s->stats().rejected, 0u);
    answered += s->stats().dispatches;
  }
  EXPECT_GT(answered, 0u);
  EXPECT_EQ(remote->stats().stale_combines, 0u);

  // The servers send on their planes and the planes call into the backend and the
  // servers: detach, then close the planes first.
  for (auto& s : servers) s->AttachDataPlane(nullptr);
  attention_plane->reset();
  expert_planes.clear();
}

TEST(InprocClusterTest, TinyV3OneExpertWorkerMatchesSingleProcess) {
  CheckClusterMatchesSingleProcess("tiny-v3", {1, 1});
}
TEST(InprocClusterTest, TinyV3FourExpertWorkersWithReplicasMatchSingleProcess) {
  CheckClusterMatchesSingleProcess("tiny-v3", {4, 2});
}
TEST(InprocClusterTest, TinyV2TwoExpertWorkersMatchSingleProcess) {
  CheckClusterMatchesSingleProcess("tiny-v2", {2, 1});
}

}  // namespace
}  // namespace yard
