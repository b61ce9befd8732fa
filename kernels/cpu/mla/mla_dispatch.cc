#include "kernels/cpu/mla/mla_dispatch.h"

#include <vector>

#include "kernels/cpu/cpu_features.h"

namespace yard::kernels::cpu::internal {

// Each table is built on first use of its ISA only: the builders are compiled with
// that ISA's flags and may use its instructions even to fill a struct.
const MlaKernel& ActiveMlaKernel() {
  switch (ActiveIsa()) {
    case Isa::kAvx512: {
      static const MlaKernel kAvx512 = Avx512MlaKernel();
      return kAvx512;
    }
    case Isa::kAvx2: {
      static const MlaKernel kAvx2 = Avx2MlaKernel();
      return kAvx2;
    }
    case Isa::kScalar:
      break;
  }
  static const MlaKernel kScalar = ScalarMlaKernel();
  return kScalar;
}

const AbsorbKernel& ActiveAbsorbKernel() {
  switch (ActiveIsa()) {
    case Isa::kAvx512: {
      static const AbsorbKernel kAvx512 = Avx512AbsorbKernel();
      return kAvx512;
    }
    case Isa::kAvx2: {
      static const AbsorbKernel kAvx2 = Avx2AbsorbKernel();
      return kAvx2;
    }
    case Isa::kScalar:
      break;
  }
  static const AbsorbKernel kScalar = ScalarAbsorbKernel();
  return kScalar;
}

float* MlaThreadScratch(size_t floats) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

}  // namespace yard::kernels::cpu::internal
