// Prompt text. Failures are data: a parent's compile log or mismatch report and the reasons earlier
// attempts were refused (a diff that did not apply, an edit outside the block) are what the model most
// needs to see, so they come with the parent, trimmed to the configured budget. Every part is a
// placeholder value; a part that is empty (no artifacts, no history) is an empty string, headings included.
#include "evolve/prompt.h"

#include <fmt/format.h>

#include <map>

#include "evolve/prompt_template.h"
#include "programs/compiler.h"

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

std::string artifacts_text(const EvolveConfig& c, const Program& p) {
  if (!c.prompt.include_artifacts || c.prompt.max_artifact_bytes <= 0) return "";
  size_t budget = static_cast<size_t>(c.prompt.max_artifact_bytes);
  std::string arts;
  for (auto& [k, v] : p.artifacts.items()) {
    std::string t = v.is_string() ? v.get<std::string>() : v.dump(2);
    if (t.empty() || t == "ok" || budget == 0) continue;
    if (t.size() > budget) t = t.substr(0, budget) + "\n[truncated]";
    budget -= std::min(budget, t.size());
    arts += fmt::format("### {}\n```\n{}\n```\n", k, t);
  }
  return arts.empty() ? "" : "## Its artifacts (compiler output, correctness and benchmark reports)\n" + arts + "\n";
}

std::string programs_text(const char* title, const std::vector<const Program*>& list, Target target) {
  if (list.empty()) return "";
  std::string s = fmt::format("## {}\n", title);
  for (const Program* o : list) {
    s += fmt::format("### Program #{} (combined_score {:.4f})\n", o->id, o->combined_score);
    s += fmt::format("```{}\n{}```\n", lang(target), o->code);
  }
  return s + "\n";
}

std::string history_text(const std::vector<Attempt>& history) {
  if (history.empty()) return "";
  std::string s = "## Recent attempts\n";
  for (const Attempt& a : history) {
    s += fmt::format("- iteration {} ({}): {}", a.iteration, a.mutator, to_string(a.outcome));
    if (!a.stage.empty()) s += " at stage " + a.stage;
    if (!a.reason.empty()) s += ": " + a.reason;
    s += "\n";
  }
  return s + "\n";
}

std::string task_text(const EvolveConfig& c, Target target) {
  std::string s;
  if (c.diff_based_evolution) {
    s = "# Task\nPropose one improvement as one or more SEARCH/REPLACE blocks. Each SEARCH part must match "
        "lines inside the EVOLVE-BLOCK exactly:\n\n<<<<<<< SEARCH\n(exact lines to replace)\n=======\n(new lines)\n"
        ">>>>>>> REPLACE\n\nExplain the idea in one or two sentences first.\n";
  } else {
    s = fmt::format("# Task\nRewrite the program to make it faster. Answer with the complete program in one ```{} "
                    "code block; keep everything outside the EVOLVE-BLOCK byte for byte.\n", lang(target));
  }
  return s + fmt::format("The whole program must stay under {} bytes.\n", c.max_code_length);
}

std::map<std::string, std::string> values(const EvolveConfig& c, const PromptInputs& in) {
  const Program& p = *in.parent;
  // The parent's entry decides the contract the prompt states: the host entry's (gqa/abi.h) or the device entry's
  // inside the persistent decode step (gqa/decode_abi.cuh).
  const bool device = in.target == Target::Cuda && program_entries(p.code).device;
  return {{"target", std::string(target_name(in.target))},
          {"language", lang(in.target)},
          {"max_code_length", std::to_string(c.max_code_length)},
          {"abi", std::string(device ? decode_abi_header_text() : abi_header_text())},
          {"abi_file", device ? "include/gqa/decode_abi.cuh" : "include/gqa/abi.h"},
          {"entry", device ? "implements `gqa_decode_attend_v2` from gqa/decode_abi.cuh: the decode attention of one "
                             "split of a KV head inside the CUDA engine's persistent decode step (one launch per "
                             "token), fed K/V tiles by the step and returning partial softmax states the step merges"
                           : "implements `gqa_attention` from gqa/abi.h for ragged batches with a causal mask"},
          {"rules", evaluator_rules(in.target, device)},
          {"parent_id", std::to_string(p.id)},
          {"parent_generation", std::to_string(p.generation)},
          {"parent_score", fmt::format("{:.4f}", p.combined_score)},
          {"parent_code", p.code},
          {"parent_metrics", metrics_text(p.metrics)},
          {"parent_artifacts", artifacts_text(c, p)},
          {"top_programs", programs_text("Top programs", in.top, in.target)},
          {"diverse_programs", programs_text("Diverse programs", in.diverse, in.target)},
          {"history", history_text(in.history)},
          {"task", task_text(c, in.target)}};
}

}  // namespace

