"""The one place that sets how switchyard's C++ is compiled, tested and fuzzed.

Every BUILD file uses these wrappers instead of the native rules, so copts, warnings
and the include root (the workspace root: `#include "model/config.h"`) stay uniform.
"""

load("//bazel:system_libs.bzl", "ABSEIL_LINKOPTS")

YARD_COPTS = [
    "-std=c++20",
    "-O2",
    "-Wall",
    "-Werror",
]

def yard_cc_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = YARD_COPTS + copts, **kwargs)

def yard_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = YARD_COPTS + copts, **kwargs)

def yard_cc_test(name, copts = [], deps = [], **kwargs):
    native.cc_test(
        name = name,
        copts = YARD_COPTS + copts,
        deps = deps + ["//third_party:gtest_main"],
        **kwargs
    )

def yard_fuzz_test(name, srcs, corpus = [], seconds = 10, linkopts = [], tags = []):
    """A libFuzzer target built with Debian's clang, run for `seconds` as a test.

    Bazel's toolchain here is gcc, which has no libFuzzer, so the fuzzer binary is
    compiled by a genrule calling clang++ directly. `srcs` must list every .cc and .h
    the target needs (the fuzz entry point plus the parser under test).
    """
    native.genrule(
        name = name + "_build",
        srcs = srcs,
        outs = [name + "_fuzzer"],
        cmd = " ".join([
            "ccs=; for f in $(SRCS); do case $$f in *.cc) ccs=\"$$ccs $$f\";; esac; done;",
            "/usr/bin/clang++ -std=c++20 -O1 -g -fno-omit-frame-pointer",
            "-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined",
            "-DPCRE2_CODE_UNIT_WIDTH=8 -I. $$ccs -o $@",
        ] + linkopts + ABSEIL_LINKOPTS),
        tags = tags,
        testonly = True,
    )
    native.sh_test(
        name = name,
        srcs = ["//bazel:run_fuzzer.sh"],
        args = ["$(location :%s_fuzzer)" % name, str(seconds)] +
               ["$(location %s)" % c for c in corpus],
        data = [":" + name + "_fuzzer"] + corpus,
        tags = tags + ["fuzz"],
    )

def yard_cuda_library(name, srcs, hdrs = [], deps = [], tags = [], **kwargs):
    """CUDA sources compiled by nvcc for Hopper (sm_90a); built only under --config=cuda."""
    objs = []
    for src in srcs:
        obj = src.replace(".cu", ".cu.o")
        native.genrule(
            name = name + "_" + src.replace("/", "_").replace(".", "_"),
            srcs = [src] + hdrs,
            outs = [obj],
            cmd = " ".join([
                "/usr/local/cuda/bin/nvcc -std=c++20 -O3 -arch=sm_90a",
                "-Xcompiler -fPIC -Xcompiler -Wall -Werror all-warnings",
                "-I. -c $(location %s) -o $@" % src,
            ]),
            tags = tags + ["cuda"],
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        copts = YARD_COPTS,
        deps = deps + ["@cuda//:runtime"],
        tags = tags + ["cuda"],
        **kwargs
    )
