// Writes the seed corpus of wire_format_fuzz: a few small valid messages, one per
// kind and dtype. Run by hand when the format changes:
//   bazel run //tests/unit/transport:make_wire_format_corpus -- "$PWD/tests/unit/transport/wire_format_corpus"
#include <cstdio>
#include <string>
#include <vector>

#include "transport/wire_format.h"

namespace yard::transport {
namespace {

bool Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

int Main(const std::string& dir) {
  MessageHeader h;
  h.placement_version = 3;
  h.step_id = 17;
  h.layer = 1;
  h.micro_batch = 1;
  h.sender = 2;
  h.token_count = 3;
  h.hidden = 130;  // two fp8 groups, the second short
  h.prefill_rows = 2;
  std::vector<TokenRoute> routes = {{0, 0}, {5, 1}, {2, 7}};
  std::vector<float> x(h.token_count * h.hidden);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.25f - 2;

  struct Seed {
    const char* name;
    MessageKind kind;
    WireDType dtype;
  };
  for (Seed s : {Seed{"dispatch_bf16", MessageKind::kDispatch, WireDType::kBF16},
                 Seed{"dispatch_fp8", MessageKind::kDispatch, WireDType::kFP8E4M3},
                 Seed{"dispatch_fp32", MessageKind::kDispatch, WireDType::kFP32},
                 Seed{"combine_bf16", MessageKind::kCombine, WireDType::kBF16},
                 Seed{"combine_fp32", MessageKind::kCombine, WireDType::kFP32}}) {
    h.dtype = s.dtype;
    const std::vector<uint8_t> bytes = s.kind == MessageKind::kDispatch
                                           ? EncodeDispatch(h, routes, x)
                                           : EncodeCombine(h, routes, x);
    if (!Write(dir + "/" + s.name, bytes)) {
      std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), s.name);
      return 1;
    }
  }
  h.token_count = 0;
  h.dtype = WireDType::kBF16;
  return Write(dir + "/combine_empty", EncodeCombine(h, {}, {})) ? 0 : 1;
}

}  // namespace
}  // namespace yard::transport

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_wire_format_corpus DIR\n");
    return 2;
  }
  return yard::transport::Main(argv[1]);
}
