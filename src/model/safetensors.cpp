// safetensors: a header parser that validates every field and offset (it is fuzzed, so every
// arithmetic step is overflow-checked), the mapped-file reader, and an atomic streaming writer.
#include "model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "common/error.h"

namespace gqa {
namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we, which also bounds parse time.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string json_kind(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "float";
  if (v.is_boolean()) return "boolean";
  return v.type_name();
}

// Reports one problem with the file, optionally naming the tensor it concerns.
class HeaderChecker {
 public:
  explicit HeaderChecker(const std::string& filename) : filename_(filename) {}

  [[noreturn]] void file_error(std::string_view problem) const { fail("safetensors", "{}: {}", filename_, problem); }
  [[noreturn]] void tensor_error(std::string_view name, std::string_view problem) const {
    fail("safetensors", "{}: {} (tensor '{}')", filename_, problem, name);
  }

  // A non-negative JSON integer as uint64, or an error naming `what`.
  uint64_t unsigned_value(const json& v, std::string_view name, std::string_view what) const {
    if (!v.is_number_integer()) tensor_error(name, fmt::format("{} must be an integer, got {}", what, json_kind(v)));
    if (!v.is_number_unsigned()) tensor_error(name, fmt::format("{} is negative ({})", what, v.get<int64_t>()));
    return v.get<uint64_t>();
  }

  TensorInfo tensor(const std::string& name, const json& entry, uint64_t data_size) const {
    if (!entry.is_object()) tensor_error(name, fmt::format("entry must be an object, got {}", json_kind(entry)));
    for (const auto& [key, value] : entry.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        tensor_error(name, fmt::format("unknown key '{}' (expected dtype, shape, data_offsets)", key));
    }
    TensorInfo t;
    t.name = name;

    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end()) tensor_error(name, "missing 'dtype'");
    if (!dtype_it->is_string()) tensor_error(name, fmt::format("dtype must be a string, got {}", json_kind(*dtype_it)));
    const std::string& dtype_str = dtype_it->get_ref<const std::string&>();
    auto dtype = dtype_from_name(dtype_str);
    if (!dtype) tensor_error(name, fmt::format("unsupported dtype '{}' (supported: BF16, F16, F32)", dtype_str));
    t.dtype = *dtype;

    auto shape_it = entry.find("shape");
    if (shape_it == entry.end()) tensor_error(name, "missing 'shape'");
    if (!shape_it->is_array()) tensor_error(name, fmt::format("shape must be an array, got {}", json_kind(*shape_it)));
    uint64_t numel = 1;
    for (const json& d : *shape_it) {
      uint64_t dim = unsigned_value(d, name, "shape dimension");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        tensor_error(name, fmt::format("shape dimension {} is too large", dim));
      t.shape.push_back(static_cast<int64_t>(dim));
      if (__builtin_mul_overflow(numel, dim, &numel))
        tensor_error(name, fmt::format("shape {} has more elements than fit in 64 bits", shape_string(t.shape)));
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(t.dtype)), &nbytes) ||
        nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      tensor_error(name, fmt::format("shape {} is too large", shape_string(t.shape)));

    auto off_it = entry.find("data_offsets");
    if (off_it == entry.end()) tensor_error(name, "missing 'data_offsets'");
    if (!off_it->is_array() || off_it->size() != 2)
      tensor_error(name,
                   fmt::format("data_offsets must be an array [begin, end], got {}",
                               off_it->is_array() ? fmt::format("{} elements", off_it->size()) : json_kind(*off_it)));
    t.begin = unsigned_value((*off_it)[0], name, "data_offsets begin");
    t.end = unsigned_value((*off_it)[1], name, "data_offsets end");
    if (t.begin > t.end) tensor_error(name, fmt::format("data_offsets [{}, {}] have begin > end", t.begin, t.end));
    if (t.end - t.begin != nbytes)
      tensor_error(name, fmt::format("data_offsets [{}, {}] span {} bytes but {} {} needs {}", t.begin, t.end,
                                     t.end - t.begin, dtype_str, shape_string(t.shape), nbytes));
    if (t.end > data_size)
      tensor_error(name, fmt::format("data_offsets end {} is past the end of the file (data section is {} bytes)",
                                     t.end, data_size));
    return t;
  }

  std::map<std::string, std::string> metadata(const json& m) const {
    if (!m.is_object()) file_error(fmt::format("__metadata__ must be an object of strings, got {}", json_kind(m)));
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : m.items()) {
      if (!value.is_string())
        file_error(fmt::format("__metadata__ must map strings to strings; key '{}' holds {}", key, json_kind(value)));
      out.emplace(key, value.get<std::string>());
    }
    return out;
  }

 private:
  const std::string& filename_;
};

// Parses the header JSON. A callback rejects duplicate keys (nlohmann would silently keep the last
// one) and nesting deeper than a header ever needs (object > entry > shape array).
json parse_header_json(const char* begin, const char* end, const HeaderChecker& check) {
  std::set<std::string> top_keys, entry_keys;
  std::string current_entry;
  auto callback = [&](int depth, json::parse_event_t event, json& value) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= 3)
      check.file_error("header JSON is nested deeper than a safetensors header");
    if (event == json::parse_event_t::key && depth == 1) {
      current_entry = value.get<std::string>();
      if (!top_keys.insert(current_entry).second) check.tensor_error(current_entry, "appears twice in the header");
      entry_keys.clear();
    } else if (event == json::parse_event_t::key && depth == 2) {
      if (!entry_keys.insert(value.get<std::string>()).second)
        check.tensor_error(current_entry, fmt::format("key '{}' appears twice", value.get<std::string>()));
    }
    return true;
  };
  try {
    return json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    // Keep nlohmann's position ("at line 1, column 12: ..."), drop its "[json.exception.x.y] " tag.
    std::string what = e.what();
    if (auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != std::string::npos)
      what = what.substr(p + 2);
    check.file_error(fmt::format("header is not valid JSON: {}", what));
  }
}

