#include "model/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace yard::model {
namespace {

using Json = nlohmann::json;

// Our headers nest three deep (root, tensor, shape). Refusing deeper input before
// parsing bounds the parser's and the destructor's recursion on hostile files.
constexpr int kMaxJsonDepth = 8;

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::Status TensorError(absl::string_view tensor, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("tensor ", tensor, ": ", message));
}

// Max nesting of [] / {} outside strings; stops counting past the limit.
bool NestingWithin(absl::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// A JSON integer in [0, max], or nullopt.
std::optional<uint64_t> NonNegativeInteger(const Json& value, uint64_t max) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= max) return v;
    return std::nullopt;
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v >= 0 && static_cast<uint64_t>(v) <= max) return static_cast<uint64_t>(v);
  }
  return std::nullopt;
}

absl::StatusOr<SafetensorsEntry> ParseEntry(const std::string& name, const Json& value,
                                            uint64_t data_size) {
  if (name.empty()) return Invalid("empty tensor name");
  if (!value.is_object()) return TensorError(name, "expected an object");
  SafetensorsEntry entry;
  entry.name = name;

  const auto dtype_it = value.find("dtype");
  if (dtype_it == value.end() || !dtype_it->is_string()) {
    return TensorError(name, "missing string field 'dtype'");
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  const std::optional<DType> dtype = DTypeFromName(dtype_name);
  if (!dtype) {
    return TensorError(name, absl::StrCat("unsupported dtype \"", dtype_name,
                                          "\" (BF16, F16, F32 or F8_E4M3)"));
  }
  entry.dtype = *dtype;

  const auto shape_it = value.find("shape");
  if (shape_it == value.end() || !shape_it->is_array()) {
    return TensorError(name, "missing array field 'shape'");
  }
  uint64_t nbytes = static_cast<uint64_t>(DTypeSize(entry.dtype));
  for (const Json& dim : *shape_it) {
    const std::optional<uint64_t> d =
        NonNegativeInteger(dim, std::numeric_limits<int64_t>::max());
    if (!d) {
      return TensorError(name, absl::StrCat("shape ", shape_it->dump(),
                                            ": dims must be non-negative integers"));
    }
    if (__builtin_mul_overflow(nbytes, *d, &nbytes) ||
        nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TensorError(
          name, absl::StrCat("shape ", shape_it->dump(), ": byte size overflows"));
    }
    entry.shape.push_back(static_cast<int64_t>(*d));
  }

  const auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return TensorError(name, "missing field 'data_offsets' [begin, end]");
  }
  const std::optional<uint64_t> begin =
      NonNegativeInteger((*offsets_it)[0], std::numeric_limits<uint64_t>::max());
  const std::optional<uint64_t> end =
      NonNegativeInteger((*offsets_it)[1], std::numeric_limits<uint64_t>::max());
  if (!begin || !end) {
    return TensorError(name, "data_offsets must be non-negative integers");
  }
  if (*begin > *end || *end > data_size) {
    return TensorError(name,
                       absl::StrCat("data_offsets [", *begin, ",", *end,
                                    "] outside the data area of ", data_size, " bytes"));
  }
  if (*end - *begin != nbytes) {
    return TensorError(
        name, absl::StrCat("data_offsets [", *begin, ",", *end, "] hold ", *end - *begin,
                           " bytes, but ", DTypeName(entry.dtype), " ",
                           ShapeToString(entry.shape), " needs ", nbytes));
  }
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int err = errno;
  std::string message = absl::StrCat(path, ": ", what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::Status WithFile(const absl::Status& status, const std::string& path) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

}  // namespace

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view bytes,
                                                         uint64_t file_size) {
  if (bytes.size() > file_size) {
    return Invalid("more header bytes given than the file size");
  }
  if (bytes.size() < 8) {
    return Invalid(absl::StrCat("file of ", file_size,
                                " bytes is too short for the 8-byte header length"));
  }
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);  // little-endian host (dtype.cc)
  if (header_size > kMaxSafetensorsHeaderBytes) {
    return Invalid(absl::StrCat("header length ", header_size, " exceeds the limit of ",
                                kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_size > file_size - 8) {
    return Invalid(absl::StrCat("header length ", header_size, " runs past the end of a ",
                                file_size, "-byte file (truncated?)"));
  }
  if (header_size > bytes.size() - 8) {
    return Invalid("header bytes not provided");
  }
  if (header_size < 2) return Invalid("header is not a JSON object");
  const absl::string_view text = bytes.substr(8, header_size);
  if (!NestingWithin(text, kMaxJsonDepth)) {
    return Invalid("header JSON nests too deeply");
  }
  const Json root = Json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                                /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid("header is not well-formed JSON");
  if (!root.is_object()) return Invalid("header is not a JSON object");

  SafetensorsHeader header;
  header.data_start = 8 + header_size;
  const uint64_t data_size = file_size - header.data_start;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return Invalid("__metadata__ is not an object");
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          return Invalid(absl::StrCat("__metadata__.", meta_key, " is not a string"));
        }
        header.metadata[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    ASSIGN_OR_RETURN(SafetensorsEntry entry, ParseEntry(key, value, data_size));
    header.tensors.push_back(std::move(entry));
  }

  // Overlapping tensors mean a corrupt or malicious header: two names aliasing bytes.
  std::vector<const SafetensorsEntry*> by_offset;
  by_offset.reserve(header.tensors.size());
  for (const SafetensorsEntry& e : header.tensors) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
              return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
            });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return TensorError(by_offset[i]->name,
                         absl::StrCat("data overlaps tensor ", by_offset[i - 1]->name));
    }
  }
  // nlohmann objects iterate in key order, so tensors are already sorted by name.
  return header;
}

