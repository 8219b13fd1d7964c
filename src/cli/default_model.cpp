// The built-in default model: a deterministic random-weight Qwen3-0.6B, written on first use.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "common/error.h"
#include "model/make_model.h"

namespace gqa::cli {

std::string default_model_dir() {
  if (const char* env = std::getenv("GQA_MODEL_DIR"); env && *env) return env;
  return "models/qwen3-0.6b-random";
}

// Used by generate: makes sure the default model exists.
std::string ensure_default_model() {
  std::string dir = default_model_dir();
  if (std::filesystem::exists(dir + "/config.json")) return dir;
  const char* env = std::getenv("GQA_TOKENIZER_DIR");
  std::string tok = env ? env : "assets/qwen3-tokenizer";
  if (!std::filesystem::exists(tok + "/tokenizer.json"))
    fail("generate", "no --model given, and the default model {} does not exist; the tokenizer files to build it "
         "are missing too ({}/tokenizer.json): run scripts/setup.sh", dir, tok);
  std::fprintf(stderr, "making the default model %s (random Qwen3-0.6B weights, seed 0)...\n", dir.c_str());
  make_random_model(preset_config("qwen3-0.6b"), 0, dir, tok);
  return dir;
}

}  // namespace gqa::cli
