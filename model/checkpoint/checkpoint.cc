#include "model/checkpoint/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/weight_layout.h"
#include "nlohmann/json.hpp"

namespace yard::model {
namespace {

using Json = nlohmann::json;

// Validate reports this many problems in full, then only counts the rest.
constexpr int kMaxReportedProblems = 10;

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string JoinPath(const std::string& dir, absl::string_view name) {
  if (dir.empty() || dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::string_view BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// A shard name from the index must stay inside the checkpoint directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

std::string Describe(DType dtype, const std::vector<int64_t>& shape) {
  return absl::StrCat(DTypeName(dtype), " ", ShapeToString(shape));
}

struct Index {
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  std::vector<std::string> shards;                // sorted, unique
};

absl::StatusOr<Index> ReadIndex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  const Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return invalid("not well-formed JSON");
  if (!root.is_object()) return invalid("not a JSON object");
  const auto map_it = root.find("weight_map");
  if (map_it == root.end() || !map_it->is_object()) {
    return invalid("missing object 'weight_map'");
  }
  const auto meta_it = root.find("metadata");
  if (meta_it != root.end() && !meta_it->is_object() && !meta_it->is_null()) {
    return invalid("'metadata' is not an object");
  }
  Index index;
  std::set<std::string> shards;
  for (const auto& [tensor, file] : map_it->items()) {
    if (!file.is_string()) {
      return invalid(
          absl::StrCat("weight_map: tensor ", tensor, ": file is not a string"));
    }
    const std::string& name = file.get_ref<const std::string&>();
    if (!IsPlainFileName(name)) {
      return invalid(absl::StrCat("weight_map: tensor ", tensor, ": shard \"", name,
                                  "\" is not a file name in the checkpoint directory"));
    }
    index.weight_map[tensor] = name;
    shards.insert(name);
  }
  if (shards.empty()) return invalid("weight_map is empty");
  index.shards.assign(shards.begin(), shards.end());
  return index;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(
    const std::string& dir, const CheckpointOptions& options) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint(dir, options));
  const std::string single = JoinPath(dir, kSingleFileName);
  const std::string index_path = JoinPath(dir, kIndexFileName);
  ProgressLine progress(options.progress);

  if (FileExists(single)) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                     SafetensorsFile::Open(single));
    RETURN_IF_ERROR(ckpt->AddFile(std::move(file)));
    progress.Done(absl::StrCat("loaded ", kSingleFileName, " (",
                               HumanBytes(ckpt->total_file_bytes_), ")"));
    return ckpt;
  }
  if (!FileExists(index_path)) {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no ", kSingleFileName, " and no ", kIndexFileName));
  }

  ASSIGN_OR_RETURN(Index index, ReadIndex(index_path));
  const int num_shards = static_cast<int>(index.shards.size());
  for (int i = 0; i < num_shards; ++i) {
    const std::string shard_path = JoinPath(dir, index.shards[i]);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(shard_path);
    if (!file.ok()) {
      if (absl::IsNotFound(file.status())) {
        return absl::NotFoundError(absl::StrCat(shard_path, ": shard listed in ",
                                                kIndexFileName, " is missing"));
      }
      return file.status();
    }
    RETURN_IF_ERROR(ckpt->AddFile(*std::move(file)));
    progress.Update(absl::StrCat("loading shards ", i + 1, "/", num_shards, " (",
                                 HumanBytes(ckpt->total_file_bytes_), ")"));
  }

  // The index and the shard headers must agree exactly: a disagreement means a
  // partially copied or mixed-up checkpoint, and guessing could load the wrong weights.
  for (const auto& [tensor, shard] : index.weight_map) {
    const auto it = ckpt->tensors_.find(tensor);
    if (it == ckpt->tensors_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(JoinPath(dir, shard), ": tensor ", tensor, ": listed in ",
                       kIndexFileName, " but absent from the shard"));
    }
    if (ckpt->file_names_[it->second.file] != shard) {
      return absl::InvalidArgumentError(
          absl::StrCat(JoinPath(dir, ckpt->file_names_[it->second.file]), ": tensor ",
                       tensor, ": ", kIndexFileName, " places it in ", shard));
    }
  }
  if (ckpt->tensors_.size() != index.weight_map.size()) {
    for (const std::string& name : ckpt->TensorNames()) {
      if (index.weight_map.count(name) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(JoinPath(dir, ckpt->FileOf(name)), ": tensor ", name,
                         ": not listed in ", kIndexFileName));
      }
    }
  }
  progress.Done(absl::StrCat("loaded ", num_shards, " shards (",
                             HumanBytes(ckpt->total_file_bytes_), ")"));
  return ckpt;
}

absl::Status Checkpoint::AddFile(std::unique_ptr<SafetensorsFile> file) {
  const int index = static_cast<int>(files_.size());
  const std::string name(BaseName(file->path()));
  for (const TensorView& view : file->tensors()) {
    const auto [it, inserted] = tensors_.try_emplace(view.name, Location{&view, index});
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor ", view.name,
                                                     ": also stored in ",
                                                     file_names_[it->second.file]));
    }
  }
  total_file_bytes_ += file->file_size();
  file_names_.push_back(name);
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

const TensorView* Checkpoint::Find(absl::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.view;
}

