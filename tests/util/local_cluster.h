// A real switchyard cluster for e2e tests: the coordinator, attention worker and
// expert worker binaries started as child processes on loopback, exactly as
// `./yard up` starts them, and stopped (SIGTERM, then SIGKILL) when the object goes.
#ifndef SWITCHYARD_TESTS_UTIL_LOCAL_CLUSTER_H_
#define SWITCHYARD_TESTS_UTIL_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace yard::testing {

struct LocalClusterOptions {
  std::string model_dir;
  // Tokenizer for the coordinator and attention workers; empty: the model directory.
  std::string tokenizer_dir;
  int attention_workers = 1;
  int expert_workers = 1;
  // Flags for every worker (e.g. "--deterministic", "--dispatch-dtype=fp8"), in
  // --name=value form; a flag only one kind of worker defines is ignored by the other.
  std::vector<std::string> worker_flags;
  // Where each process's output goes (NAME.log); created if missing.
  std::string log_dir;
  // The cluster token (written to log_dir/cluster_token for every process's
  // --cluster-token-file); yardctl presents it too. Empty: --insecure-no-auth.
  std::string cluster_token = "e2e-cluster-token";
  // PEM certificate and key: every process serves TLS with them, and every process,
  // the readiness check and Channel() trust that certificate (it is its own root).
  // Empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Extra coordinator flags, in --name=value form.
  std::vector<std::string> coordinator_flags;
  std::chrono::seconds ready_timeout{180};
  // Binaries, relative to the test's working directory (the runfiles root).
  std::string bin_dir = ".";
};

// Not thread-safe; the owning test's thread only.
class LocalCluster {
 public:
  // Starts the processes and waits until Health says the cluster serves (every worker
  // registered, placement published). On failure everything started is stopped and
  // the error carries the tail of each log.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // The coordinator's host:port.
  const std::string& address() const { return address_; }
  // A channel to it (TLS when the cluster uses TLS).
  std::shared_ptr<grpc::Channel> Channel() const;
  // Whether Health reports serving, asking until it does or `patience` has passed.
  bool Serving(std::chrono::milliseconds patience = std::chrono::milliseconds(0)) const;
  // The last lines of every process's log, for failure messages.
  std::string LogTails() const;
  // The gRPC host:port of each worker started so far that has said it is ready (from
  // its log), by role: "attention" or "expert".
  std::vector<std::string> WorkerAddresses(const std::string& role) const;

  // Starts one more worker of that kind (`expert` or `attention`) with the cluster's
  // flags, as an operator restarting a lost one would; it registers on its own.
  absl::Status AddWorker(bool expert);

  // SIGKILLs the coordinator: no draining, its clients' streams break.
  absl::Status KillCoordinator();
  // Starts the coordinator again with the same flags on the same port (log
  // coordinator_N.log) and returns once it listens; the workers find it and register
  // again on their own.
  absl::Status RestartCoordinator();

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
  };
  LocalCluster() = default;
  absl::Status Spawn(const std::string& name, const std::vector<std::string>& argv);
  // Spawns coordinator_argv_ as `name` and waits (until `deadline`) for its address.
  absl::Status StartCoordinator(const std::string& name,
                                std::chrono::steady_clock::time_point deadline);
  void StopAll();

  LocalClusterOptions options_;
  std::vector<Child> children_;  // coordinator first
  std::string address_;
  std::vector<std::string> coordinator_argv_;
  int coordinator_restarts_ = 0;
  std::string tokenizer_;
  std::vector<std::string> worker_flags_;  // the options' plus --undefok
  int workers_started_[2] = {0, 0};        // attention, expert
};

}  // namespace yard::testing

#endif  // SWITCHYARD_TESTS_UTIL_LOCAL_CLUSTER_H_
