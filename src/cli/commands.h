// Subcommands of the gqa-evolve binary. Each registers its options on the CLI11 app and returns the
// function that runs it (returning the process exit code).
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace gqa::cli {

using Runner = std::function<int()>;

Runner add_make_model(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_generate(CLI::App& app);
Runner add_evaluate(CLI::App& app);
Runner add_eval_worker(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_microbench(CLI::App& app);
Runner add_evolve(CLI::App& app);
Runner add_report(CLI::App& app);

// Where the chart library of report.html is (scripts/setup.sh puts it there): $GQA_ASSETS_DIR, else
// ./assets.
std::string default_assets_dir();

// The model used when --model is not given: $GQA_MODEL_DIR, else models/qwen3-0.6b-random under the
// current folder, written there by make-model on first use (tokenizer from $GQA_TOKENIZER_DIR or
// assets/qwen3-tokenizer).
std::string default_model_dir();
// default_model_dir(), made first when it does not exist yet.
std::string ensure_default_model();

}  // namespace gqa::cli