// ---------------------------------------------------------------------------
// SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status status = ErrnoError("cannot stat", path);
    ::close(fd);
    return status;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Invalid(absl::StrCat(path, ": file of ", size,
                                " bytes is too short for a safetensors header"));
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  absl::Status map_status =
      mapping == MAP_FAILED ? ErrnoError("cannot mmap", path) : absl::OkStatus();
  ::close(fd);  // the mapping keeps the file alive
  RETURN_IF_ERROR(map_status);

  std::unique_ptr<SafetensorsFile> file(
      new SafetensorsFile(path, static_cast<const uint8_t*>(mapping), size));
  const absl::string_view all(reinterpret_cast<const char*>(file->base_), size);
  absl::StatusOr<SafetensorsHeader> header = ParseSafetensorsHeader(all, size);
  if (!header.ok()) return WithFile(header.status(), path);

  file->metadata_ = std::move(header->metadata);
  file->tensors_.reserve(header->tensors.size());
  for (SafetensorsEntry& e : header->tensors) {
    file->index_[e.name] = file->tensors_.size();
    file->tensors_.push_back(TensorView{
        .name = std::move(e.name),
        .dtype = e.dtype,
        .shape = std::move(e.shape),
        .data = file->base_ + header->data_start + e.begin,
        .nbytes = e.end - e.begin,
    });
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() { ::munmap(const_cast<uint8_t*>(base_), size_); }

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------
// SafetensorsWriter

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, std::vector<TensorDecl> tensors,
    const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const TensorDecl& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return Invalid(absl::StrCat(path, ": invalid tensor name \"", t.name, "\""));
    }
    if (header.contains(t.name)) {
      return Invalid(absl::StrCat(path, ": tensor ", t.name, " declared twice"));
    }
    uint64_t nbytes = static_cast<uint64_t>(DTypeSize(t.dtype));
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(nbytes, static_cast<uint64_t>(d), &nbytes)) {
        return Invalid(absl::StrCat(path, ": tensor ", t.name, ": invalid shape ",
                                    ShapeToString(t.shape)));
      }
    }
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception&) {  // a tensor or metadata name that is not UTF-8
    return Invalid(absl::StrCat(path, ": tensor or metadata names are not valid UTF-8"));
  }
  // Pad with spaces (valid JSON whitespace) so the data area is 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeaderBytes) {
    return Invalid(
        absl::StrCat(path, ": header of ", text.size(), " bytes is too large"));
  }

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return ErrnoError("cannot create", tmp);
  std::unique_ptr<SafetensorsWriter> writer(new SafetensorsWriter(path, f, offset));
  const uint64_t n = text.size();  // little-endian u64 (dtype.cc asserts the host is)
  if (std::fwrite(&n, 8, 1, f) != 1 || std::fwrite(text.data(), 1, n, f) != n) {
    return ErrnoError("write failed", tmp);
  }
  return writer;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (file_ != nullptr) std::fclose(file_);
  if (!finished_) std::remove((path_ + ".tmp").c_str());
}

absl::Status SafetensorsWriter::Append(const void* data, uint64_t nbytes) {
  if (file_ == nullptr) return absl::FailedPreconditionError("writer already finished");
  if (nbytes > total_ - written_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": appending ", nbytes, " bytes past the declared ", total_));
  }
  if (nbytes > 0 && std::fwrite(data, 1, nbytes, file_) != nbytes) {
    return ErrnoError("write failed", path_ + ".tmp");
  }
  written_ += nbytes;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (file_ == nullptr) return absl::FailedPreconditionError("writer already finished");
  if (written_ != total_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": ", written_, " of the declared ", total_, " data bytes written"));
  }
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  const std::string tmp = path_ + ".tmp";
  if (!flushed || !closed) return ErrnoError("write failed", tmp);
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return ErrnoError("cannot rename into place", tmp);
  }
  finished_ = true;
  return absl::OkStatus();
}

absl::Status WriteSafetensorsFile(const std::string& path,
                                  const std::vector<OwnedTensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::vector<TensorDecl> decls;
  decls.reserve(tensors.size());
  for (const OwnedTensor& t : tensors) {
    decls.push_back(t.decl);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer,
                   SafetensorsWriter::Create(path, std::move(decls), metadata));
  for (const OwnedTensor& t : tensors) {
    if (t.bytes.size() != t.decl.nbytes()) {
      return Invalid(absl::StrCat(path, ": tensor ", t.decl.name, " has ", t.bytes.size(),
                                  " bytes, ", DTypeName(t.decl.dtype), " ",
                                  ShapeToString(t.decl.shape), " needs ",
                                  t.decl.nbytes()));
    }
    RETURN_IF_ERROR(writer->Append(t.bytes.data(), t.bytes.size()));
  }
  return writer->Finish();
}

}  // namespace yard::model
