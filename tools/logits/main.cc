// logits: the FP32 reference forward's logits of the last token of a sequence, for
// comparing the engine (or any outside implementation) against the oracle.
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "tools/common/paths.h"
#include "tools/logits/logits_lib.h"

ABSL_FLAG(std::string, model, "",
          "checkpoint directory: config.json and model.safetensors (or shards with "
          "model.safetensors.index.json), BF16/FP16/FP32 or FP8 with block scales "
          "(required)");
ABSL_FLAG(std::string, tokens, "",
          "comma-separated token ids, e.g. 0,17,42; processed at positions 0,1,2,... "
          "(required)");
ABSL_FLAG(std::string, out, "",
          "output file: the last position's logits as vocab_size little-endian float32 "
          "values, nothing else (required)");

ABSL_FLAG(std::string, engine, "fast",
          "fast: the CPU engine; reference: the FP32 oracle (plain loops).");
ABSL_FLAG(bool, deterministic, false,
          "With --engine=fast: FP32 activations everywhere (batch- and thread-invariant "
          "logits); the default rounds long prompts' activations to BF16 for speed.");

int main(int argc, char** argv) {
  yard::ParseCommandLine(
      argc, argv,
      "Writes the logits of the last token (fast engine or FP32 reference forward).\n"
      "usage: logits --model=DIR --tokens=ID,ID,... --out=FILE [--engine=fast|reference]\n"
      "Relative paths are resolved against $BUILD_WORKSPACE_DIRECTORY when set (bazel "
      "run).");
  const std::string model_dir = yard::tools::ResolveUserPath(absl::GetFlag(FLAGS_model));
  const std::string out = yard::tools::ResolveUserPath(absl::GetFlag(FLAGS_out));
  if (model_dir.empty()) return yard::Fail("--model is required (see --help)");
  if (out.empty()) return yard::Fail("--out is required (see --help)");
  absl::StatusOr<std::vector<int32_t>> tokens =
      yard::tools::ParseTokenList(absl::GetFlag(FLAGS_tokens));
  if (!tokens.ok()) return yard::Fail(absl::StrCat("--tokens: ", tokens.status().message()));

  const std::string engine = absl::GetFlag(FLAGS_engine);
  if (engine != "fast" && engine != "reference") {
    return yard::Fail("--engine must be fast or reference");
  }
  absl::StatusOr<std::vector<float>> logits =
      engine == "fast"
          ? yard::tools::FastLastLogits(model_dir, *tokens, absl::GetFlag(FLAGS_deterministic))
          : yard::tools::ReferenceLastLogits(model_dir, *tokens);
  if (!logits.ok()) return yard::Fail(logits.status().message());
  absl::Status written = yard::tools::WriteFloat32File(out, *logits);
  if (!written.ok()) return yard::Fail(written.message());
  std::cerr << "logits: wrote " << logits->size() << " float32 logits of position "
            << tokens->size() - 1 << " to " << out << "\n";
  return 0;
}
