// gqa-evolve: one binary, one subcommand per job. Library errors (gqa::Error) become exit code 1 with
// one line on stderr; usage errors exit 2.
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"gqa-evolve: evolve Grouped-Query-Attention kernels for Qwen3 and measure them on real generation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gqa-evolve 0.1.0");
  std::map<CLI::App*, gqa::cli::Runner> runners;
  auto add = [&](const char* name, const char* desc, gqa::cli::Runner (*fn)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, desc);
    runners[sub] = fn(*sub);
  };
  add("make-model", "write a deterministic random-weight Qwen3 model in HF format", gqa::cli::add_make_model);
  add("tokenize", "print the token ids of a text, a JSON-lines file or a chat", gqa::cli::add_tokenize);
  add("generate", "generate text with a Qwen3 model and report its speed", gqa::cli::add_generate);
  add("evaluate", "check, time and score an attention program against the stock kernel", gqa::cli::add_evaluate);
  add("evolve", "evolve an attention program: program database, islands, LLM or offline mutations", gqa::cli::add_evolve);
  add("report", "rewrite a run's report.html and report.md from its database (also while it runs)", gqa::cli::add_report);
  add("bench", "benchmark generation over scenarios (quick, full, compare, extended) with statistics and charts", gqa::cli::add_bench);
  add("microbench", "time an attention program alone at decode and prefill shapes beside the stock kernel", gqa::cli::add_microbench);
  add("eval-worker", "", gqa::cli::add_eval_worker);  // hidden: the evaluator's sandboxed child
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const gqa::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: unexpected: %s\n", e.what());
    return 1;
  }
  return 2;
}
