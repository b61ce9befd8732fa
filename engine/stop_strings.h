// Stop-string detection over streamed text, OpenAI style: the text a client sees ends
// just before the first stop string, and text that may be the start of a stop string
// (which can span several tokens) is held back until the next tokens resolve it.
#ifndef SWITCHYARD_ENGINE_STOP_STRINGS_H_
#define SWITCHYARD_ENGINE_STOP_STRINGS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace yard::engine {

// Not thread-safe; one per request.
//
//   STREAMING --Append finds a stop string--> STOPPED (Append/Flush return nothing)
//       |
//       +--Flush (generation ended otherwise)--> DRAINED (held text returned once)
class StopStringMatcher {
 public:
  // Empty strings in `stops` are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Result {
    std::string text;      // safe to stream now
    bool stopped = false;  // a stop string completed; `text` ends right before it
  };
  // Adds newly decoded text.
  Result Append(absl::string_view delta);
  // The held-back text, when generation ends for another reason.
  std::string Flush();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // not yet streamed; never contains a whole stop string
  bool stopped_ = false;
};

}  // namespace yard::engine

#endif  // SWITCHYARD_ENGINE_STOP_STRINGS_H_
