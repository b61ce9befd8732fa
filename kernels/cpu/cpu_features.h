// Which x86 vector instruction set the CPU kernels use, chosen at run time.
//
// The binary is compiled for generic x86-64; each kernel has one translation unit per
// instruction set, compiled with that set's flags, and the dispatcher calls the one
// chosen here. The choice is the best set the CPU (and the OS, via XCR0) supports,
// unless overridden:
//   - the environment variable YARD_CPU_ISA=avx512|avx2|scalar (read once, at the
//     first call to ActiveIsa()) caps it, so a machine with AVX-512 can run the AVX2
//     path (tests, benchmarks, bisecting a numerical difference);
//   - SetActiveIsa() overrides it programmatically (tests run a body under each ISA).
// An override naming a set the CPU lacks falls back to the best supported one.
//
// Thread-safety: all functions may be called from any thread. SetActiveIsa() is meant
// for tests and start-up; a kernel call already in flight keeps the ISA it started with.
#ifndef SWITCHYARD_KERNELS_CPU_CPU_FEATURES_H_
#define SWITCHYARD_KERNELS_CPU_CPU_FEATURES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace yard::kernels::cpu {

// Ordered from least to most capable.
enum class Isa {
  // Plain C++ loops; the fallback on CPUs without AVX2+FMA+F16C. Slow.
  kScalar = 0,
  // AVX2 + FMA + F16C (Haswell, Zen 1 and later).
  kAvx2 = 1,
  // AVX-512 F/BW/VL/DQ + VBMI + BF16 + VNNI + F16C + FMA (Sapphire Rapids, Zen 4
  // and later). BF16 is required: the prefill kernel is built on vdpbf16ps; VBMI:
  // the decode kernel widens FP8 with byte-table lookups (vpermt2b).
  kAvx512 = 2,
};

// What the CPU and the OS support, as detected by cpuid and xgetbv.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool avx512_vbmi = false;
  // The OS saves the YMM / ZMM and opmask state across context switches.
  bool os_avx = false;
  bool os_avx512 = false;
};

// Detected once, then cached.
const CpuFeatures& DetectCpuFeatures();

// The most capable ISA this CPU supports, ignoring overrides.
Isa BestSupportedIsa();

// Whether this CPU can run kernels built for `isa`.
bool IsaSupported(Isa isa);

// The ISA the kernels use now: SetActiveIsa()'s choice if any, else the environment
// override, else BestSupportedIsa(); always one the CPU supports.
Isa ActiveIsa();

// Forces the kernels onto `isa` (clamped to BestSupportedIsa()); nullopt returns to
// the environment / automatic choice. Returns the ISA now active.
Isa SetActiveIsa(std::optional<Isa> isa);

// "scalar", "avx2", "avx512".
absl::string_view IsaName(Isa isa);
// The inverse of IsaName; nullopt for any other string.
std::optional<Isa> IsaFromName(absl::string_view name);

// Every ISA this CPU supports, least capable first (tests iterate over it).
std::vector<Isa> SupportedIsas();

// One line for logs, e.g. "avx512 (cpu: avx512 bf16 vnni; override: YARD_CPU_ISA=avx2)".
std::string DescribeIsaChoice();

// Sets the ISA for the lifetime of a scope and restores the previous override after.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa);
  ~ScopedIsa();
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  std::optional<Isa> previous_;
};

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_CPU_FEATURES_H_
