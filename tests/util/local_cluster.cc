#include "tests/util/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "proto/generation.grpc.pb.h"

extern char** environ;

namespace yard::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Tail(const std::string& text, int lines) {
  size_t begin = text.size();
  for (int i = 0; i <= lines && begin > 0; ++i) {
    const size_t newline = text.rfind('\n', begin - 1);
    if (newline == std::string::npos) return text;
    begin = newline;
  }
  return begin < text.size() ? text.substr(begin + 1) : "";
}

bool Exited(pid_t pid) {
  int status;
  return waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

absl::Status LocalCluster::Spawn(const std::string& name, const std::vector<std::string>& argv) {
  const std::string log = options_.log_dir + "/" + name + ".log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> args = argv;
  std::vector<char*> pointers;
  for (std::string& a : args) pointers.push_back(a.data());
  pointers.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, pointers[0], &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": errno ", error));
  }
  children_.push_back(Child{name, pid});
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options) {
  std::unique_ptr<LocalCluster> cluster(new LocalCluster());
  cluster->options_ = options;
  mkdir(options.log_dir.c_str(), 0755);
  const std::string tokenizer =
      options.tokenizer_dir.empty() ? options.model_dir : options.tokenizer_dir;
  auto fail = [&](const std::string& why) {
    const std::string tails = cluster->LogTails();
    cluster->StopAll();
    return absl::UnavailableError(absl::StrCat(why, "\n", tails));
  };

  std::vector<std::string> coordinator = {
      options.bin_dir + "/coordinator/coordinator", "--model", options.model_dir,
      "--tokenizer", tokenizer, "--port", "0",
      absl::StrCat("--attention-workers=", options.attention_workers),
      absl::StrCat("--expert-workers=", options.expert_workers)};
  // Every process gets the same token file (workers present it to the coordinator and
  // require it of the coordinator's calls).
  std::vector<std::string> auth_flags = {"--insecure-no-auth"};
  if (!options.cluster_token.empty()) {
    const std::string token_file = options.log_dir + "/cluster_token";
    std::ofstream(token_file) << options.cluster_token << "\n";
    auth_flags = {"--cluster-token-file=" + token_file};
  }
  coordinator.insert(coordinator.end(), auth_flags.begin(), auth_flags.end());
  // TLS: one certificate (for 127.0.0.1) serves every process and is every root.
  std::vector<std::string> tls_flags;
  if (!options.tls_cert_file.empty()) {
    tls_flags = {"--tls-cert=" + options.tls_cert_file, "--tls-key=" + options.tls_key_file,
                 "--tls-ca=" + options.tls_cert_file};
  }
  coordinator.insert(coordinator.end(), tls_flags.begin(), tls_flags.end());
  coordinator.insert(coordinator.end(), options.coordinator_flags.begin(),
                     options.coordinator_flags.end());
  cluster->coordinator_argv_ = coordinator;
  const auto deadline = std::chrono::steady_clock::now() + options.ready_timeout;
  absl::Status s = cluster->StartCoordinator("coordinator", deadline);
  if (!s.ok()) return fail(std::string(s.message()));

  // As ./yard up does: the workers split the machine's cores (a --threads among the
  // options' flags comes later and wins), and every worker flag goes to both kinds,
  // each ignoring the flags only the other kind defines.
  const int workers = std::max(1, options.attention_workers + options.expert_workers);
  std::vector<std::string> worker_flags = {absl::StrCat(
      "--threads=", std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / workers))};
  worker_flags.insert(worker_flags.end(), options.worker_flags.begin(),
                      options.worker_flags.end());
  if (!options.cluster_token.empty()) worker_flags.push_back(auth_flags[0]);
  worker_flags.insert(worker_flags.end(), tls_flags.begin(), tls_flags.end());
  std::string undefok;
  for (const std::string& flag : options.worker_flags) {
    if (flag.rfind("--", 0) != 0) continue;
    std::string name = flag.substr(2, flag.find('=') - 2);
    std::replace(name.begin(), name.end(), '-', '_');
    absl::StrAppend(&undefok, undefok.empty() ? "" : ",", name);
  }
  if (!undefok.empty()) worker_flags.push_back("--undefok=" + undefok);
  cluster->worker_flags_ = std::move(worker_flags);
  cluster->tokenizer_ = tokenizer;

  for (int i = 0; i < options.expert_workers; ++i) {
    s = cluster->AddWorker(/*expert=*/true);
    if (!s.ok()) return fail(std::string(s.message()));
  }
  for (int i = 0; i < options.attention_workers; ++i) {
    s = cluster->AddWorker(/*expert=*/false);
    if (!s.ok()) return fail(std::string(s.message()));
  }

  while (!cluster->Serving()) {
    for (const Child& child : cluster->children_) {
      if (Exited(child.pid)) return fail(child.name + " exited");
    }
    if (std::chrono::steady_clock::now() > deadline) return fail("the cluster did not serve");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cluster;
}

