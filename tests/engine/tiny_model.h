// Test helper: writes a small random model (make_random_model) once per test process into a temp folder.
#pragma once
#include <filesystem>
#include <unistd.h>

#include <map>
#include <string>

#include "model/make_model.h"

namespace gqa::testing {

inline std::string tiny_model_dir(const std::string& preset, uint64_t seed) {
  static std::map<std::string, std::string> made;
  std::string key = preset + "-" + std::to_string(seed);
  if (auto it = made.find(key); it != made.end()) return it->second;
  auto dir = std::filesystem::temp_directory_path() / ("gqa-test-" + std::to_string(::getpid()) + "-" + key);
  make_random_model(preset_config(preset), seed, dir.string(), "");
  made[key] = dir.string();
  return dir.string();
}

}  // namespace gqa::testing
