// `gqa-evolve make-model`: writes a random-weight model from a preset.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "model/make_model.h"

namespace gqa::cli {

Runner add_make_model(CLI::App& app) {
  struct Opts {
    std::string preset = "qwen3-0.6b", out, tokenizer_dir;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  std::string presets;
  for (const auto& p : preset_names()) presets += (presets.empty() ? "" : ", ") + p;
  app.add_option("--preset", o->preset, "configuration preset: " + presets)->capture_default_str();
  app.add_option("--seed", o->seed, "random seed (same seed, same bytes)")->capture_default_str();
  app.add_option("--out", o->out, "output model directory")->required();
  app.add_option("--tokenizer-dir", o->tokenizer_dir,
                 "folder with tokenizer.json and tokenizer_config.json to copy (default: $GQA_TOKENIZER_DIR or "
                 "assets/qwen3-tokenizer when present; empty string: none)");
  return [o]() {
    std::string tok = o->tokenizer_dir;
    if (tok.empty()) {
      const char* env = std::getenv("GQA_TOKENIZER_DIR");
      tok = env ? env : "assets/qwen3-tokenizer";
      if (!std::filesystem::exists(tok + "/tokenizer.json")) tok.clear();
    }
    ModelConfig cfg = preset_config(o->preset);
    auto t0 = std::chrono::steady_clock::now();
    make_random_model(cfg, o->seed, o->out, tok);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s: preset %s, seed %llu, %.1f M parameters%s (%.1f s)\n", o->out.c_str(), o->preset.c_str(),
                static_cast<unsigned long long>(o->seed), cfg.parameter_count() / 1e6,
                tok.empty() ? ", no tokenizer files" : "", s);
    return 0;
  };
}

}  // namespace gqa::cli
