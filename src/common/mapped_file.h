// Read-only memory mapping of a file (RAII). Model weights are used straight from the mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace gqa {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws gqa::Error("[component] path: ...") when the file cannot be opened or mapped.
  MappedFile(const std::string& path, std::string_view component);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace gqa