const std::string& default_system_template() {
  static const std::string t =
      "You optimise a Grouped-Query-Attention kernel for Qwen3-0.6B (16 query heads, 8 KV heads, head_dim 128, bf16) "
      "on the {{target}} target. The program {{entry}}. It is scored by the speedup over a strong stock kernel, after "
      "a strict correctness check on fresh random inputs; a wrong answer scores 0. Change only the code between "
      "EVOLVE-BLOCK-START and EVOLVE-BLOCK-END.\n\n"
      "## The ABI contract every program keeps ({{abi_file}})\n```c\n{{abi}}```\n\n"
      "## The evaluator's rules\n{{rules}}";
  return t;
}

const std::string& default_user_template() {
  static const std::string t =
      "# Current program (#{{parent_id}}, generation {{parent_generation}}, combined_score {{parent_score}})\n\n"
      "```{{language}}\n{{parent_code}}```\n\n## Its metrics\n{{parent_metrics}}\n"
      "{{parent_artifacts}}{{top_programs}}{{diverse_programs}}{{history}}{{task}}";
  return t;
}

std::string evaluator_rules(Target target, bool device_entry) {
  if (device_entry)
    return "- Static checks before compiling: exactly one EVOLVE-BLOCK, nothing outside it changed against the parent, "
           "only #include of gqa/decode_abi.cuh and standard math/CUDA headers, no asm, no printf, no allocation; the "
           "program defines gqa_decode_attend_v2 and not gqa_attention.\n"
           "- Correctness, outside the engine: a harness calls the entry as the persistent step does (every position "
           "residue of the tile size, 1 to 16 splits, large logits, fresh random inputs) and merges the partial "
           "states in float64 against a float64 reference (row error <= 2e-3); the scratch area is poisoned with NaN "
           "and fenced by canaries; q, the new key/value and the tiles must stay unchanged; every warp releases every "
           "tile it acquired, in order; two calls on the same inputs must give the same bits.\n"
           "- End to end: the entry is linked into the engine's persistent step (nvJitLink) and the greedy tokens of "
           "the built-in step are fed back (teacher forcing): each step's logits must be within relative L2 0.05 of "
           "the built-in step's.\n"
           "- Score: 0 for any failure; otherwise the geometric mean over contexts 1K, 8K and 32K of the decode "
           "tokens/s in the persistent step with the program over the built-in step's, timed alternately on the same "
           "engine (1.0: as fast as the engine's own attention).\n"
           "- Inside the step: the 256 compute threads call the entry together; never __syncthreads (the producer "
           "warp does not take part: it hangs), only gqa_decode_sync(); no __shared__ variables of your own (use "
           "`scratch`, `scratch_bytes` of it); a hang or a fault fails the evaluation. A hard wall-clock limit "
           "covers compile, link and every stage.\n";
  std::string s =
      "- Static checks before compiling: exactly one EVOLVE-BLOCK, nothing outside it changed against the parent, "
      "only #include of gqa/abi.h and standard math headers (<cmath>, <cstdint>, <cstring>, <algorithm>, <limits>, "
      "<omp.h>, intrinsics headers...), no token pasting, only omp/unroll/ivdep/once/optimisation pragmas.\n"
      "- Refused identifiers: processes, exit/abort, files and output (printf, fopen, cout...), network, dlopen, "
      "syscall, asm, the environment (getenv), allocation (malloc, new, cudaMalloc...: use the workspace), threads "
      "and sleeping (use OpenMP), synchronisation and device control, load-time constructors, cache flushes, "
      "OpenMP settings that outlive the call (use num_threads clauses).\n"
      "- The compiled library may import only an allow-list of symbols; gqa_abi_version() must return "
      "GQA_ABI_VERSION.\n"
      "- Correctness: fixed and random shapes (ragged batches, decode and chunked prefill, every KV-length residue, "
      "large logits) on fresh random inputs against a float64 reference; outputs and workspace are poisoned first, "
      "every element of `out` must be written, inputs must not change, nothing may be written outside `out` and "
      "`workspace`, no state may carry results between calls.\n"
      "- Score: 0 for any failure; otherwise the weighted geometric-mean speedup over the stock kernel at decode and "
      "prefill shapes, timed interleaved with it in the same process; an end-to-end stage runs the program inside the "
      "engine during greedy generation and must match.\n"
      "- A hard wall-clock limit covers compile, load and every stage.\n";
  if (target == Target::Cuda)
    s += "- CUDA: every pointer (lengths included) is device memory; enqueue everything on `stream`; the program must "
         "be capturable into a CUDA graph (no synchronisation, no allocation, no host reads of device data).\n";
  else
    s += "- CPU: runs under a seccomp filter; use at most `num_threads` OpenMP threads (num_threads clause).\n";
  return s;
}

std::string system_message(const EvolveConfig& c, const PromptInputs& in) {
  if (!c.llm.system_message.empty()) return c.llm.system_message;
  return fill_template(c.prompt.system_template_text.empty() ? default_system_template() : c.prompt.system_template_text,
                       values(c, in));
}

std::string user_prompt(const EvolveConfig& c, const PromptInputs& in) {
  return fill_template(c.prompt.user_template_text.empty() ? default_user_template() : c.prompt.user_template_text,
                       values(c, in));
}

}  // namespace gqa::evolve
