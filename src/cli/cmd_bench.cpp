// `gqa-evolve bench`: the scenario benchmark (quick | full | compare | extended) with reports in
// --output-dir; Ctrl-C stops after the current run and still writes what was measured.
#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>

#include "bench/report.h"
#include "bench/runner.h"
#include "bench/scenarios.h"
#include "bench/summaries.h"
#include "cli/commands.h"
#include "cli/engine_setup.h"
#include "common/error.h"
#include "engine/cpu/attention_bf16.h"
#include "tokenizer/tokenizer.h"

namespace gqa::cli {

namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};

extern "C" void on_sigint(int) {
  if (g_stop.exchange(true)) {  // a second Ctrl-C: stop now
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
  }
}

// Installs the SIGINT handler for the lifetime of a benchmark and restores the previous one after.
class SigintScope {
 public:
  SigintScope() {
    g_stop = false;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintScope() { sigaction(SIGINT, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

std::string utc_now(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// The best program of the most recent evolution run (a folder with evolve.db and best/best_program.EXT)
// under $GQA_EVOLVE_RUN, or the current folder and two levels below it.
std::string find_latest_best_program(const std::string& ext) {
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("GQA_EVOLVE_RUN"); env && *env) roots.push_back(env);
  roots.push_back(".");
  std::optional<fs::path> best;
  fs::file_time_type best_time{};
  auto consider = [&](const fs::path& run) {
    std::error_code ec;
    const fs::path p = run / "best" / ("best_program" + ext);
    if (!fs::exists(run / "evolve.db", ec) || !fs::is_regular_file(p, ec)) return;
    const auto t = fs::last_write_time(p, ec);
    if (!ec && (!best || t > best_time)) best = p, best_time = t;
  };
  for (const auto& root : roots) {
    std::error_code ec;
    consider(root);
    for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
      if (it.depth() >= 2) it.disable_recursion_pending();
      if (it->is_directory(ec)) consider(it->path());
    }
  }
  return best ? best->string() : "";
}

// A progress bar on stderr, redrawn at most 10 times a second; the fraction is weighted by tokens, so one
// 5,000-token scenario counts for what it costs.
class ProgressBar {
 public:
  ProgressBar(const std::vector<bench::PreparedScenario>& sc, int runs_per_scenario) : t0_(clock::now()) {
    for (const auto& s : sc) {
      offsets_.push_back(total_);
      total_ += static_cast<double>(runs_per_scenario) * (s.max_tokens + 1);
    }
  }
  void update(const bench::Progress& p) {
    const auto now = clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && p.tokens != 0) return;
    last_ = now;
    const double done = offsets_[p.scenario] + p.run * (p.max_tokens + 1.0) + p.tokens;
    const double frac = total_ > 0 ? std::min(1.0, done / total_) : 0;
    const double elapsed = std::chrono::duration<double>(now - t0_).count();
    const int width = 24, fill = static_cast<int>(frac * width);
    std::string eta = frac > 0.01 ? fmt::format("{:.0f}s left", elapsed * (1 - frac) / frac) : "";
    std::fprintf(stderr, "\r\x1b[2K[%s%s] %3.0f%% %d/%d %s %s%s %d/%d %lld/%lld tok %s", std::string(fill, '#').c_str(),
                 std::string(width - fill, '.').c_str(), 100 * frac, p.scenario + 1, p.scenarios, p.name.c_str(),
                 p.arm.c_str(), p.warmup ? " warm-up" : "", p.run + 1, p.runs, static_cast<long long>(p.tokens),
                 static_cast<long long>(p.max_tokens), eta.c_str());
    std::fflush(stderr);
  }
  void finish() { std::fprintf(stderr, "\r\x1b[2K"); }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point t0_, last_{};
  std::vector<double> offsets_;
  double total_ = 0;
};

}  // namespace

Runner add_bench(CLI::App& app) {
  struct Opts {
    std::string mode = "quick", model, program, device = "auto", output_dir = "bench-results", scenarios, only,
                cuda_arch;
    int runs = 3, warmup = 1;
    int64_t max_tokens_cap = 0, context_cap = 0;
    bool no_progress = false;
    CudaFlags cuda;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--mode", o->mode, "quick (5 scenarios), full (17), compare (full, stock vs --program, interleaved), "
                                    "extended (full + 6K-10K-token generations and a near-limit context)")
      ->capture_default_str()
      ->check(CLI::IsMember({"quick", "full", "compare", "extended"}));
  app.add_option("--model", o->model, "HF model directory (default: the random Qwen3-0.6B, made on first use)");
  app.add_option("--program", o->program,
                 "attention program (.cpp for cpu, .cu for cuda). compare: the candidate (default: best/best_program "
                 "of the latest evolution run found here); other modes: run with it instead of the stock kernel")
      ->check(CLI::ExistingFile);
  app.add_option("--device", o->device, "cpu, cuda, or auto")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--output-dir", o->output_dir, "where the JSON, CSV, Markdown and charts go")->capture_default_str();
  app.add_option("--scenarios", o->scenarios, "scenario file (default: bench/scenarios.yaml)");
  app.add_option("--only", o->only, "comma-separated scenario names: run just these of the mode's suite");
  app.add_option("--runs", o->runs, "measured runs per scenario and arm (at least 3)")->capture_default_str();
  app.add_option("--warmup", o->warmup, "unmeasured warm-up runs per scenario and arm")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--max-tokens-cap", o->max_tokens_cap, "generate at most N tokens per scenario (small models, CI; recorded)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--context-cap", o->context_cap, "cut prompts to at most N tokens (small models, CI; recorded)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cuda-arch", o->cuda_arch, "cuda programs: sm_XY to compile for (default: the GPU's)");
  app.add_flag("--no-progress", o->no_progress, "no progress bar (it is only drawn when stderr is a terminal)");
  add_cuda_flags(app, o->cuda, /*trace=*/false);
  return [o]() {
    if (o->runs < 3) fail("bench", "--runs {}: at least 3 measured runs are needed for a spread and a confidence interval", o->runs);
    const std::string scen_path = o->scenarios.empty() ? bench::default_scenarios_path() : o->scenarios;
    bench::ScenarioFile file = bench::load_scenarios(scen_path);
    std::vector<bench::Scenario> suite = bench::select_suite(file, o->mode);
    if (!o->only.empty()) {
      std::vector<bench::Scenario> picked;
      for (const auto& name : CLI::detail::split(o->only, ',')) {
        auto it = std::find_if(suite.begin(), suite.end(), [&](const auto& s) { return s.name == name; });
        if (it == suite.end()) fail("bench", "--only: '{}' is not a scenario of mode {} in {}", name, o->mode, scen_path);
        picked.push_back(*it);
      }
      suite = picked;
    }

    const std::string dir = o->model.empty() ? ensure_default_model() : o->model;
    if (!fs::exists(dir + "/tokenizer.json"))
      fail("bench", "{}: no tokenizer.json: the scenarios are text and need the model's tokenizer", dir);
    const Tokenizer tok = Tokenizer::load(dir);
    OpenedEngine opened = open_engine(dir, o->device, o->cuda);
    Engine& engine = *opened.engine;
    bench::Caps caps{o->max_tokens_cap, o->context_cap};
    std::vector<bench::PreparedScenario> prepared = bench::prepare_scenarios(suite, tok, engine.config(), caps);

    // Arms. The CPU engine's own attention is the float32 reference path; its stock bf16 kernel behind the
    // ABI is what a CPU program replaces, so compare races the program against that on the same bf16 cache.
    const std::string ext = opened.cuda ? ".cu" : ".cpp";
    std::string program_path = o->program;
    if (o->mode == "compare" && program_path.empty()) {
      program_path = find_latest_best_program(ext);
      if (program_path.empty())
        fail("bench", "--mode compare needs a candidate: no --program given and no evolution run (a folder with "
             "evolve.db and best/best_program{}) found under $GQA_EVOLVE_RUN or here; pass --program PROG", ext);
      std::fprintf(stderr, "bench: candidate = %s (latest evolution run)\n", program_path.c_str());
    }
    std::optional<ProgramHandle> program;
    if (!program_path.empty()) program = load_program_for(program_path, opened.cuda, o->cuda_arch, "bench", "--program");
    std::vector<bench::Arm> arms;
    std::vector<nlohmann::json> arm_info;
    auto prog_info = [&](nlohmann::json j) {
      j["program"] = program_path;
      j["compile_key"] = program->program ? program->compile.key : program->device.key;
      j["compile_cached"] = program->cached();
      j["host_entry"] = program->program != nullptr;
      j["device_entry"] = !program->lto.empty();
      return j;
    };
    auto program_arm = [&](const char* name) {
      return bench::Arm{name, "attention program " + program_path,
                        program->program ? program->program->entry() : nullptr,
                        program->lto.empty() ? nullptr : &program->lto, default_cache_dir()};
    };
    // A candidate with a device entry runs in the persistent step through a link of its own: the control arm
    // runs the stock program (examples/qwen3_gqa/persistent_program.cu) through the same link.
    std::string control_lto;
    if (o->mode == "compare" && program && !program->lto.empty()) {
      CompileOptions co;
      co.target = Target::Cuda;
      co.output = Output::DeviceLto;
      co.cuda_arch = o->cuda_arch;
      const CompileResult cr = compile_program(std::string(stock_decode_program_text()), "stock persistent_program.cu", co);
      if (!cr.ok) fail("bench", "the control arm's stock program did not compile (log: {}/compile.log)", cr.dir);
      control_lto = read_file(cr.so_path, "bench");
    }
    if (o->mode == "compare") {
      if (opened.cuda) {
        arms.push_back({"baseline", "the CUDA engine's own stock attention", nullptr});
      } else {
        arms.push_back({"baseline", "stock CPU kernel behind the ABI (bf16 KV cache, as programs get)", &cpu::stock_attention});
      }
      arms.push_back(program_arm("candidate"));
      arm_info.push_back({{"name", arms[0].name}, {"label", arms[0].label}, {"program", nullptr}});
      arm_info.push_back(prog_info({{"name", arms[1].name}, {"label", arms[1].label}}));
      if (!control_lto.empty()) {
        arms.push_back({"control", "the stock persistent-step program through the candidate's device link", nullptr,
                        &control_lto, default_cache_dir()});
        arm_info.push_back({{"name", "control"}, {"label", arms.back().label},
                            {"program", "examples/qwen3_gqa/persistent_program.cu (built in)"}});
      }
    } else if (program) {
      arms.push_back(program_arm("program"));
      arm_info.push_back(prog_info({{"name", arms[0].name}, {"label", arms[0].label}}));
    } else {
      arms.push_back({"stock", fmt::format("the {} engine's own attention", opened.cuda ? "CUDA" : "CPU"), nullptr});
      arm_info.push_back({{"name", arms[0].name}, {"label", arms[0].label}, {"program", nullptr}});
    }

    bench::RunContext ctx;
    ctx.mode = o->mode;
    ctx.scenario_file = scen_path;
    ctx.device = engine.device_name();
    ctx.model_dir = dir;
    ctx.timestamp = utc_now("%Y-%m-%dT%H:%M:%SZ");
    const ModelConfig& c = engine.config();
    ctx.model = {{"layers", c.num_hidden_layers}, {"hidden_size", c.hidden_size}, {"query_heads", c.num_attention_heads},
                 {"kv_heads", c.num_key_value_heads}, {"head_dim", c.head_dim}, {"vocab_size", c.vocab_size},
                 {"max_position_embeddings", c.max_position_embeddings}};
    const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
    ctx.settings = {{"warmup", o->warmup},
                    {"runs", o->runs},
                    {"caps", {{"max_tokens", o->max_tokens_cap}, {"prompt_tokens", o->context_cap}}},
                    {"only", o->only},
                    {"sampling", "greedy (temperature 0)"},
                    {"ignore_stop_tokens", true},
                    {"omp_max_threads", omp_get_max_threads()},
                    {"omp_wait_policy", wait_policy ? wait_policy : ""},
                    {"gnuplot", bench::gnuplot_available()}};
    ctx.arms = arm_info;

    std::fprintf(stderr, "bench %s: %zu scenario(s) x %zu arm(s) x (%d warm-up + %d runs) on %s, model %s\n",
                 o->mode.c_str(), prepared.size(), arms.size(), o->warmup, o->runs, ctx.device.c_str(), dir.c_str());
    if (caps.max_tokens > 0 || caps.prompt_tokens > 0)
      std::fprintf(stderr, "bench: SCALED run: --max-tokens-cap %lld --context-cap %lld (recorded in the results)\n",
                   static_cast<long long>(caps.max_tokens), static_cast<long long>(caps.prompt_tokens));
    for (const auto& p : prepared)
      for (const auto& a : p.adjustments) std::fprintf(stderr, "bench: %s: %s\n", p.scenario.name.c_str(), a.c_str());

    bench::RunnerOptions ro;
    ro.runs = o->runs;
    ro.warmup = o->warmup;
    ro.stop = &g_stop;
    std::optional<ProgressBar> bar;
    if (!o->no_progress && isatty(STDERR_FILENO)) {
      bar.emplace(prepared, (o->runs + o->warmup) * static_cast<int>(arms.size()));
      ro.progress = [&](const bench::Progress& p) { bar->update(p); };
    }
    bench::BenchRuns runs;
    {
      SigintScope sigint;
      runs = bench::run_benchmark(engine, prepared, arms, ro);
    }
    if (bar) bar->finish();
    if (runs.interrupted) std::fprintf(stderr, "bench: interrupted; writing what was measured\n");

    const nlohmann::json report = bench::build_report(runs, ctx);
    const std::string stem = fmt::format("bench-{}-{}", o->mode, utc_now("%Y%m%d-%H%M%S"));
    const bench::WrittenFiles files = bench::write_reports(report, o->output_dir, stem);
    std::printf("%s\n", bench::format_console_summary(report).c_str());
    for (const auto& p : files.paths) std::printf("wrote %s\n", p.c_str());
    if (!files.charts_note.empty()) std::printf("%s\n", files.charts_note.c_str());
    return runs.interrupted ? 130 : 0;
  };
}

}  // namespace gqa::cli
