// File helpers that report failures as gqa::Error.
#include "common/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gqa {

std::string read_file(const std::string& path, std::string_view component) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(component, "{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(component, "{}: read error", path);
  return ss.str();
}

void write_file_atomic(const std::string& path, std::string_view data, std::string_view component) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(component, "{}: cannot create: {}", tmp, std::strerror(errno));
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) fail(component, "{}: write failed: {}", tmp, std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(component, "{}: cannot rename from {}: {}", path, tmp, ec.message());
}

}  // namespace gqa
