#include "tools/logits/logits_lib.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "engine/local_engine.h"
#include "model/reference/load.h"

namespace yard::tools {

absl::StatusOr<std::vector<int32_t>> ParseTokenList(absl::string_view text) {
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("token list is empty");
  }
  std::vector<int32_t> tokens;
  int index = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    absl::string_view id = absl::StripAsciiWhitespace(item);
    int64_t value = 0;
    if (id.empty() || !absl::SimpleAtoi(id, &value) || value < 0 ||
        value > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token ", index, " ('", item, "') is not a token id (a non-negative integer)"));
    }
    tokens.push_back(static_cast<int32_t>(value));
    ++index;
  }
  return tokens;
}

absl::StatusOr<std::vector<float>> ReferenceLastLogits(const std::string& model_dir,
                                                       absl::Span<const int32_t> tokens) {
  ASSIGN_OR_RETURN(std::unique_ptr<model::ReferenceModel> reference,
                   model::LoadReferenceModel(model_dir));
  ASSIGN_OR_RETURN(model::ForwardOutput out,
                   reference->ForwardFull(tokens, model::LogitsMode::kLast));
  return std::move(out.logits);
}

absl::StatusOr<std::vector<float>> FastLastLogits(const std::string& model_dir,
                                                  absl::Span<const int32_t> tokens,
                                                  bool deterministic) {
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens");
  engine::LocalEngineOptions options;
  options.deterministic = deterministic;
  options.max_context = static_cast<int64_t>(tokens.size()) + 1;
  ASSIGN_OR_RETURN(auto local, engine::LocalEngine::Open(model_dir, nullptr, options));
  constexpr engine::SequenceId kSequence = 1;
  RETURN_IF_ERROR(local->cache().Reserve(kSequence, static_cast<int64_t>(tokens.size())));
  engine::ForwardBatch batch;
  engine::ForwardSequence& seq = batch.sequences.emplace_back();
  seq.sequence_id = kSequence;
  seq.tokens.assign(tokens.begin(), tokens.end());
  absl::Span<const int32_t> table = local->cache().BlockTable(kSequence);
  seq.block_table.assign(table.begin(), table.end());
  seq.needs_logits = true;
  ASSIGN_OR_RETURN(engine::ForwardResult result, local->model().Forward(batch));
  return std::move(result.logits);
}

absl::Status WriteFloat32File(const std::string& path, absl::Span<const float> values) {
  std::string bytes(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat(path, ": cannot open for writing"));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace yard::tools
