// A one-line progress display on stderr ("\rloading shards 3/163 (12.4 GB)") for
// long checkpoint reads and writes, shown only where a person is watching.
#ifndef SWITCHYARD_MODEL_CHECKPOINT_PROGRESS_H_
#define SWITCHYARD_MODEL_CHECKPOINT_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace yard::model {

enum class ProgressMode {
  kAuto,  // only when stderr is a terminal (isatty), so logs and tests stay clean
  kAlways,
  kNever,
};

// "12.4 GB", "310.0 MB": decimal units, as file managers and HF report sizes.
std::string HumanBytes(uint64_t bytes);

// Rewrites one stderr line in place, at most a few times a second. Not thread-safe:
// owned and updated by one thread.
class ProgressLine {
 public:
  explicit ProgressLine(ProgressMode mode);
  ~ProgressLine();  // ends the line if anything was shown

  bool enabled() const { return enabled_; }
  // Shows `text` if enough time passed since the last update (or `force`).
  void Update(absl::string_view text, bool force = false);
  // Shows `text` as the final state and moves to a new line.
  void Done(absl::string_view text);

 private:
  bool enabled_;
  bool shown_ = false;
  size_t last_width_ = 0;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_CHECKPOINT_PROGRESS_H_
