// Reading and writing one `.safetensors` file (the Hugging Face tensor format).
//
// Layout: an 8-byte little-endian u64 N, then N bytes of JSON header
//   {"<tensor>": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]},
//    ..., optional "__metadata__": {"<key>": "<string>"}}
// then the data area; offsets are relative to its first byte, data is row-major and
// little-endian. Everything in a header is validated before any tensor is exposed:
// a truncated or corrupt file is an InvalidArgument error, never a crash.
#ifndef SWITCHYARD_MODEL_CHECKPOINT_SAFETENSORS_H_
#define SWITCHYARD_MODEL_CHECKPOINT_SAFETENSORS_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/checkpoint/dtype.h"

namespace yard::model {

// Largest header accepted, as in the reference implementation: a bigger one is a
// corrupt length, and refusing it keeps a hostile file from forcing a huge allocation.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100 << 20;

// Product of the dims; 1 for a scalar (empty shape).
int64_t NumElements(const std::vector<int64_t>& shape);
// "[64,2048]", as error messages print shapes.
std::string ShapeToString(const std::vector<int64_t>& shape);

// One tensor entry of a header.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // data_offsets, relative to the data area
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data area: 8 + N
};

// Parses and validates the header of a safetensors file.
// bytes: the start of the file, at least its first 8 + N bytes (the whole file is
//   fine); file_size: the size of the whole file, against which offsets are checked.
// Checks: N fits in bytes and file_size; the header is a JSON object; each tensor has
// a known dtype, a shape of non-negative integers whose byte size does not overflow,
// and data_offsets [begin, end] inside the data area with end - begin equal to that
// byte size; tensors do not overlap; __metadata__ maps strings to strings.
// Errors are InvalidArgument naming the tensor (the caller adds the file name).
// Never throws and never reads outside `bytes`.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view bytes,
                                                         uint64_t file_size);

// A tensor inside a mapped file. Borrows: `data` points into the mapping of the
// SafetensorsFile (or Checkpoint) it came from, which must outlive the view.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;     // row-major
  const uint8_t* data = nullptr;  // little-endian elements; no alignment guaranteed
  uint64_t nbytes = 0;            // NumElements(shape) * DTypeSize(dtype)

  int64_t num_elements() const { return NumElements(shape); }
};

// One safetensors file, memory-mapped read-only (MAP_SHARED, so processes loading
// the same checkpoint share page cache). Immutable after Open, so safe to use from any
// thread. The mapping lives as long as this object: TensorViews must not outlive it.
// If the file is truncated by someone else while mapped, touching the lost pages
// raises SIGBUS; that is the price of not copying weights.
class SafetensorsFile {
 public:
  // Errors: NotFound / PermissionDenied when the file cannot be opened, else
  // InvalidArgument "<path>: <what is wrong>".
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // All tensors, sorted by name.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when the file has no such tensor.
  const TensorView* Find(absl::string_view name) const;

 private:
  SafetensorsFile(std::string path, const uint8_t* base, uint64_t size)
      : path_(std::move(path)), base_(base), size_(size) {}

  std::string path_;
  const uint8_t* base_;  // the mapping, size_ bytes
  uint64_t size_;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;  // name -> tensors_ position
};

// What a tensor will be, declared before its data is written.
struct TensorDecl {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const { return NumElements(shape) * DTypeSize(dtype); }
};

// Writes a safetensors file whose tensors are declared up front and whose data is then
// streamed in declaration order, so a multi-GB file never sits in memory. The header
// is padded with spaces so the data area starts 8-byte aligned (as Hugging Face does).
// The file appears at `path` only when Finish() succeeds (written to `<path>.tmp`
// and renamed), so an interrupted writer leaves no plausible-looking file behind.
// Not thread-safe: one writer per thread.
class SafetensorsWriter {
 public:
  // Errors: InvalidArgument for duplicate or empty names, negative dims, or a header
  // that would be too large; an I/O error when the file cannot be created.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, std::vector<TensorDecl> tensors,
      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();  // without Finish(), removes the temporary file

  // Appends raw element bytes (little-endian, row-major) continuing the current tensor
  // and spilling into the next ones; FailedPrecondition past the declared total.
  absl::Status Append(const void* data, uint64_t nbytes);
  // FailedPrecondition unless exactly the declared bytes were appended; then flushes,
  // closes and renames into place.
  absl::Status Finish();

  // Bytes of tensor data declared / appended so far.
  uint64_t total_bytes() const { return total_; }
  uint64_t written_bytes() const { return written_; }

 private:
  SafetensorsWriter(std::string path, std::FILE* file, uint64_t total)
      : path_(std::move(path)), file_(file), total_(total) {}

  std::string path_;
  std::FILE* file_;
  uint64_t total_;
  uint64_t written_ = 0;
  bool finished_ = false;
};

// A tensor with its bytes in memory, for small files (tests, tools).
struct OwnedTensor {
  TensorDecl decl;
  std::vector<uint8_t> bytes;  // exactly decl.nbytes()
};

// Writes `tensors` (data in the given order) to `path` in one call.
absl::Status WriteSafetensorsFile(const std::string& path,
                                  const std::vector<OwnedTensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {
                                      {"format", "pt"}});

}  // namespace yard::model

#endif  // SWITCHYARD_MODEL_CHECKPOINT_SAFETENSORS_H_