void put_le64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Shared by the two writers: validates the layout, then writes header and data (produced by
// `emit_tensor`, which must write exactly the tensor's bytes) to PATH.tmp and renames it over PATH.
void write_file(const std::string& path, const std::vector<TensorSpec>& tensors,
                const std::map<std::string, std::string>& metadata,
                const std::function<void(size_t, size_t, std::FILE*)>& emit_tensor) {
  std::set<std::string> names;
  std::vector<size_t> sizes;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    if (t.name == "__metadata__" || t.name.empty()) fail("safetensors", "{}: invalid tensor name '{}'", path, t.name);
    if (!names.insert(t.name).second) fail("safetensors", "{}: tensor '{}' given twice", path, t.name);
    uint64_t nbytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) fail("safetensors", "{}: tensor '{}' has negative dimension {}", path, t.name, d);
      if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(d), &nbytes))
        fail("safetensors", "{}: tensor '{}' is too large", path, t.name);
    }
    if (__builtin_add_overflow(offset, nbytes, &offset)) fail("safetensors", "{}: tensors are too large", path);
    sizes.push_back(nbytes);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset - nbytes, offset}}};
  }
  std::string text = header.dump();
  // Padding the header to 8 bytes puts the data section (and so every f32 tensor) on an aligned address.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  put_le64(len, text.size());

  // Removes the temporary file on every failure path, including exceptions thrown by emit_tensor.
  struct TmpFile {
    std::string path;
    std::FILE* f = nullptr;
    bool keep = false;
    ~TmpFile() {
      if (f) std::fclose(f);
      if (!keep) std::remove(path.c_str());
    }
  } tmp{path + ".tmp"};
  tmp.f = std::fopen(tmp.path.c_str(), "wb");
  if (!tmp.f) fail("safetensors", "{}: cannot create: {}", tmp.path, std::strerror(errno));
  if (std::fwrite(len, 1, 8, tmp.f) != 8 || std::fwrite(text.data(), 1, text.size(), tmp.f) != text.size())
    fail("safetensors", "{}: write failed: {}", tmp.path, std::strerror(errno));
  for (size_t i = 0; i < tensors.size(); ++i) emit_tensor(i, sizes[i], tmp.f);
  if (std::fflush(tmp.f) != 0 || std::ferror(tmp.f))
    fail("safetensors", "{}: write failed: {}", tmp.path, std::strerror(errno));
  int rc = std::fclose(std::exchange(tmp.f, nullptr));
  if (rc != 0) fail("safetensors", "{}: close failed: {}", tmp.path, std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp.path, path, ec);
  if (ec) fail("safetensors", "{}: cannot rename from {}: {}", path, tmp.path, ec.message());
  tmp.keep = true;
}

}  // namespace

int64_t TensorInfo::numel() const {
  return shape_numel(shape);
}
int64_t Tensor::numel() const {
  return shape_numel(shape);
}

SafetensorsHeader parse_safetensors_header(const uint8_t* file, size_t file_size, const std::string& filename) {
  HeaderChecker check(filename);
  if (file_size < 8)
    check.file_error(fmt::format("file is {} bytes, too short for the 8-byte header length", file_size));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[i];
  if (header_len > file_size - 8)
    check.file_error(fmt::format("header length {} runs past the end of the file ({} bytes)", header_len, file_size));
  if (header_len > kMaxHeaderBytes)
    check.file_error(fmt::format("header length {} exceeds the {} byte limit", header_len, kMaxHeaderBytes));

  const char* text = reinterpret_cast<const char*>(file + 8);
  json j = parse_header_json(text, text + header_len, check);
  if (!j.is_object()) check.file_error(fmt::format("header must be a JSON object, got {}", json_kind(j)));

  SafetensorsHeader h;
  h.data_offset = 8 + header_len;
  uint64_t data_size = file_size - h.data_offset;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      h.metadata = check.metadata(value);
    } else {
      h.tensors.push_back(check.tensor(key, value, data_size));
    }
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Empty tensors own no bytes, so they cannot overlap anything.
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : h.tensors) {
    if (t.begin == t.end) continue;
    if (prev && t.begin < prev->end)
      check.tensor_error(t.name, fmt::format("data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", t.begin, t.end,
                                             prev->name, prev->begin, prev->end));
    prev = &t;
  }
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path, "safetensors") {
  header_ = parse_safetensors_header(file_.data(), file_.size(), path);
}

Tensor SafetensorsFile::tensor(const TensorInfo& info) const {
  return Tensor{info.name, info.dtype, info.shape, file_.data() + header_.data_offset + info.begin};
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const TensorToWrite& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  write_file(path, specs, metadata, [&](size_t i, size_t nbytes, std::FILE* f) {
    if (nbytes && !tensors[i].data) fail("safetensors", "{}: tensor '{}' has no data", path, tensors[i].name);
    if (std::fwrite(tensors[i].data, 1, nbytes, f) != nbytes)
      fail("safetensors", "{}.tmp: write failed: {}", path, std::strerror(errno));
  });
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& tensors,
                                const TensorFiller& fill, const std::map<std::string, std::string>& metadata) {
  std::vector<uint8_t> buffer;
  write_file(path, tensors, metadata, [&](size_t i, size_t nbytes, std::FILE* f) {
    buffer.resize(nbytes);
    fill(i, buffer.data(), nbytes);
    if (std::fwrite(buffer.data(), 1, nbytes, f) != nbytes)
      fail("safetensors", "{}.tmp: write failed: {}", path, std::strerror(errno));
  });
}

}  // namespace gqa
