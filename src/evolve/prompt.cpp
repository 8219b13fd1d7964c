// Prompt text. Failures are data: a parent's compile log or mismatch report and the reasons earlier
// attempts were refused (a diff that did not apply, an edit outside the block) are what the model most
// needs to see, so they come with the parent, trimmed to the configured budget.
#include "evolve/prompt.h"

#include <fmt/format.h>

namespace gqa::evolve {

namespace {

std::string metrics_text(const nlohmann::json& m) {
  std::string s;
  for (auto& [k, v] : m.items())
    if (v.is_primitive()) {
      std::string t = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (t.size() > 200) t = t.substr(0, 200) + "...";
      s += fmt::format("- {}: {}\n", k, t);
    }
  return s;
}

std::string lang(Target target) { return target == Target::Cuda ? "cuda" : "cpp"; }

}  // namespace

std::string system_message(const EvolveConfig& c) {
  if (!c.llm.system_message.empty()) return c.llm.system_message;
  return fmt::format(
      "You optimise a Grouped-Query-Attention kernel for Qwen3-0.6B (16 query heads, 8 KV heads, head_dim 128, "
      "bf16) on the {} target. The program implements `gqa_attention` from gqa/abi.h for ragged batches with a "
      "causal mask. It is scored by the speedup over a strong stock kernel, after a strict correctness check on "
      "fresh random inputs; a wrong answer scores 0. Change only the code between EVOLVE-BLOCK-START and "
      "EVOLVE-BLOCK-END. Do not allocate memory, create threads outside OpenMP, synchronise, or use files, "
      "processes, the network or the environment.",
      target_name(c.target));
}

std::string user_prompt(const EvolveConfig& c, const PromptInputs& in) {
  const Program& p = *in.parent;
  std::string s;
  s += fmt::format("# Current program (#{}, generation {}, combined_score {:.4f})\n\n", p.id, p.generation, p.combined_score);
  s += fmt::format("```{}\n{}```\n\n## Its metrics\n{}\n", lang(in.target), p.code, metrics_text(p.metrics));
  if (c.prompt.include_artifacts && c.prompt.max_artifact_bytes > 0) {
    size_t budget = static_cast<size_t>(c.prompt.max_artifact_bytes);
    std::string arts;
    for (auto& [k, v] : p.artifacts.items()) {
      std::string t = v.is_string() ? v.get<std::string>() : v.dump(2);
      if (t.empty() || t == "ok" || budget == 0) continue;
      if (t.size() > budget) t = t.substr(0, budget) + "\n[truncated]";
      budget -= std::min(budget, t.size());
      arts += fmt::format("### {}\n```\n{}\n```\n", k, t);
    }
    if (!arts.empty()) s += "## Its artifacts (compiler output, correctness and benchmark reports)\n" + arts + "\n";
  }
  auto others = [&](const char* title, const std::vector<const Program*>& list) {
    if (list.empty()) return;
    s += fmt::format("## {}\n", title);
    for (const Program* o : list) {
      s += fmt::format("### Program #{} (combined_score {:.4f})\n", o->id, o->combined_score);
      s += fmt::format("```{}\n{}```\n", lang(in.target), o->code);
    }
    s += "\n";
  };
  others("Top programs", in.top);
  others("Diverse programs", in.diverse);
  if (!in.history.empty()) {
    s += "## Recent attempts\n";
    for (const Attempt& a : in.history) {
      s += fmt::format("- iteration {} ({}): {}", a.iteration, a.mutator, to_string(a.outcome));
      if (!a.stage.empty()) s += " at stage " + a.stage;
      if (!a.reason.empty()) s += ": " + a.reason;
      s += "\n";
    }
    s += "\n";
  }
  if (c.diff_based_evolution) {
    s += "# Task\nPropose one improvement as one or more SEARCH/REPLACE blocks. Each SEARCH part must match "
         "lines inside the EVOLVE-BLOCK exactly:\n\n<<<<<<< SEARCH\n(exact lines to replace)\n=======\n(new lines)\n"
         ">>>>>>> REPLACE\n\nExplain the idea in one or two sentences first.\n";
  } else {
    s += fmt::format("# Task\nRewrite the program to make it faster. Answer with the complete program in one ```{} "
                     "code block; keep everything outside the EVOLVE-BLOCK byte for byte.\n", lang(in.target));
  }
  s += fmt::format("The whole program must stay under {} bytes.\n", c.max_code_length);
  return s;
}

}  // namespace gqa::evolve
