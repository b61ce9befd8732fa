#include "kernels/cpu/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace yard::kernels::cpu {
namespace {

uint64_t ReadXcr0() {
  uint32_t eax = 0;
  uint32_t edx = 0;
  // xgetbv is only legal once cpuid reported OSXSAVE; callers check that first.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool osxsave = (ecx >> 27) & 1;
  f.fma = (ecx >> 12) & 1;
  f.f16c = (ecx >> 29) & 1;
  const bool avx = (ecx >> 28) & 1;
  if (osxsave && avx) {
    const uint64_t xcr0 = ReadXcr0();
    // SSE (bit 1) and AVX (bit 2) state; AVX-512 adds opmask, ZMM_Hi256, Hi16_ZMM (5-7).
    f.os_avx = (xcr0 & 0x6) == 0x6;
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;
  }
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  f.avx2 = (ebx >> 5) & 1;
  f.avx512f = (ebx >> 16) & 1;
  f.avx512dq = (ebx >> 17) & 1;
  f.avx512bw = (ebx >> 30) & 1;
  f.avx512vl = (ebx >> 31) & 1;
  f.avx512_vbmi = (ecx >> 1) & 1;
  f.avx512_vnni = (ecx >> 11) & 1;
  const unsigned max_subleaf = eax;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    f.avx512_bf16 = (eax >> 5) & 1;
  }
  return f;
}

bool HasAvx2(const CpuFeatures& f) { return f.os_avx && f.avx2 && f.fma && f.f16c; }

bool HasAvx512(const CpuFeatures& f) {
  return HasAvx2(f) && f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl &&
         f.avx512dq && f.avx512_vbmi && f.avx512_bf16 && f.avx512_vnni;
}

// -1: no programmatic override; else the Isa value.
std::atomic<int> g_override{-1};

// The environment's cap, read once. An unknown value is reported and ignored rather
// than failing: the kernels still work, only slower or faster than asked.
std::optional<Isa> EnvIsa() {
  static const std::optional<Isa> env = [] {
    const char* value = std::getenv("YARD_CPU_ISA");
    if (value == nullptr || *value == '\0') return std::optional<Isa>();
    std::optional<Isa> isa = IsaFromName(value);
    if (!isa.has_value() && absl::string_view(value) != "auto") {
      std::fprintf(stderr,
                   "switchyard: ignoring YARD_CPU_ISA=%s (expected avx512, avx2, "
                   "scalar or auto)\n",
                   value);
    }
    return isa;
  }();
  return env;
}

Isa Clamp(Isa isa) {
  const Isa best = BestSupportedIsa();
  return static_cast<int>(isa) <= static_cast<int>(best) ? isa : best;
}

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

Isa BestSupportedIsa() {
  static const Isa best = [] {
    const CpuFeatures& f = DetectCpuFeatures();
    if (HasAvx512(f)) return Isa::kAvx512;
    if (HasAvx2(f)) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return best;
}

bool IsaSupported(Isa isa) {
  return static_cast<int>(isa) <= static_cast<int>(BestSupportedIsa());
}

Isa ActiveIsa() {
  const int forced = g_override.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa from_env = [] {
    std::optional<Isa> env = EnvIsa();
    return env.has_value() ? Clamp(*env) : BestSupportedIsa();
  }();
  return from_env;
}

Isa SetActiveIsa(std::optional<Isa> isa) {
  g_override.store(isa.has_value() ? static_cast<int>(Clamp(*isa)) : -1,
                   std::memory_order_relaxed);
  return ActiveIsa();
}

absl::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

std::optional<Isa> IsaFromName(absl::string_view name) {
  if (name == "scalar") return Isa::kScalar;
  if (name == "avx2") return Isa::kAvx2;
  if (name == "avx512") return Isa::kAvx512;
  return std::nullopt;
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

std::string DescribeIsaChoice() {
  const CpuFeatures& f = DetectCpuFeatures();
  std::string cpu = std::string(IsaName(BestSupportedIsa()));
  if (f.avx512f) {
    absl::StrAppend(&cpu, f.avx512_bf16 ? " bf16" : " no-bf16",
                    f.avx512_vnni ? " vnni" : " no-vnni", f.avx512_vbmi ? " vbmi" : " no-vbmi");
  }
  std::string why;
  if (g_override.load(std::memory_order_relaxed) >= 0) {
    why = "; override: SetActiveIsa";
  } else if (const char* env = std::getenv("YARD_CPU_ISA"); env != nullptr && *env) {
    why = absl::StrCat("; override: YARD_CPU_ISA=", env);
  }
  return absl::StrCat(IsaName(ActiveIsa()), " (cpu: ", cpu, why, ")");
}

ScopedIsa::ScopedIsa(Isa isa) {
  const int previous = g_override.load(std::memory_order_relaxed);
  if (previous >= 0) previous_ = static_cast<Isa>(previous);
  SetActiveIsa(isa);
}

ScopedIsa::~ScopedIsa() { SetActiveIsa(previous_); }

}  // namespace yard::kernels::cpu
