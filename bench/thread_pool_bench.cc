// Per-call overhead of ThreadPool::ParallelFor with an empty body: what every
// parallel kernel call pays on top of its work. Reports the median and best call
// while the workers are warm (spinning), and after they fell asleep (futex wake).
//
//   bazel run -c opt //bench:thread_pool_bench -- [--threads=N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {
namespace {

double NowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Report(const char* what, std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  std::printf("%-34s median %7.2f us  p10 %7.2f us  p90 %7.2f us\n", what,
              samples[samples.size() / 2], samples[samples.size() / 10],
              samples[samples.size() * 9 / 10]);
}

int Main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
  }
  ThreadPool pool(ThreadPool::Options{.num_threads = threads});
  std::printf("thread_pool_bench: %d threads\n", pool.num_threads());
  volatile int64_t sink = 0;
  auto body = [&](int64_t begin, int64_t end) { sink = sink + (end - begin); };

  std::vector<double> warm;
  for (int i = 0; i < 20000; ++i) {
    const double start = NowUs();
    pool.ParallelFor(pool.num_threads(), body);
    warm.push_back(NowUs() - start);
  }
  Report("back-to-back (workers spinning)", warm);

  std::vector<double> cold;
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double start = NowUs();
    pool.ParallelFor(pool.num_threads(), body);
    cold.push_back(NowUs() - start);
  }
  Report("after 2 ms idle (workers asleep)", cold);
  return 0;
}

}  // namespace
}  // namespace yard::kernels::cpu

int main(int argc, char** argv) { return yard::kernels::cpu::Main(argc, argv); }
