// How routed-expert inputs travel to the experts: the precision of the activations in
// a dispatch message (DESIGN.md "Data-plane messages"). The single-process engine
// applies the same rounding before its in-process experts when asked, so that a
// cluster with BF16 dispatch and a single process give bitwise identical logits.
#ifndef SWITCHYARD_ENGINE_DISPATCH_PRECISION_H_
#define SWITCHYARD_ENGINE_DISPATCH_PRECISION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace yard::engine {

enum class DispatchPrecision {
  kFp32,  // exact (in-process default)
  kBf16,  // round to nearest even
  kFp8,   // e4m3, one FP32 scale per 128 consecutive values of a row
};

// "fp32", "bf16" or "fp8"; InvalidArgument otherwise.
absl::StatusOr<DispatchPrecision> ParseDispatchPrecision(const std::string& name);
const char* DispatchPrecisionName(DispatchPrecision precision);

// Values per FP8 scale.
inline constexpr int64_t kFp8GroupSize = 128;

// The scale of one FP8 group: max |x| / 448 (the largest e4m3 value), or 1 for an
// all-zero group, so that the group's largest value maps to ±448 exactly.
float Fp8GroupScale(const float* x, int64_t n);

// out = what an expert receives for x after a dispatch in `precision`.
// x, out: [tokens, hidden] fp32, row-major; may be the same buffer.
void RoundLikeDispatch(DispatchPrecision precision, const float* x, int64_t tokens,
                       int64_t hidden, float* out);

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_DISPATCH_PRECISION_H_
