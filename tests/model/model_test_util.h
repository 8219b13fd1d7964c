// Helpers for the model-file tests: a self-deleting temp folder, raw file writing, and error capture.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "common/error.h"

namespace gqa::testing {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("gqa-model-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The gqa::Error message thrown by f, or "<no error>"; any other exception type fails the test.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gqa::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "non-gqa exception: " << e.what();
    return std::string("<foreign exception> ") + e.what();
  }
  return "<no error>";
}

#define EXPECT_ERROR_CONTAINS(statement, substring)                                    \
  do {                                                                                 \
    std::string gqa_msg_ = ::gqa::testing::error_of([&] { statement; });               \
    EXPECT_NE(gqa_msg_.find(substring), std::string::npos)                             \
        << "expected an error containing: " << (substring) << "\n  got: " << gqa_msg_; \
  } while (0)

}  // namespace gqa::testing
