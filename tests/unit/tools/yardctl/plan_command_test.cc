// `yardctl plan`: the trace and placement parsers on malformed input, and the real
// binary end to end: report, --json summary line, --out plan, replanning against it
// with --current, and exit code 1 with a clear message on bad input.
#include "tools/yardctl/plan_command.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/util/run_binary.h"

namespace yard::tools {
namespace {

using coordinator::placement::ExpertLoad;
using coordinator::placement::Phy2Log;
using ::testing::HasSubstr;
using ::yard::testing::RunBinary;
using ::yard::testing::RunResult;

constexpr int kLayers = 58;
constexpr int kExperts = 256;
constexpr int kSlots = 320;
constexpr int kWorkers = 40;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream s(text);
  for (std::string line; std::getline(s, line);) lines.push_back(line);
  return lines;
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = ::yard::testing::TestTmpDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Zipf-skewed tokens per expert, a different hot set per layer; `drift` scales
// each by a factor in [1 - drift, 1 + drift].
std::string ZipfTrace(uint32_t seed, double drift) {
  std::mt19937 rng(seed);
  std::mt19937 noise_rng(seed + 1000);
  std::uniform_real_distribution<double> noise(1 - drift, 1 + drift);
  nlohmann::json load = nlohmann::json::array();
  std::vector<int> rank(kExperts);
  for (int layer = 0; layer < kLayers; ++layer) {
    std::iota(rank.begin(), rank.end(), 1);
    std::shuffle(rank.begin(), rank.end(), rng);
    std::vector<int64_t> row(kExperts);
    for (int e = 0; e < kExperts; ++e) {
      row[e] = std::llround(1e5 / std::pow(rank[e], 1.1) * (drift > 0 ? noise(noise_rng) : 1.0));
    }
    load.push_back(row);
  }
  return nlohmann::json{{"load", load}}.dump();
}

const std::string kPlan = "tools/yardctl/yardctl plan --slots=320 --groups=8 --workers=40";

TEST(ParseLoadTraceTest, ReadsLayersOfNumbers) {
  absl::StatusOr<ExpertLoad> load = ParseLoadTrace(R"({"load": [[1, 2.5, 0], [3, 4, 5]]})");
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(*load, (ExpertLoad{{1, 2.5, 0}, {3, 4, 5}}));
}

TEST(ParseLoadTraceTest, RejectsMalformedTraces) {
  for (const char* text : {
           "",
           "not json",
           "{\"load\": [[1, 2]",
           "[[1, 2]]",
           "{\"tokens\": [[1, 2]]}",
           "{\"load\": 5}",
           "{\"load\": [1, 2]}",
           "{\"load\": [[1, \"2\"]]}",
           "{\"load\": [[1, true]]}",
           "{\"load\": [[1, null]]}",
           "{\"load\": [[1, [2]]]}",
           "{\"load\": [[1, 2], [3]]}",
           "{\"load\": []}",
       }) {
    absl::StatusOr<ExpertLoad> load = ParseLoadTrace(text);
    EXPECT_EQ(load.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_THAT(std::string(ParseLoadTrace("{\"load\": [[1, \"x\"]]}").status().message()),
              HasSubstr("\"load\"[0][1]"));
}

TEST(ParsePlacementTest, RoundTripsAndRejectsNonIntegers) {
  const Phy2Log plan = {{0, 1, 2, 0}, {2, 1, 0, 1}};
  absl::StatusOr<Phy2Log> parsed = ParsePlacement(PlacementJson(plan));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, plan);
  for (const char* text : {"{\"phy2log\": [[0, 1.5]]}", "{\"phy2log\": [[0, 4294967296]]}",
                           "{\"phy2log\": [[0, -4294967296]]}", "{\"phy2log\": [[\"0\"]]}",
                           "{\"phy2log\": {}}", "{}", "[]"}) {
    EXPECT_EQ(ParsePlacement(text).status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(PlanToolTest, PlansATraceAndWritesThePlan) {
  const std::string trace = WriteFile("trace.json", ZipfTrace(1, 0));
  const std::string out = ::yard::testing::TestTmpDir() + "/plan.json";
  RunResult r = RunBinary(kPlan + " --nodes=4 --json --trace=" + trace + " --out=" + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_GT(lines.size(), static_cast<size_t>(kLayers)) << r.out;  // a line per layer
  EXPECT_THAT(r.out, HasSubstr("hierarchical policy"));

  const nlohmann::json summary = nlohmann::json::parse(lines.back(), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << lines.back();
  ASSERT_TRUE(summary["imbalance_before"].is_number()) << lines.back();
  ASSERT_TRUE(summary["imbalance_after"].is_number()) << lines.back();
  ASSERT_TRUE(summary["slots_changed"].is_number_integer()) << lines.back();
  ASSERT_TRUE(summary["time_ms"].is_number()) << lines.back();
  const double before = summary["imbalance_before"].get<double>();
  const double after = summary["imbalance_after"].get<double>();
  std::cout << "yardctl plan: " << lines.back() << "\n";
  EXPECT_GT(before, 3.0);  // identity placement under a Zipf load
  EXPECT_LT(after, before / 3);
  EXPECT_GE(after, 1.0);
  EXPECT_GT(summary["slots_changed"].get<int64_t>(), 0);
  EXPECT_LE(summary["slots_changed"].get<int64_t>(), kLayers * kSlots);
  EXPECT_GE(summary["time_ms"].get<double>(), 0.0);

  absl::StatusOr<Phy2Log> plan = ParsePlacement(::yard::testing::ReadWholeFile(out));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->size(), static_cast<size_t>(kLayers));
  for (const auto& row : *plan) {
    ASSERT_EQ(row.size(), static_cast<size_t>(kSlots));
    std::vector<int> replicas(kExperts, 0);
    for (int32_t e : row) {
      ASSERT_TRUE(e >= 0 && e < kExperts) << e;
      ++replicas[e];
    }
    for (int c : replicas) EXPECT_GE(c, 1);
  }
  absl::StatusOr<ExpertLoad> load = ParseLoadTrace(::yard::testing::ReadWholeFile(trace));
  ASSERT_TRUE(load.ok());
  absl::StatusOr<std::vector<double>> factors =
      coordinator::placement::LayerImbalance(*load, *plan, kWorkers);
  ASSERT_TRUE(factors.ok()) << factors.status();
  EXPECT_NEAR(coordinator::placement::MeanImbalance(*factors), after, 1e-6);
}

TEST(PlanToolTest, ReplanAgainstCurrentMovesFewSlots) {
  const std::string trace = WriteFile("trace_a.json", ZipfTrace(2, 0));
  const std::string drifted = WriteFile("trace_b.json", ZipfTrace(2, 0.05));
  const std::string first = ::yard::testing::TestTmpDir() + "/first.json";
  RunResult r = RunBinary(kPlan + " --nodes=40 --trace=" + trace + " --out=" + first);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("global policy"));

  r = RunBinary(kPlan + " --nodes=40 --json --trace=" + drifted + " --current=" + first);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json sticky = nlohmann::json::parse(Lines(r.out).back(), nullptr, false);
  r = RunBinary(kPlan + " --nodes=40 --json --trace=" + drifted);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json fresh = nlohmann::json::parse(Lines(r.out).back(), nullptr, false);
  ASSERT_TRUE(sticky.is_object() && fresh.is_object());
  std::cout << "yardctl plan --current: " << sticky.dump() << "\n";
  // Before is now the current plan: balanced already, and little needs to move.
  EXPECT_LT(sticky["imbalance_before"].get<double>(), 1.1);
  EXPECT_LT(sticky["slots_changed"].get<int64_t>(), kLayers * kSlots / 20);
  EXPECT_LE(sticky["imbalance_after"].get<double>(),
            fresh["imbalance_after"].get<double>() * 1.05 + 1e-9);
}

TEST(PlanToolTest, BadInputExitsWithOne) {
  const std::string good = WriteFile("good.json", ZipfTrace(3, 0));
  struct Case {
    std::string flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--nodes=4 --trace=" + WriteFile("garbage.json", "{\"load\": [[1, 2"), "not valid JSON"},
      {"--nodes=4 --trace=" + WriteFile("ragged.json", "{\"load\": [[1, 2], [3]]}"),
       "\"load\"[1] has 1 experts"},
      {"--nodes=4 --trace=" + WriteFile("negative.json", "{\"load\": [[1, -2]]}"),
       "expert 1 is -2"},
      {"--nodes=4 --trace=" + WriteFile("strings.json", "{\"load\": [[\"a\"]]}"), "not numbers"},
      {"--nodes=4 --trace=" + ::yard::testing::TestTmpDir() + "/missing.json", "cannot open"},
      {"--nodes=4", "--trace is required"},
      {"--nodes=3 --trace=" + good, "not divisible by num_nodes"},
      {"--nodes=4 --groups=7 --trace=" + good, "does not divide"},
      {"--nodes=4 --trace=" + good +
           " --current=" + WriteFile("short.json", "{\"phy2log\": [[0]]}"),
       "current placement has 1 layers"},
      {"--nodes=4 --trace=" + good + " --current=" + WriteFile("notplan.json", "[1, 2]"),
       "\"phy2log\""},
  };
  for (const Case& c : cases) {
    RunResult r = RunBinary(kPlan + " " + c.flags);
    EXPECT_EQ(r.exit_code, 1) << c.flags << "\n" << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("error:")) << c.flags;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.flags;
  }
  // Slots below the experts, and slots that do not split over the workers.
  RunResult r = RunBinary("tools/yardctl/yardctl plan --slots=200 --workers=40 --trace=" + good);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("below the 256 experts"));
  r = RunBinary("tools/yardctl/yardctl plan --slots=300 --workers=40 --trace=" + good);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not divisible by num_workers"));
}

}  // namespace
}  // namespace yard::tools
