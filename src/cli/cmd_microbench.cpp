// `gqa-evolve microbench PROG`: attention alone at decode and prefill shapes, beside the stock kernel, with
// % of measured read bandwidth and TFLOP/s. It is the evaluator's correctness + microbenchmark stages (in
// their sandboxed worker) without end to end, so the numbers are the ones evolution optimises.
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "evaluate/evaluator.h"

namespace gqa::cli {

Runner add_microbench(CLI::App& app) {
  struct Opts {
    std::string program, target, cuda_arch, cache_dir, shapes_of;
    double bench_seconds = 1.0, timeout = 600;
    int threads = 0, min_reps = 21;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("program", o->program, "attention program (.cpp: cpu target, .cu: cuda target)")->required()->check(CLI::ExistingFile);
  app.add_option("--target", o->target, "cpu or cuda (default: from the file extension)")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--bench-seconds", o->bench_seconds, "time per shape after the minimum repetitions")->capture_default_str();
  app.add_option("--min-reps", o->min_reps, "repetitions per shape and kernel, at least")->capture_default_str();
  app.add_option("--threads", o->threads, "cpu target: threads given to the kernels (0: all cores)")->capture_default_str();
  app.add_option("--timeout", o->timeout, "seconds the sandboxed worker may run")->capture_default_str();
  app.add_option("--cuda-arch", o->cuda_arch, "cuda target: sm_XY to compile for (default: the GPU's)");
  app.add_option("--cache-dir", o->cache_dir, "compile cache (default: $GQA_CACHE_DIR or ~/.cache/gqa-evolve)");
  app.add_flag("--json", o->json, "print the evaluator's {metrics, artifacts} as JSON");
  app.add_option("--shapes-of", o->shapes_of,
                 "time at this model's attention geometry: a preset (qwen3-4b, ...) or a model directory "
                 "(default: Qwen3-0.6B's 16:8 heads of 128)");
  return [o]() {
    eval::EvaluateOptions eo;
    eo.program_path = o->program;
    eo.target = o->target.empty() ? target_of_path(o->program) : parse_target(o->target);
    eo.cuda_arch = o->cuda_arch;
    eo.cache_dir = o->cache_dir;
    eo.timeout_seconds = o->timeout;
    eo.threads = o->threads;
    eo.bench = true;
    eo.end_to_end = false;
    eo.bench_seconds = o->bench_seconds;
    eo.min_reps = o->min_reps;
    if (!o->shapes_of.empty()) eo.heads = eval::head_geometry_of(o->shapes_of);
    const nlohmann::json r = eval::evaluate(eo);
    if (o->json) {
      std::printf("%s\n", r.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    const auto& m = r["metrics"];
    if (!m["failed_stage"].is_null()) {
      std::printf("%s: failed stage %s: %s\n", o->program.c_str(), m["failed_stage"].get<std::string>().c_str(),
                  m.value("failure", std::string()).c_str());
      for (const char* k : {"compile_log", "correctness_report", "worker_stderr"})
        if (r["artifacts"].contains(k) && r["artifacts"][k].is_string() && !r["artifacts"][k].get<std::string>().empty())
          std::printf("\n== %s\n%s\n", k, r["artifacts"][k].get<std::string>().c_str());
      return 1;
    }
    std::printf("%s (%s): correct; read bandwidth measured %.0f GB/s\n", o->program.c_str(),
                std::string(target_name(eo.target)).c_str(), m.value("read_bandwidth_gbps", 0.0));
    std::printf("%-22s %11s %11s %8s %9s %9s %10s %10s %5s\n", "shape", "stock us", "program us", "speedup",
                "stock %BW", "prog %BW", "stock TF/s", "prog TF/s", "reps");
    for (const auto& s : m.value("benchmark", nlohmann::json::array())) {
      const double speedup = s.value("speedup", 0.0);
      // The CPU stage reports GFLOP/s, the CUDA stage TFLOP/s.
      const double prog_tf = s.contains("program_tflops") ? s["program_tflops"].get<double>()
                                                          : s.value("program_gflops", 0.0) * 1e-3;
      std::printf("%-22s %11.2f %11.2f %8.3f %9.1f %9.1f %10.4f %10.4f %5d\n", s["shape"].get<std::string>().c_str(),
                  s.value("stock_median_us", 0.0), s.value("program_median_us", 0.0), speedup,
                  s.value("stock_percent_of_read_bandwidth", 0.0), s.value("percent_of_read_bandwidth", 0.0),
                  speedup > 0 ? prog_tf / speedup : 0.0, prog_tf, s.value("reps", 0));
    }
    std::printf("speedup (weighted geometric mean over shapes): %.3f\n", m.value("speedup_geomean", 0.0));
    return 0;
  };
}

}  // namespace gqa::cli
