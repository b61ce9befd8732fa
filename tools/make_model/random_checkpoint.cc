#include "tools/make_model/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/checkpoint/checkpoint.h"
#include "model/checkpoint/dtype.h"
#include "model/checkpoint/safetensors.h"
#include "nlohmann/json.hpp"

namespace yard::model {
namespace {

namespace fs = std::filesystem;

constexpr float kFp8Max = 448.0f;
// Values are generated and converted this many at a time (BF16 / F32 tensors).
constexpr int64_t kChunkElements = int64_t{1} << 20;
constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json"};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a64(absl::string_view text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

// Normal samples from xoshiro256** + Box-Muller, seeded by (seed, tensor name) alone so
// a tensor's values do not depend on which tensors were written before it.
class NormalGenerator {
 public:
  NormalGenerator(uint64_t seed, absl::string_view name) {
    uint64_t name_state = Fnv1a64(name);
    uint64_t mix = seed ^ SplitMix64(name_state);
    for (uint64_t& word : s_) word = SplitMix64(mix);
  }

  // One standard normal sample.
  float Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // One 64-bit draw gives both uniforms; u1 in (0, 1] so the log is finite. Float
    // math is plenty for weights stored in 16 bits or less, and twice as fast.
    const uint64_t bits = NextBits();
    const float u1 = static_cast<float>((bits >> 40) + 1) * 0x1p-24f;
    const float u2 = static_cast<float>((bits >> 8) & 0xFFFFFFu) * 0x1p-24f;
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float angle = 6.2831853f * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t NextBits() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  uint64_t s_[4];
  float spare_ = 0.0f;
  bool has_spare_ = false;
};

// Streams one tensor's values in row-major order (see RandomWeightValues).
class WeightValues {
 public:
  WeightValues(const WeightSpec& spec, uint64_t seed) : rng_(seed, spec.name) {
    if (spec.always_fp32) {
      stddev_ = 0.1f;
    } else if (spec.shape.size() == 1) {
      mean_ = 1.0f;  // RMSNorm weights: near identity, not near zero
    }
  }

  void Fill(float* out, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      out[i] = mean_ + stddev_ * rng_.Next();
    }
  }

 private:
  NormalGenerator rng_;
  float mean_ = 0.0f;
  float stddev_ = 0.02f;
};

// One weight as stored: its dtype, and for FP8 the scale tensor written right after it.
struct PlannedWeight {
  WeightSpec spec;
  DType dtype;
  bool fp8 = false;
  std::vector<int64_t> scale_shape;  // when fp8

  uint64_t bytes() const {
    uint64_t n = NumElements(spec.shape) * DTypeSize(dtype);
    if (fp8) n += NumElements(scale_shape) * DTypeSize(DType::kF32);
    return n;
  }
};

struct Shard {
  std::string file_name;
  std::vector<const PlannedWeight*> weights;
  uint64_t bytes = 0;
};

std::vector<Shard> PlanShards(const std::vector<PlannedWeight>& weights,
                              uint64_t max_shard_bytes) {
  std::vector<Shard> shards(1);
  for (const PlannedWeight& w : weights) {
    if (!shards.back().weights.empty() &&
        shards.back().bytes + w.bytes() > max_shard_bytes) {
      shards.emplace_back();
    }
    shards.back().weights.push_back(&w);
    shards.back().bytes += w.bytes();
  }
  if (shards.size() == 1) {
    shards[0].file_name = std::string(kSingleFileName);
  } else {
    for (size_t i = 0; i < shards.size(); ++i) {
      shards[i].file_name =
          absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    }
  }
  return shards;
}

absl::Status FsError(absl::string_view what, const fs::path& path,
                     const std::error_code& ec) {
  return absl::InternalError(absl::StrCat(path.string(), ": ", what, ": ", ec.message()));
}

// Removes what a previous run may have written, and nothing else.
absl::Status RemoveOldCheckpointFiles(const fs::path& dir) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours =
        name == "config.json" || name == kIndexFileName || name == "tokenizer.json" ||
        name == "tokenizer_config.json" ||
        (absl::StartsWith(name, "model") && (absl::EndsWith(name, ".safetensors") ||
                                             absl::EndsWith(name, ".safetensors.tmp")));
    if (!ours) continue;
    std::error_code remove_ec;
    if (!fs::remove(entry.path(), remove_ec) && remove_ec) {
      return FsError("cannot remove", entry.path(), remove_ec);
    }
  }
  if (ec) return FsError("cannot list", dir, ec);
  return absl::OkStatus();
}

