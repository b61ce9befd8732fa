// Test helper process for ucx_two_process_test: a UcxDataPlane (peer id 2) that sends
// every message it receives back to its sender.
//
// Protocol on stdin/stdout (one line each):
//   prints   its address ("ucx:...")
//   reads    the parent's address, connects to it as peer 1
//   prints   "ready"
//   then echoes until stdin reaches end of file, and exits 0.
// argv[1], optional: UcxOptions::transports ("" = UCX's choice); then any number of
// KEY=VALUE, each added to UcxOptions::config.
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "transport/ucx/ucx_data_plane.h"

namespace {

constexpr yard::transport::PeerId kParent = 1;
constexpr yard::transport::PeerId kSelf = 2;

}  // namespace

int main(int argc, char** argv) {
  using yard::transport::PeerId;
  using yard::transport::UcxDataPlane;
  yard::transport::UcxOptions options;
  if (argc > 1) options.transports = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string setting = argv[i];
    const size_t eq = setting.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "ucx_echo_peer: expected KEY=VALUE, got %s\n", argv[i]);
      return 1;
    }
    options.config.emplace_back(setting.substr(0, eq), setting.substr(eq + 1));
  }

  std::atomic<UcxDataPlane*> plane{nullptr};
  yard::transport::DataPlaneHandlers handlers{
      [&plane](PeerId from, std::vector<uint8_t> message) {
        plane.load()->Send(
            from, std::make_shared<const std::vector<uint8_t>>(std::move(message)), nullptr);
      },
      [](PeerId peer, absl::Status why) {
        std::fprintf(stderr, "ucx_echo_peer: peer %u: %s\n", peer, why.ToString().c_str());
      }};
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> created =
      UcxDataPlane::Create(options, kSelf, handlers);
  if (!created.ok()) {
    std::fprintf(stderr, "ucx_echo_peer: %s\n", created.status().ToString().c_str());
    return 1;
  }
  plane.store(created->get());
  std::cout << (*created)->LocalAddress() << std::endl;

  std::string parent;
  if (!std::getline(std::cin, parent)) return 2;
  absl::Status connected = (*created)->Connect(kParent, parent);
  if (!connected.ok()) {
    std::fprintf(stderr, "ucx_echo_peer: connect: %s\n", connected.ToString().c_str());
    return 3;
  }
  std::cout << "ready" << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
  }
  created->reset();
  return 0;
}
