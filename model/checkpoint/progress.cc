#include "model/checkpoint/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"

namespace yard::model {

std::string HumanBytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) return absl::StrFormat("%.1f GB", b / 1e9);
  if (b >= 1e6) return absl::StrFormat("%.1f MB", b / 1e6);
  if (b >= 1e3) return absl::StrFormat("%.1f kB", b / 1e3);
  return absl::StrFormat("%d B", bytes);
}

ProgressLine::ProgressLine(ProgressMode mode)
    : enabled_(mode == ProgressMode::kAlways ||
               (mode == ProgressMode::kAuto && ::isatty(STDERR_FILENO) == 1)) {}

ProgressLine::~ProgressLine() {
  if (shown_) std::fputc('\n', stderr);
}

void ProgressLine::Update(absl::string_view text, bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (shown_ && !force && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  shown_ = true;
  // Blank out the tail of a longer previous line.
  const size_t pad = last_width_ > text.size() ? last_width_ - text.size() : 0;
  std::fprintf(stderr, "\r%.*s%*s", static_cast<int>(text.size()), text.data(),
               static_cast<int>(pad), "");
  std::fflush(stderr);
  last_width_ = text.size();
}

void ProgressLine::Done(absl::string_view text) {
  if (!enabled_) return;
  Update(text, /*force=*/true);
  std::fputc('\n', stderr);
  shown_ = false;
  last_width_ = 0;
}

}  // namespace yard::model
