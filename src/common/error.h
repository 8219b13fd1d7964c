// Error type used across gqa-evolve: exceptions whose message starts with the component in brackets,
// e.g. "[safetensors] model.safetensors: tensor 'x' ends past file end". Only main() turns them into
// exit codes; library code never exits.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace gqa {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws gqa::Error with "[component] " + formatted message.
template <class... Args>
[[noreturn]] void fail(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format("[{}] ", component) + fmt::format(f, std::forward<Args>(args)...));
}

// Reads a whole file into a string; throws gqa::Error naming the file when it cannot be read.
std::string read_file(const std::string& path, std::string_view component);

// Writes a file atomically (temporary file in the same folder, then rename).
void write_file_atomic(const std::string& path, std::string_view data, std::string_view component);

}  // namespace gqa
