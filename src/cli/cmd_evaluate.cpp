// `gqa-evolve evaluate PROG`: scores an attention program (static checks, compile, correctness,
// microbenchmark, end to end) and prints a summary or {metrics, artifacts} as JSON. `eval-worker` is the
// hidden subcommand the evaluator re-executes itself as, to run the candidate in a separate process.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "common/error.h"
#include "evaluate/evaluator.h"
#include "evaluate/worker.h"

namespace gqa::cli {

Runner add_evaluate(CLI::App& app) {
  struct Opts {
    std::string program, parent, target, cache_dir, cuda_arch, artifacts_dir, shapes_of;
    bool json = false, no_bench = false, no_e2e = false, no_cuda_sandbox = false;
    double timeout = 300, bench_seconds = 1.0;
    int threads = 0;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("program", o->program, "program source (.cpp: cpu target, .cu: cuda target)")->required()->check(CLI::ExistingFile);
  app.add_option("--target", o->target, "cpu or cuda (default: from the file extension)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--parent", o->parent, "the program this one was derived from: edits outside its EVOLVE-BLOCK are refused")
      ->check(CLI::ExistingFile);
  app.add_flag("--json", o->json, "print {metrics, artifacts} as one JSON object");
  app.add_option("--timeout", o->timeout, "seconds the sandboxed worker may run in all")->capture_default_str();
  app.add_option("--threads", o->threads, "cpu target: threads given to programs (0: all cores)")->capture_default_str();
  app.add_option("--seed", o->seed, "input seed (0: fresh random inputs)")->capture_default_str();
  app.add_option("--bench-seconds", o->bench_seconds, "time per benchmark shape after the minimum repetitions")->capture_default_str();
  app.add_flag("--no-bench", o->no_bench, "skip the microbenchmark (combined_score is then 1 for a correct program)");
  app.add_flag("--no-e2e", o->no_e2e, "skip end-to-end generation");
  app.add_flag("--no-cuda-sandbox", o->no_cuda_sandbox,
               "cuda target: run the program without the worker's seccomp filter (on by default)");
  app.add_option("--cache-dir", o->cache_dir, "compile cache and end-to-end model (default: $GQA_CACHE_DIR or ~/.cache/gqa-evolve)");
  app.add_option("--cuda-arch", o->cuda_arch, "cuda target: sm_XY to compile for (default: the GPU's)");
  app.add_option("--artifacts-dir", o->artifacts_dir, "also write each artifact to a file in this folder");
  app.add_option("--shapes-of", o->shapes_of,
                 "check and time at this model's attention geometry: a preset (qwen3-4b, ...) or a model directory "
                 "(default: Qwen3-0.6B's 16:8 heads of 128)");
  return [o]() {
    eval::EvaluateOptions eo;
    eo.program_path = o->program;
    if (!o->parent.empty()) eo.parent_path = o->parent;
    eo.target = o->target.empty() ? target_of_path(o->program) : parse_target(o->target);
    eo.cache_dir = o->cache_dir;
    eo.cuda_arch = o->cuda_arch;
    eo.timeout_seconds = o->timeout;
    eo.threads = o->threads;
    eo.seed = o->seed;
    eo.bench = !o->no_bench;
    eo.end_to_end = !o->no_e2e;
    eo.cuda_sandbox = !o->no_cuda_sandbox;
    eo.bench_seconds = o->bench_seconds;
    if (!o->shapes_of.empty()) eo.heads = eval::head_geometry_of(o->shapes_of);
    nlohmann::json r = eval::evaluate(eo);
    if (!o->artifacts_dir.empty()) {
      std::filesystem::create_directories(o->artifacts_dir);
      for (auto& [k, v] : r["artifacts"].items())
        write_file_atomic(o->artifacts_dir + "/" + k + ".txt", v.is_string() ? v.get<std::string>() : v.dump(2), "evaluate");
    }
    if (o->json) {
      std::printf("%s\n", r.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    const auto& m = r["metrics"];
    std::printf("program:        %s (%s)\n", o->program.c_str(), m["target"].get<std::string>().c_str());
    std::printf("correct:        %s\n", m["correct"].get<bool>() ? "yes" : "no");
    if (!m["failed_stage"].is_null())
      std::printf("failed stage:   %s: %s\n", m["failed_stage"].get<std::string>().c_str(),
                  m.value("failure", std::string()).c_str());
    std::printf("combined_score: %.4f\n", m["combined_score"].get<double>());
    if (m.contains("e2e_token_agreement"))
      std::printf("end to end:     token agreement %.3f (first %d tokens identical), decode tok/s ratio %.3f, %llu program calls\n",
                  m["e2e_token_agreement"].get<double>(), m["e2e_prefix_agreement"].get<int>(),
                  m["e2e_decode_tps_ratio"].get<double>(), m["e2e_program_calls"].get<unsigned long long>());
    const auto& a = r["artifacts"];
    for (const char* k : {"benchmark_table", "correctness_report"})
      if (a.contains(k)) std::printf("\n== %s\n%s", k, a[k].get<std::string>().c_str());
    if (!m["failed_stage"].is_null())
      for (const char* k : {"static_check", "compile_log", "worker_stderr"})
        if (a.contains(k) && !a[k].get<std::string>().empty() && a[k] != "ok")
          std::printf("\n== %s\n%s\n", k, a[k].get<std::string>().c_str());
    std::printf("\nevaluation took %.1f s (compile %s)\n", m["evaluation_seconds"].get<double>(),
                m.value("compile_cached", false) ? "cached" : "fresh");
    return 0;
  };
}

Runner add_eval_worker(CLI::App& app) {
  auto req = std::make_shared<eval::WorkerRequest>();
  auto target = std::make_shared<std::string>("cpu");
  auto no_bench = std::make_shared<bool>(false), no_e2e = std::make_shared<bool>(false);
  app.add_option("--so", req->so_path);
  app.add_option("--lto", req->lto_path);
  app.add_option("--target", *target);
  app.add_option("--seed", req->settings.seed);
  app.add_option("--threads", req->settings.threads);
  app.add_option("--min-reps", req->settings.min_reps);
  app.add_option("--bench-seconds", req->settings.bench_seconds);
  app.add_option("--model", req->settings.model_dir);
  auto heads = std::make_shared<std::string>(eval::format_head_geometry({}));
  app.add_option("--heads", *heads);
  app.add_flag("--no-bench", *no_bench);
  app.add_flag("--no-e2e", *no_e2e);
  app.add_flag("--cuda-sandbox", req->settings.cuda_sandbox);
  app.group("");  // hidden: only the evaluator runs it
  return [req, target, no_bench, no_e2e, heads]() {
    if (req->so_path.empty() == req->lto_path.empty()) fail("eval-worker", "give one of --so and --lto");
    req->settings.heads = eval::parse_head_geometry(*heads);
    req->settings.target = parse_target(*target);
    req->bench = !*no_bench;
    req->end_to_end = !*no_e2e;
    return eval::run_worker(*req);
  };
}

}  // namespace gqa::cli