absl::Status LocalCluster::StartCoordinator(const std::string& name,
                                            std::chrono::steady_clock::time_point deadline) {
  absl::Status s = Spawn(name, coordinator_argv_);
  if (!s.ok()) return s;
  // The coordinator goes first in children_ (StopAll stops it first).
  std::rotate(children_.begin(), children_.end() - 1, children_.end());
  const std::string marker = "coordinator listening on ";
  while (true) {
    const std::string log = ReadFile(options_.log_dir + "/" + name + ".log");
    const size_t at = log.find(marker);
    if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
      const size_t begin = at + marker.size();
      address_ = log.substr(begin, log.find_first_of(" \n", begin) - begin);
      return absl::OkStatus();
    }
    if (Exited(children_[0].pid)) return absl::UnavailableError("the coordinator exited");
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError("the coordinator did not start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status LocalCluster::KillCoordinator() {
  Child& coordinator = children_[0];
  if (coordinator.pid <= 0 || kill(coordinator.pid, SIGKILL) != 0) {
    return absl::FailedPreconditionError("the coordinator is not running");
  }
  waitpid(coordinator.pid, nullptr, 0);
  coordinator.pid = -1;
  return absl::OkStatus();
}

absl::Status LocalCluster::RestartCoordinator() {
  if (children_[0].pid > 0) return absl::FailedPreconditionError("the coordinator is running");
  // The same flags on the same port, where the workers look for it.
  const std::string port = address_.substr(address_.rfind(':') + 1);
  auto flag = std::find(coordinator_argv_.begin(), coordinator_argv_.end(), "--port");
  if (flag != coordinator_argv_.end() && flag + 1 != coordinator_argv_.end()) *(flag + 1) = port;
  return StartCoordinator(absl::StrCat("coordinator_", ++coordinator_restarts_),
                          std::chrono::steady_clock::now() + options_.ready_timeout);
}

absl::Status LocalCluster::AddWorker(bool expert) {
  const int index = workers_started_[expert]++;
  std::vector<std::string> argv;
  if (expert) {
    argv = {options_.bin_dir + "/expert_worker/expert_worker", "--coordinator", address_,
            "--model", options_.model_dir};
  } else {
    argv = {options_.bin_dir + "/attention_worker/attention_worker", "--coordinator", address_,
            "--model", options_.model_dir, "--tokenizer", tokenizer_};
  }
  argv.insert(argv.end(), worker_flags_.begin(), worker_flags_.end());
  return Spawn(absl::StrCat(expert ? "expert_worker_" : "attention_worker_", index), argv);
}

bool LocalCluster::Serving(std::chrono::milliseconds patience) const {
  // A fresh channel: one that saw the coordinator down would wait out its backoff.
  auto stub = generation::Generation::NewStub(Channel());
  const auto give_up = std::chrono::steady_clock::now() + patience;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    generation::HealthResponse health;
    if (stub->Health(&context, {}, &health).ok() && health.serving()) return true;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::shared_ptr<grpc::Channel> LocalCluster::Channel() const {
  if (options_.tls_cert_file.empty()) {
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(options_.tls_cert_file);
  return grpc::CreateChannel(address_, grpc::SslCredentials(tls));
}

std::string LocalCluster::LogTails() const {
  std::string out;
  for (const Child& child : children_) {
    absl::StrAppend(&out, "--- ", child.name, "\n",
                    Tail(ReadFile(options_.log_dir + "/" + child.name + ".log"), 12), "\n");
  }
  return out;
}

std::vector<std::string> LocalCluster::WorkerAddresses(const std::string& role) const {
  std::vector<std::string> addresses;
  const std::string prefix = role + "_worker_";
  for (const Child& child : children_) {
    if (child.name.rfind(prefix, 0) != 0) continue;
    // "expert_worker 2 ready: 32 slots, gRPC 127.0.0.1:41759"
    const std::string log = ReadFile(options_.log_dir + "/" + child.name + ".log");
    const size_t ready = log.find(" ready: ");
    const size_t at = ready == std::string::npos ? ready : log.find("gRPC ", ready);
    if (at == std::string::npos) continue;
    const size_t start = at + 5;
    addresses.push_back(log.substr(start, log.find_first_of(", \n", start) - start));
  }
  return addresses;
}

void LocalCluster::StopAll() {
  // The coordinator first: it drains its streams; then the workers.
  for (Child& child : children_) {
    if (child.pid <= 0) continue;
    if (Exited(child.pid)) {  // killed by the test
      child.pid = -1;
      continue;
    }
    kill(child.pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!Exited(child.pid)) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(child.pid, SIGKILL);
        waitpid(child.pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    child.pid = -1;
  }
}

LocalCluster::~LocalCluster() { StopAll(); }

}  // namespace yard::testing
