#include "kernels/cpu/cpu_features.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace yard::kernels::cpu {
namespace {

TEST(CpuFeaturesTest, NamesRoundTrip) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    EXPECT_EQ(IsaFromName(IsaName(isa)), isa);
  }
  EXPECT_FALSE(IsaFromName("sse2").has_value());
  EXPECT_FALSE(IsaFromName("").has_value());
}

TEST(CpuFeaturesTest, BestIsaMatchesFeatures) {
  const CpuFeatures& f = DetectCpuFeatures();
  const Isa best = BestSupportedIsa();
  if (best == Isa::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl && f.avx512_bf16 && f.os_avx512);
  }
  if (best >= Isa::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c && f.os_avx);
  }
  EXPECT_TRUE(IsaSupported(Isa::kScalar));
  EXPECT_TRUE(IsaSupported(best));
  EXPECT_EQ(SupportedIsas().back(), best);
}

TEST(CpuFeaturesTest, OverrideIsClampedAndRestored) {
  const Isa before = ActiveIsa();
  {
    ScopedIsa scalar(Isa::kScalar);
    EXPECT_EQ(ActiveIsa(), Isa::kScalar);
    {
      ScopedIsa avx512(Isa::kAvx512);
      // Never more than the CPU supports.
      EXPECT_EQ(ActiveIsa(), IsaSupported(Isa::kAvx512) ? Isa::kAvx512 : BestSupportedIsa());
    }
    EXPECT_EQ(ActiveIsa(), Isa::kScalar);
    EXPECT_NE(DescribeIsaChoice().find("SetActiveIsa"), std::string::npos);
  }
  EXPECT_EQ(ActiveIsa(), before);
}

// Run with YARD_CPU_ISA=avx2 by the :cpu_features_env_test target.
TEST(CpuFeaturesTest, EnvironmentCapsTheIsa) {
  const char* env = std::getenv("YARD_CPU_ISA");
  if (env == nullptr) GTEST_SKIP() << "YARD_CPU_ISA not set";
  const Isa wanted = IsaFromName(env).value();
  const Isa expected = IsaSupported(wanted) ? wanted : BestSupportedIsa();
  EXPECT_EQ(ActiveIsa(), expected);
  EXPECT_NE(DescribeIsaChoice().find("YARD_CPU_ISA"), std::string::npos)
      << DescribeIsaChoice();
}

}  // namespace
}  // namespace yard::kernels::cpu
