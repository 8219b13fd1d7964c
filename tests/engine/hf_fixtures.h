// Test helper shared by the CPU and CUDA engines' transformers tests: the fixture files of
// scripts/make_hf_fixtures.py and a gtest-safe name for each.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace gqa::testing {

// tests/fixtures/hf/*.json, sorted; $GQA_FIXTURES_DIR wins over the build-time path (on the GPU machine
// the checkout lives elsewhere than where it was built).
inline std::vector<std::filesystem::path> hf_fixture_files() {
  const char* env = std::getenv("GQA_FIXTURES_DIR");
  std::filesystem::path dir = std::filesystem::path(env ? env : GQA_FIXTURES_DIR) / "hf";
  std::vector<std::filesystem::path> files;
  if (std::filesystem::exists(dir))
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

inline std::string hf_fixture_test_name(const std::filesystem::path& p) {
  std::string s = p.stem().string();
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

}  // namespace gqa::testing
