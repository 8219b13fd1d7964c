// The safetensors format: parsing a header (fuzzed), mapping files, writing files.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data; offsets are relative to the end of the header.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/mapped_file.h"

namespace gqa {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
  int64_t numel() const;
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;  // 8 + header length
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
};

// Validates everything: header length within the file, JSON syntax and types, known dtype,
// non-negative shape, data_offsets consistent with dtype*shape, inside the file and not overlapping.
// Every failure is one gqa::Error "[safetensors] <filename>: <problem>". Never crashes on any input.
SafetensorsHeader parse_safetensors_header(const uint8_t* file, size_t file_size, const std::string& filename);

// A view of one tensor's bytes (inside a mapping owned elsewhere).
struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and parses
  const SafetensorsHeader& header() const { return header_; }
  Tensor tensor(const TensorInfo& info) const;
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // dtype_size(dtype) * prod(shape) bytes
};

// Writes a safetensors file (tensors in the given order, header padded to 8 bytes), atomically.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The streaming form, for files too large to hold in memory twice (Qwen3-0.6B is 1.2 GB): `fill` is
// called once per tensor, in order, with a buffer of that tensor's byte size to fill, which is then
// appended to the file. Same format and atomicity as write_safetensors.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
using TensorFiller = std::function<void(size_t index, void* out, size_t nbytes)>;
void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& tensors,
                                const TensorFiller& fill, const std::map<std::string, std::string>& metadata = {});

}  // namespace gqa
