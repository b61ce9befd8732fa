#include "engine/dispatch_precision.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/checkpoint/dtype.h"

namespace yard::engine {

absl::StatusOr<DispatchPrecision> ParseDispatchPrecision(const std::string& name) {
  if (name == "fp32") return DispatchPrecision::kFp32;
  if (name == "bf16") return DispatchPrecision::kBf16;
  if (name == "fp8") return DispatchPrecision::kFp8;
  return absl::InvalidArgumentError(
      absl::StrCat("dispatch precision '", name, "': expected fp32, bf16 or fp8"));
}

const char* DispatchPrecisionName(DispatchPrecision precision) {
  switch (precision) {
    case DispatchPrecision::kFp32:
      return "fp32";
    case DispatchPrecision::kBf16:
      return "bf16";
    case DispatchPrecision::kFp8:
      return "fp8";
  }
  return "?";
}

float Fp8GroupScale(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax > 0.0f && std::isfinite(amax) ? amax / 448.0f : 1.0f;
}

void RoundLikeDispatch(DispatchPrecision precision, const float* x, int64_t tokens,
                       int64_t hidden, float* out) {
  const int64_t n = tokens * hidden;
  switch (precision) {
    case DispatchPrecision::kFp32:
      if (out != x) std::copy(x, x + n, out);
      return;
    case DispatchPrecision::kBf16:
      for (int64_t i = 0; i < n; ++i) out[i] = model::Bf16ToF32(model::F32ToBf16(x[i]));
      return;
    case DispatchPrecision::kFp8:
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t g = 0; g < hidden; g += kFp8GroupSize) {
          const int64_t len = std::min(kFp8GroupSize, hidden - g);
          const float* in = x + t * hidden + g;
          float* o = out + t * hidden + g;
          const float scale = Fp8GroupScale(in, len);
          for (int64_t i = 0; i < len; ++i) {
            o[i] = model::Fp8E4M3ToF32(model::F32ToFp8E4M3(in[i] / scale)) * scale;
          }
        }
      }
      return;
  }
}

}  // namespace yard::engine
