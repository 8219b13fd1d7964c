// The evolution run's configuration, one struct per section of the YAML file (like OpenEvolve's
// dataclasses). Loading validates everything: unknown keys, wrong types and out-of-range values are errors.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evaluate/cases.h"
#include "programs/compiler.h"

namespace gqa::evolve {

// How one model is asked. In a models entry every key left out takes the llm section's value when the file
// is loaded, so these are the settings a request uses.
struct LlmModel {
  std::string name;
  double weight = 1.0;
  std::string api_base;                       // e.g. http://127.0.0.1:8080/v1; empty: the offline mutator
  std::string api_key_env;                    // name of the environment variable holding the key (never the key)
  std::optional<double> temperature;          // unset: not sent (the server's default; reasoning models need that)
  int max_tokens = 4096;
  std::string max_tokens_field = "max_tokens";  // or max_completion_tokens (OpenAI's GPT-5 and o-series)
  std::string reasoning_effort;               // sent when set (none, minimal, low, medium, high, xhigh)
  nlohmann::json extra_body = nlohmann::json::object();  // merged into the request body
  // Prices per million tokens (any currency; the reports print the sum). Unset: calls are not priced.
  std::optional<double> input_price_per_mtok, output_price_per_mtok;
  bool priced() const { return input_price_per_mtok || output_price_per_mtok; }
  // The cost of one call's usage; nullopt when the model has no prices.
  std::optional<double> cost(int64_t prompt_tokens, int64_t completion_tokens) const;
};

struct LlmConfig {
  std::vector<LlmModel> models;      // the ensemble; one is drawn per iteration by weight (and bandit)
  LlmModel defaults;                 // the section's request settings (name and weight unused)
  double timeout_seconds = 120;      // one HTTP request
  int retries = 3;                   // extra attempts after a 429, a 5xx, a timeout or a refused connection
  double retry_backoff_seconds = 2;  // doubled after every retry
  int max_fatal_errors = 2;          // consecutive 400/401/403/404 of one model before it is dropped
  bool bandit = true;                // adapt model choice to which models produce improvements
  std::string system_message;
  // The LLM mutator is used when the models have an api_base (all of them do, or none).
  bool enabled() const { return !models.empty() && !models.front().api_base.empty(); }
};

struct PromptConfig {
  int num_top_programs = 3;
  int num_diverse_programs = 2;
  bool include_artifacts = true;
  int max_artifact_bytes = 4096;  // budget for the parent's artifacts in one prompt
  int history = 5;                // recent attempts (with failure reasons) shown
  // Template files (paths as written in the config, resolved against its folder) and their text, read and
  // checked when the config is loaded: {{placeholders}} of prompt_template.h; empty: the built-in prompts.
  std::string system_template, user_template;
  std::string system_template_text, user_template_text;
};

struct DatabaseConfig {
  int num_islands = 4;
  int migration_interval = 20;   // iterations between ring migrations
  double migration_rate = 0.1;   // fraction of an island's elites copied to the next island
  std::vector<std::string> feature_dimensions = {"complexity", "diversity"};
  int feature_bins = 8;
  int archive_size = 20;
  int diversity_reference_size = 16;  // programs of the archive that "diversity" is measured against
  double exploration_ratio = 0.2;
  double exploitation_ratio = 0.6;
  double elite_selection_ratio = 0.2;
};

struct OfflineConfig {
  double crossover_rate = 0.25;    // children made by crossing the parent with an inspiration
  double jump_rate = 0.2;          // a mutated knob jumps to any allowed value instead of a neighbour
  int max_knobs_per_mutation = 2;
  int max_attempts = 500;          // draws before giving up on finding an unseen program
};

struct EvaluatorConfig {
  double timeout_seconds = 300;
  bool bench = true;
  double bench_seconds = 1.0;
  int min_reps = 21;
  bool end_to_end = true;
  int threads = 0;
  double memory_limit_gb = 16;
  std::string cache_dir;
  std::string cuda_arch;
  uint64_t seed = 0;
  // The attention geometry the programs are scored at: what `shapes_of` names (a make-model preset or a model
  // directory; absent: Qwen3-0.6B's), resolved when the config is read.
  eval::HeadGeometry heads;
};

struct EvolveConfig {
  std::string path;  // the file it came from (for messages)
  int max_iterations = 100;
  int checkpoint_interval = 10;
  uint64_t random_seed = 42;
  bool diff_based_evolution = true;
  int max_code_length = 60000;
  int early_stopping_patience = 0;  // iterations without improvement; 0: never
  double target_score = 0;          // stop once reached; 0: never
  Target target = Target::Cpu;
  int workers = 0;                  // 0: one per GPU on cuda, 1 on cpu
  LlmConfig llm;
  PromptConfig prompt;
  DatabaseConfig database;
  OfflineConfig offline;
  EvaluatorConfig evaluator;
};

// Throws gqa::Error "[config] FILE: KEY.PATH ..." on the first problem.
EvolveConfig load_config(const std::string& path);
EvolveConfig parse_config(const std::string& yaml_text, const std::string& name);

}  // namespace gqa::evolve