absl::Status PrepareDir(const fs::path& dir, bool overwrite) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir.string(), " exists and is not a directory"));
    }
    if (!fs::is_empty(dir, ec)) {
      if (!overwrite) {
        return absl::FailedPreconditionError(absl::StrCat(
            dir.string(), " exists and is not empty (use --force to overwrite)"));
      }
      return RemoveOldCheckpointFiles(dir);
    }
    return absl::OkStatus();
  }
  if (!fs::create_directories(dir, ec) && ec) return FsError("cannot create", dir, ec);
  return absl::OkStatus();
}

absl::Status WriteTextFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

absl::Status CopyTokenizer(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  for (const char* name : kTokenizerFiles) {
    if (!fs::exists(from / name, ec)) continue;
    fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return FsError("cannot copy", from / name, ec);
  }
  return absl::OkStatus();
}

// Streams the data of one weight (and its scale, for FP8) into `writer`.
class WeightStreamer {
 public:
  WeightStreamer(SafetensorsWriter& writer, const Fp8Quantization& quant,
                 std::function<void()> on_progress)
      : writer_(writer), quant_(quant), on_progress_(std::move(on_progress)) {}

  absl::Status Write(const PlannedWeight& w, uint64_t seed) {
    WeightValues values(w.spec, seed);
    return w.fp8 ? WriteFp8(w, values) : WritePlain(w, values);
  }

 private:
  absl::Status WritePlain(const PlannedWeight& w, WeightValues& values) {
    const int64_t total = NumElements(w.spec.shape);
    for (int64_t done = 0; done < total;) {
      const int64_t n = std::min(kChunkElements, total - done);
      floats_.resize(n);
      values.Fill(floats_.data(), n);
      if (w.dtype == DType::kF32) {
        RETURN_IF_ERROR(writer_.Append(floats_.data(), n * sizeof(float)));
      } else {
        halves_.resize(n);
        for (int64_t i = 0; i < n; ++i) {
          halves_[i] =
              w.dtype == DType::kBF16 ? F32ToBf16(floats_[i]) : F32ToF16(floats_[i]);
        }
        RETURN_IF_ERROR(writer_.Append(halves_.data(), n * sizeof(uint16_t)));
      }
      done += n;
      on_progress_();
    }
    return absl::OkStatus();
  }

  // One stripe of block_rows rows at a time: each block's scale needs all its values.
  absl::Status WriteFp8(const PlannedWeight& w, WeightValues& values) {
    const int64_t rows = w.spec.shape[0];
    const int64_t cols = w.spec.shape[1];
    const int64_t block_cols = w.scale_shape[1];
    std::vector<float> scales;
    scales.reserve(NumElements(w.scale_shape));
    for (int64_t r0 = 0; r0 < rows; r0 += quant_.block_rows) {
      const int64_t stripe_rows = std::min(quant_.block_rows, rows - r0);
      floats_.resize(stripe_rows * cols);
      values.Fill(floats_.data(), stripe_rows * cols);
      const size_t first_scale = scales.size();
      for (int64_t b = 0; b < block_cols; ++b) {
        const int64_t c0 = b * quant_.block_cols;
        const int64_t c1 = std::min(cols, c0 + quant_.block_cols);
        float amax = 0.0f;
        for (int64_t r = 0; r < stripe_rows; ++r) {
          for (int64_t c = c0; c < c1; ++c) {
            amax = std::max(amax, std::fabs(floats_[r * cols + c]));
          }
        }
        scales.push_back(amax > 0.0f ? amax / kFp8Max : 1.0f);
      }
      bytes_.resize(stripe_rows * cols);
      for (int64_t r = 0; r < stripe_rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const float scale = scales[first_scale + c / quant_.block_cols];
          bytes_[r * cols + c] = F32ToFp8E4M3(floats_[r * cols + c] / scale);
        }
      }
      RETURN_IF_ERROR(writer_.Append(bytes_.data(), bytes_.size()));
      on_progress_();
    }
    return writer_.Append(scales.data(), scales.size() * sizeof(float));
  }

  SafetensorsWriter& writer_;
  const Fp8Quantization quant_;
  std::function<void()> on_progress_;
  std::vector<float> floats_;
  std::vector<uint16_t> halves_;
  std::vector<uint8_t> bytes_;
};

}  // namespace

std::vector<float> RandomWeightValues(const WeightSpec& spec, uint64_t seed) {
  std::vector<float> out(static_cast<size_t>(NumElements(spec.shape)));
  WeightValues values(spec, seed);
  values.Fill(out.data(), static_cast<int64_t>(out.size()));
  return out;
}

