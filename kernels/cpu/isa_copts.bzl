"""Per-ISA compiler flags for the CPU kernel packages under kernels/cpu/.

A translation unit built with one of these must be reached only through the run-time
dispatch of //kernels/cpu:cpu_features.
"""

# GCC 12's intrinsic headers initialize "undefined" vectors from themselves
# (_mm256_undefined_pd), which -Wuninitialized flags once inlined at -O3.
ISA_WARNING_COPTS = ["-Wno-uninitialized"]

# The scalar fallback: generic x86-64, but optimized like the vector paths.
SCALAR_COPTS = ["-O3"]

AVX2_COPTS = ISA_WARNING_COPTS + [
    "-O3",
    "-mavx2",
    "-mfma",
    "-mf16c",
]

AVX512_COPTS = ISA_WARNING_COPTS + [
    "-O3",
    "-mavx2",
    "-mfma",
    "-mf16c",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512vl",
    "-mavx512dq",
    "-mavx512vbmi",
    "-mavx512bf16",
    "-mavx512vnni",
]