absl::string_view Checkpoint::FileOf(absl::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? absl::string_view() : file_names_[it->second.file];
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, location] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<ValidationReport> Checkpoint::Validate(const ModelConfig& config) const {
  ValidationReport report;
  std::vector<std::string> problems;
  int64_t num_problems = 0;
  auto problem = [&](std::string message) {
    if (++num_problems <= kMaxReportedProblems) problems.push_back(std::move(message));
  };
  auto at = [&](const TensorView& view) {
    return absl::StrCat(FileOf(view.name), ": tensor ", view.name);
  };

  absl::flat_hash_set<std::string> expected;
  for (const WeightSpec& spec : ExpectedWeights(config)) {
    ++report.tensors_checked;
    expected.insert(spec.name);
    const TensorView* view = Find(spec.name);
    if (view == nullptr) {
      const DType want = spec.always_fp32 ? DType::kF32 : DType::kBF16;
      problem(absl::StrCat("tensor ", spec.name, ": missing (expected ",
                           Describe(want, spec.shape), ")"));
      continue;
    }
    if (view->shape != spec.shape) {
      problem(absl::StrCat(at(*view), ": shape ", ShapeToString(view->shape),
                           ", expected ", ShapeToString(spec.shape)));
      continue;
    }
    if (spec.always_fp32) {
      if (view->dtype != DType::kF32) {
        problem(absl::StrCat(at(*view), ": dtype ", DTypeName(view->dtype),
                             ", expected F32"));
      }
      continue;
    }
    if (view->dtype != DType::kF8E4M3) continue;  // BF16, F16, F32 all convert exactly

    if (!spec.fp8_when_quantized) {
      problem(absl::StrCat(at(*view),
                           ": dtype F8_E4M3, expected BF16, F16 or F32 "
                           "(this weight is never quantized)"));
      continue;
    }
    if (!config.quantization) {
      problem(absl::StrCat(at(*view),
                           ": dtype F8_E4M3, but config.json has no "
                           "quantization_config"));
      continue;
    }
    const std::string scale_name = spec.name + "_scale_inv";
    expected.insert(scale_name);
    ++report.tensors_checked;
    const std::vector<int64_t> scale_shape = ScaleShape(spec.shape, *config.quantization);
    const TensorView* scale = Find(scale_name);
    if (scale == nullptr) {
      problem(absl::StrCat("tensor ", scale_name, ": missing (expected ",
                           Describe(DType::kF32, scale_shape), " for the F8_E4M3 ",
                           spec.name, ")"));
    } else if (scale->dtype != DType::kF32 || scale->shape != scale_shape) {
      problem(absl::StrCat(at(*scale), ": ", Describe(scale->dtype, scale->shape),
                           ", expected ", Describe(DType::kF32, scale_shape)));
    }
  }

  for (const std::string& name : TensorNames()) {
    if (!expected.contains(name)) report.unexpected_tensors.push_back(name);
  }
  if (num_problems > 0) {
    std::string message = absl::StrJoin(problems, "; ");
    if (num_problems > kMaxReportedProblems) {
      absl::StrAppend(&message, "; and ", num_problems - kMaxReportedProblems,
                      " more problems");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir_, " does not match config: ", message));
  }
  return report;
}

absl::StatusOr<Fp32Tensor> Checkpoint::ReadFp32(const std::string& name) const {
  const TensorView* view = Find(name);
  if (view == nullptr) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", dir_, ": no tensor ", name));
  }
  Fp32Tensor out;
  out.shape = view->shape;
  out.data.resize(static_cast<size_t>(view->num_elements()));
  if (view->dtype != DType::kF8E4M3) {
    ConvertToF32(view->dtype, view->data, view->num_elements(), out.data.data());
    return out;
  }

  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(FileOf(name), ": tensor ", name, ": ", what));
  };
  if (view->shape.size() != 2) {
    return error(absl::StrCat("F8_E4M3 tensor of shape ", ShapeToString(view->shape),
                              " is not 2-D; cannot apply block scales"));
  }
  const std::string scale_name = name + "_scale_inv";
  const TensorView* scale = Find(scale_name);
  if (scale == nullptr) return error(absl::StrCat("F8_E4M3 without ", scale_name));
  const Fp8Quantization& q = options_.fp8_blocks;
  const std::vector<int64_t> scale_shape = ScaleShape(view->shape, q);
  if (scale->shape != scale_shape) {
    return error(absl::StrCat(scale_name, " has shape ", ShapeToString(scale->shape),
                              ", expected ", ShapeToString(scale_shape), " for ",
                              q.block_rows, "x", q.block_cols, " blocks"));
  }
  std::vector<float> scales(static_cast<size_t>(NumElements(scale_shape)));
  ConvertToF32(scale->dtype, scale->data, NumElements(scale_shape), scales.data());

  const int64_t rows = view->shape[0];
  const int64_t cols = view->shape[1];
  ConvertToF32(DType::kF8E4M3, view->data, rows * cols, out.data.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float* scale_row = scales.data() + (r / q.block_rows) * scale_shape[1];
    float* row = out.data.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] *= scale_row[c / q.block_cols];
  }
  return out;
}

absl::StatusOr<ValidatedCheckpoint> OpenValidatedCheckpoint(const std::string& dir,
                                                            ProgressMode progress) {
  ValidatedCheckpoint opened;
  ASSIGN_OR_RETURN(opened.config, LoadModelConfig(dir));
  CheckpointOptions options;
  options.progress = progress;
  if (opened.config.quantization) options.fp8_blocks = *opened.config.quantization;
  ASSIGN_OR_RETURN(opened.checkpoint, Checkpoint::Open(dir, options));
  ASSIGN_OR_RETURN(ValidationReport report, opened.checkpoint->Validate(opened.config));
  if (!report.unexpected_tensors.empty()) {
    std::cerr << "note: " << report.unexpected_tensors.size()
              << " tensors in the checkpoint are not used (e.g. "
              << report.unexpected_tensors.front() << ")\n";
  }
  return opened;
}

}  // namespace yard::model
