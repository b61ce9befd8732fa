// A real second process: ucx_echo_peer, started with posix_spawn, echoes what this
// process sends. Addresses cross through the child's stdin/stdout pipes, as they
// would cross through the coordinator.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/transport/ucx/test_inbox.h"
#include "transport/ucx/ucx_data_plane.h"

extern char** environ;

namespace yard::transport {
namespace {

using testing::Inbox;
using testing::PatternPayload;
using testing::SendLog;

constexpr PeerId kSelf = 1;
constexpr PeerId kEcho = 2;
constexpr char kEchoPeer[] = "tests/unit/transport/ucx/ucx_echo_peer";

// The child process and its pipes; kills it if the test ends early.
class EchoPeer {
 public:
  explicit EchoPeer(const std::string& transports) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    posix_spawn_file_actions_addclose(&actions, to_child[1]);
    posix_spawn_file_actions_addclose(&actions, from_child[0]);
    std::string program = kEchoPeer;
    std::string arg = transports;
    std::string scheme = transports == "tcp" ? "RNDV_SCHEME=am" : "";
    char* argv[] = {program.data(), arg.data(), scheme.empty() ? nullptr : scheme.data(),
                    nullptr};
    if (posix_spawn(&pid_, kEchoPeer, &actions, nullptr, argv, environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    to_child_ = fdopen(to_child[1], "w");
    from_child_ = fdopen(from_child[0], "r");
  }

  ~EchoPeer() {
    if (to_child_ != nullptr) fclose(to_child_);
    if (from_child_ != nullptr) fclose(from_child_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0 && to_child_ != nullptr && from_child_ != nullptr; }

  // One protocol line from the child, without the newline ("" at end of file). UCX
  // logs to stdout ("[timestamp] ..."), so such lines are skipped.
  std::string ReadLine() {
    while (true) {
      std::string line;
      int c = fgetc(from_child_);
      for (; c != EOF && c != '\n'; c = fgetc(from_child_)) line.push_back(static_cast<char>(c));
      if (line.empty() || line[0] != '[' || c == EOF) return line;
    }
  }
  void WriteLine(const std::string& line) {
    fputs((line + "\n").c_str(), to_child_);
    fflush(to_child_);
  }

  // Closes the child's stdin (it exits) and returns its exit status.
  int Finish() {
    fclose(to_child_);
    to_child_ = nullptr;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  void Kill() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* to_child_ = nullptr;
  FILE* from_child_ = nullptr;
};

class UcxTwoProcessTest : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Transports, UcxTwoProcessTest,
                         ::testing::Values(std::string(""), std::string("tcp")),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.empty() ? std::string("ucx_default")
                                                     : info.param;
                         });

// TCP runs rendezvous as AM fragments (UCX 1.13 TCP put_zcopy; see UcxOptions::config).
UcxOptions WithTransports(const std::string& transports) {
  UcxOptions options;
  options.transports = transports;
  if (transports == "tcp") options.config.emplace_back("RNDV_SCHEME", "am");
  return options;
}

TEST_P(UcxTwoProcessTest, EchoesHundredMessagesOfVaryingSizes) {
  SendLog sent;  // first: SendDones may run until the data plane is destroyed
  UcxOptions options = WithTransports(GetParam());
  Inbox inbox;
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> plane =
      UcxDataPlane::Create(options, kSelf, inbox.Handlers());
  ASSERT_TRUE(plane.ok()) << plane.status();

  EchoPeer child(GetParam());
  ASSERT_TRUE(child.started());
  const std::string child_address = child.ReadLine();
  ASSERT_EQ(child_address.substr(0, 4), "ucx:") << "child said: " << child_address;
  child.WriteLine((*plane)->LocalAddress());
  ASSERT_EQ(child.ReadLine(), "ready");
  ASSERT_TRUE((*plane)->Connect(kEcho, child_address).ok());

  constexpr uint32_t kCount = 100;
  std::vector<Payload> sent_payloads;
  for (uint32_t i = 0; i < kCount; ++i) {
    // 1 B .. 8 MB: eager, decode-sized and prefill-sized messages mixed.
    const size_t size = i % 10 == 9 ? (8 << 20) : i % 3 == 0 ? 32 * 7168 : 1 + i * 37;
    sent_payloads.push_back(PatternPayload(size, i));
    (*plane)->Send(kEcho, sent_payloads.back(), sent.Done());
  }
  ASSERT_TRUE(inbox.WaitForMessages(kCount));
  std::vector<Inbox::Message> echoes = inbox.TakeMessages();
  ASSERT_EQ(echoes.size(), kCount);
  for (uint32_t i = 0; i < kCount; ++i) {
    EXPECT_EQ(echoes[i].from, kEcho);
    ASSERT_TRUE(echoes[i].bytes == *sent_payloads[i]) << "echo " << i << " differs";
  }
  ASSERT_TRUE(sent.WaitFor(kCount));
  for (const absl::Status& s : sent.Results()) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(child.Finish(), 0);
}

// A peer process killed outright: with TCP the closed socket turns into on_peer_error
// and kUnavailable sends, within the deadline.
TEST(UcxTwoProcessKillTest, KilledPeerBecomesPeerError) {
  SendLog later;  // first: SendDones may run until the data plane is destroyed
  UcxOptions options = WithTransports("tcp");
  Inbox inbox;
  absl::StatusOr<std::unique_ptr<UcxDataPlane>> plane =
      UcxDataPlane::Create(options, kSelf, inbox.Handlers());
  ASSERT_TRUE(plane.ok()) << plane.status();
  EchoPeer child("tcp");
  ASSERT_TRUE(child.started());
  const std::string child_address = child.ReadLine();
  child.WriteLine((*plane)->LocalAddress());
  ASSERT_EQ(child.ReadLine(), "ready");
  ASSERT_TRUE((*plane)->Connect(kEcho, child_address).ok());
  (*plane)->Send(kEcho, PatternPayload(64, 0), nullptr);
  ASSERT_TRUE(inbox.WaitForMessages(1));

  child.Kill();
  size_t sends = 0;
  auto failed = [&] {
    for (const absl::Status& s : later.Results()) {
      if (s.code() == absl::StatusCode::kUnavailable) return true;
    }
    return false;
  };
  while (!failed()) {
    ASSERT_LT(sends, 100000u) << "sends to a killed peer never failed";
    (*plane)->Send(kEcho, PatternPayload(64 << 10, 0), later.Done());
    ASSERT_TRUE(later.WaitFor(++sends));
  }
  ASSERT_TRUE(inbox.WaitForError());
  EXPECT_EQ(inbox.Errors()[0].first, kEcho);
  EXPECT_EQ(inbox.Errors()[0].second.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace yard::transport