absl::Status WriteRandomCheckpoint(const ModelConfig& config_in, const std::string& dir,
                                   const RandomCheckpointOptions& options) {
  ModelConfig config = config_in;
  const bool fp8 = options.dtype == RandomWeightDType::kFP8;
  if (fp8) {
    if (!config.quantization) config.quantization = Fp8Quantization{};
    if (config.quantization->block_rows < 1 || config.quantization->block_cols < 1) {
      return absl::InvalidArgumentError("FP8 block sizes must be positive");
    }
  } else {
    config.quantization.reset();
  }
  if (options.max_shard_bytes == 0) {
    return absl::InvalidArgumentError("max_shard_bytes must be positive");
  }

  std::vector<PlannedWeight> weights;
  for (WeightSpec& spec : ExpectedWeights(config)) {
    PlannedWeight w{.spec = std::move(spec), .dtype = DType::kBF16};
    for (int64_t d : w.spec.shape) {
      if (d < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", w.spec.name, ": shape ", ShapeToString(w.spec.shape),
                         " has an empty dimension; is the config complete?"));
      }
    }
    if (w.spec.always_fp32) {
      w.dtype = DType::kF32;
    } else if (fp8 && w.spec.fp8_when_quantized && w.spec.shape.size() == 2) {
      w.dtype = DType::kF8E4M3;
      w.fp8 = true;
      w.scale_shape = ScaleShape(w.spec.shape, *config.quantization);
    }
    weights.push_back(std::move(w));
  }
  const std::vector<Shard> shards = PlanShards(weights, options.max_shard_bytes);
  uint64_t total_bytes = 0;
  for (const Shard& s : shards) total_bytes += s.bytes;

  // Checked before any weight is written: a late failure would leave a half-made dir.
  std::error_code ec;
  if (!options.tokenizer_dir.empty() &&
      !fs::exists(fs::path(options.tokenizer_dir) / "tokenizer.json", ec)) {
    return absl::NotFoundError(
        absl::StrCat(options.tokenizer_dir, ": no tokenizer.json to copy"));
  }
  const fs::path root(dir);
  RETURN_IF_ERROR(PrepareDir(root, options.overwrite));

  ProgressLine progress(options.progress);
  uint64_t bytes_before_shard = 0;
  nlohmann::json weight_map = nlohmann::json::object();  // sorted, like released indexes
  for (size_t i = 0; i < shards.size(); ++i) {
    const Shard& shard = shards[i];
    std::vector<TensorDecl> decls;
    for (const PlannedWeight* w : shard.weights) {
      decls.push_back({w->spec.name, w->dtype, w->spec.shape});
      weight_map[w->spec.name] = shard.file_name;
      if (w->fp8) {
        const std::string scale_name = w->spec.name + "_scale_inv";
        decls.push_back({scale_name, DType::kF32, w->scale_shape});
        weight_map[scale_name] = shard.file_name;
      }
    }
    ASSIGN_OR_RETURN(
        std::unique_ptr<SafetensorsWriter> writer,
        SafetensorsWriter::Create((root / shard.file_name).string(), std::move(decls)));
    WeightStreamer streamer(
        *writer, config.quantization.value_or(Fp8Quantization{}), [&] {
          if (!progress.enabled()) return;
          progress.Update(absl::StrCat(
              "writing ", shard.file_name, " (", i + 1, "/", shards.size(),
              "): ", HumanBytes(bytes_before_shard + writer->written_bytes()), " / ",
              HumanBytes(total_bytes)));
        });
    for (const PlannedWeight* w : shard.weights) {
      RETURN_IF_ERROR(streamer.Write(*w, options.seed));
    }
    RETURN_IF_ERROR(writer->Finish());
    bytes_before_shard += shard.bytes;
  }

  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                            {"weight_map", std::move(weight_map)}};
    RETURN_IF_ERROR(
        WriteTextFile(root / std::string(kIndexFileName), index.dump(2) + "\n"));
  }
  if (!options.tokenizer_dir.empty()) {
    RETURN_IF_ERROR(CopyTokenizer(options.tokenizer_dir, root));
  }
  // config.json last: a directory without it is visibly unfinished.
  RETURN_IF_ERROR(WriteTextFile(root / "config.json", ModelConfigToJson(config)));
  progress.Done(absl::StrCat("wrote ", dir, ": ", shards.size(), " file",
                             shards.size() == 1 ? "" : "s", ", ", HumanBytes(total_bytes),
                             fp8 ? " (FP8)" : " (BF16)"));
  return absl::OkStatus();
}

}  // namespace yard::model
