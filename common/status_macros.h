// Early-return helpers for absl::Status / absl::StatusOr (Abseil 20220623 has none
// public). Used at every library boundary instead of exceptions.
#ifndef SWITCHYARD_COMMON_STATUS_MACROS_H_
#define SWITCHYARD_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define YARD_CONCAT_INNER_(a, b) a##b
#define YARD_CONCAT_(a, b) YARD_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    ::absl::Status yard_status_ = (expr);                  \
    if (!yard_status_.ok()) return yard_status_;           \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F());` binds x to F()'s value or returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(YARD_CONCAT_(yard_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // SWITCHYARD_COMMON_STATUS_MACROS_H_
