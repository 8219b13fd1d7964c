// Prompt templates: text with {{name}} placeholders, filled per iteration. The names are fixed (below and
// in docs/evolve.md); a template naming any other is refused when the config is loaded.
//   target, language, max_code_length, abi (include/gqa/abi.h, the contract), rules (the evaluator's),
//   parent_id, parent_generation, parent_score, parent_code, parent_metrics, parent_artifacts,
//   top_programs, diverse_programs, history, task (the answer format: SEARCH/REPLACE or a full program)
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gqa::evolve {

const std::vector<std::string>& template_placeholders();

// Why the text is not a valid template ("line 3: unknown placeholder {{foo}} (known: ...)"), or nullopt.
std::optional<std::string> template_problem(const std::string& text);

// The text with every placeholder replaced by its value (every known name must be in `values`).
std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values);

}  // namespace gqa::evolve
