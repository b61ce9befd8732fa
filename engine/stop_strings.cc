#include "engine/stop_strings.h"

#include <algorithm>
#include <utility>

namespace yard::engine {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopStringMatcher::Result StopStringMatcher::Append(absl::string_view delta) {
  Result result;
  if (stopped_) return result;
  held_.append(delta.data(), delta.size());
  if (stops_.empty()) {
    result.text = std::move(held_);
    held_.clear();
    return result;
  }
  // Streamed text never ends with a prefix of a stop string (that suffix is held), so
  // any occurrence lies wholly inside held_.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    result.text = held_.substr(0, first);
    result.stopped = true;
    stopped_ = true;
    held_.clear();
    return result;
  }
  // Hold the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    const size_t longest = std::min(s.size() - 1, held_.size());
    for (size_t len = longest; len > hold; --len) {
      if (absl::string_view(held_).substr(held_.size() - len) ==
          absl::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  result.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return result;
}

std::string StopStringMatcher::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace yard::engine
