// CHECK for programmer invariants (never for input: input errors are absl::Status).
// Debian's Abseil 20220623 has no absl/log, so this is ours.
#ifndef SWITCHYARD_COMMON_CHECK_H_
#define SWITCHYARD_COMMON_CHECK_H_

#include <cstdio>
#include <cstdlib>

// Aborts with file, line, the condition and `message` when `condition` is false.
#define YARD_CHECK(condition, message)                                          \
  do {                                                                          \
    if (!(condition)) [[unlikely]] {                                            \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: %s\n", __FILE__, __LINE__, \
                   #condition, message);                                        \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

#endif  // SWITCHYARD_COMMON_CHECK_H_
