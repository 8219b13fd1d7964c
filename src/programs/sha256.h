// SHA-256 (FIPS 180-4), for the compile cache's keys: small, dependency-free, tested against the
// standard's vectors.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace gqa {

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view data);
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

inline std::string sha256_hex(std::string_view data) { return Sha256().update(data).hex(); }

}  // namespace gqa
