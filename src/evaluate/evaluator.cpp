// Orchestration in the trusted parent. The candidate only ever runs in the worker's child process: its
// results arrive through the worker's relay as nonce-tagged records that must follow the protocol (each
// stage once, in order, a clean exit), and whatever it does (crash, hang, exit, runaway memory, a refused
// system call) ends only the child, reported with the stage it reached and its stderr.
#include "evaluate/evaluator.h"

#include <omp.h>
#include <signal.h>

#include <chrono>
#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>

#include "common/error.h"
#include "common/process.h"
#include "evaluate/imports.h"
#include "evaluate/static_check.h"
#include "evaluate/worker.h"
#include "model/make_model.h"

namespace fs = std::filesystem;

namespace gqa::eval {

namespace {

std::string tail(const std::string& s, size_t n) { return s.size() > n ? "..." + s.substr(s.size() - n) : s; }

std::string describe_signal(int sig) {
  ProcessResult r;
  r.signal = sig;
  std::string d = r.describe();
  if (sig == SIGSYS) d += ": a system call the sandbox's seccomp filter refuses (see worker_stderr)";
  return d;
}

}  // namespace

std::string ensure_e2e_model(const std::string& cache_dir, Target target) {
  const std::string preset = target == Target::Cpu ? "tiny" : "qwen3-0.6b";
  const std::string dir = fmt::format("{}/models/{}-seed0", cache_dir, preset);
  if (fs::exists(dir + "/model.safetensors")) return dir;
  const std::string tmp = fmt::format("{}.tmp-{}", dir, getpid());
  make_random_model(preset_config(preset), 0, tmp, "");
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp, ec);  // made by another evaluator meanwhile
  return dir;
}

nlohmann::json evaluate(const EvaluateOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json metrics = nlohmann::json::object(), artifacts = nlohmann::json::object();
  metrics["target"] = target_name(o.target);
  metrics["shape_heads"] = format_head_geometry(o.heads);  // query heads : KV heads : head_dim of the shapes
  metrics["correct"] = false;
  metrics["combined_score"] = 0.0;
  auto finish = [&](const std::string& failed_stage, const std::string& failure) {
    metrics["failed_stage"] = failed_stage.empty() ? nlohmann::json(nullptr) : nlohmann::json(failed_stage);
    if (!failure.empty()) metrics["failure"] = failure;
    metrics["evaluation_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return nlohmann::json{{"metrics", metrics}, {"artifacts", artifacts}};
  };

  // 1. Static checks.
  const std::string source = read_file(o.program_path, "evaluate");
  std::optional<std::string> parent;
  if (o.parent_path) parent = read_file(*o.parent_path, "evaluate");
  StaticCheck sc = static_check(source, o.target, parent);
  artifacts["static_check"] = sc.ok ? "ok" : fmt::format("{}", fmt::join(sc.problems, "\n"));
  if (!sc.ok && !o.skip_static) return finish("static", sc.problems.front());

  // A CUDA program's device entry (gqa/decode_abi.cuh) is judged in its own stages (cuda_device_stages.h): the
  // harness's correctness cases, then the persistent step end to end, which is its benchmark.
  const ProgramEntries entries = program_entries(source);
  const bool device = o.target == Target::Cuda && entries.device;
  if (device && entries.host)
    return finish("static", "the program defines both the host entry gqa_attention and the device entry "
                  "gqa_decode_attend_v2; the evaluator judges one entry per program");
  if (!entries.host && !device)
    return finish("static", o.target == Target::Cuda
                                ? "the program defines neither gqa_attention (gqa/abi.h) nor gqa_decode_attend_v2 "
                                  "(gqa/decode_abi.cuh)"
                                : "the program does not define gqa_attention (gqa/abi.h)");
  metrics["entry"] = device ? "device" : "host";

  // 2. Compile (cached), within the evaluation's time: --timeout covers compile, load and every stage.
  auto left = [&] { return o.timeout_seconds - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const std::string cache = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
  CompileOptions co;
  co.target = o.target;
  co.cache_dir = cache;
  co.cuda_arch = o.cuda_arch;
  co.timeout_seconds = std::max(0.5, left());
  if (device) co.output = Output::DeviceLto;  // LTO IR: no host code, so no imports to check
  else if (o.target == Target::Cuda) co.extra_flags = cuda_program_flags();  // the runtime's calls become imports
  CompileResult cr = compile_program(source, o.program_path, co);
  metrics["compile_cached"] = cr.cached;
  metrics["compile_seconds"] = cr.seconds;
  metrics["program_key"] = cr.key;
  artifacts["compile_log"] = tail(cr.log, 20000);
  artifacts["compile_command"] = cr.command;
  if (!cr.ok) {
    if (cr.timed_out) return finish("compile", fmt::format("compile did not finish within the time limit ({:.0f} s)", o.timeout_seconds));
    return finish("compile", "compile failed (see compile_log)");
  }
  // The symbols the compiled program imports: an allow-list, whatever the source looked like.
  if (!device) {
    ImportCheck ic = check_imports(cr.so_path, o.target);
    artifacts["imports"] = ic.report;
    if (!ic.ok && !o.skip_static) return finish("static", ic.problems.front());
  }

  // 3. The worker: a fresh process running the candidate, killed at the deadline.
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  uint64_t seed = o.seed;
  if (seed == 0) seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  std::string nonce;
  for (int i = 0; i < 4; ++i) nonce += fmt::format("{:08x}", std::random_device{}());
  std::string model_dir;
  // (a device entry's correctness cases take the model's head_dim and group from it too)
  if (o.end_to_end || device) model_dir = ensure_e2e_model(cache, o.target);
  ProcessOptions po;
  po.argv = {o.worker_executable.empty() ? self_executable() : o.worker_executable,
             "eval-worker", device ? "--lto" : "--so", cr.so_path, "--target", std::string(target_name(o.target)),
             "--seed", std::to_string(seed), "--threads", std::to_string(threads),
             "--min-reps", std::to_string(o.min_reps), "--bench-seconds", fmt::format("{}", o.bench_seconds),
             "--heads", format_head_geometry(o.heads)};
  if (!o.bench) po.argv.push_back("--no-bench");
  if (!model_dir.empty()) po.argv.insert(po.argv.end(), {"--model", model_dir});
  if (!o.end_to_end) po.argv.push_back("--no-e2e");
  // The filter guards a CUDA program's host code; a device entry has none (LTO IR only, docs/evaluator.md).
  if (o.cuda_sandbox && o.target == Target::Cuda && !device) po.argv.push_back("--cuda-sandbox");
  po.timeout_seconds = left();
  if (po.timeout_seconds <= 0) return finish("load", fmt::format("no time left for the worker (limit {:.0f} s)", o.timeout_seconds));
  po.stdin_data = nonce + "\n";
  if (!o.visible_devices.empty()) po.env.push_back({"CUDA_VISIBLE_DEVICES", o.visible_devices});
  if (o.target == Target::Cpu) po.address_space_limit_bytes = o.memory_limit_bytes;
  ProcessResult pr = run_process(po);
  metrics["worker_seconds"] = pr.seconds;
  artifacts["worker_stderr"] = tail(pr.err, 20000);

  // 4. Results: only lines carrying this evaluation's nonce count, and they must follow the protocol:
  // each stage once, in order, then how the candidate's process ended (a clean exit after "done").
  std::vector<nlohmann::json> records;
  std::istringstream lines(pr.out);
  std::string line, protocol;
  const std::string prefix = fmt::format("{} {} ", kResultPrefix, nonce);
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    try {
      nlohmann::json j = nlohmann::json::parse(line.substr(prefix.size()));
      j.at("stage").get<std::string>();
      records.push_back(std::move(j));
    } catch (const std::exception&) {
      if (protocol.empty()) protocol = "a result line that is not a stage record";
    }
  }
  std::vector<std::string> order = {"loaded", "correctness"};
  if (o.bench && !device) order.push_back("benchmark");
  if (o.end_to_end) order.push_back("end_to_end");
  order.push_back("done");
  order.push_back("worker_end");
  std::map<std::string, nlohmann::json> stages;
  size_t next = 0;  // records must come in `order`, each at most once (after a failure the worker skips to "done")
  for (const auto& j : records) {
    const std::string name = j["stage"].get<std::string>();
    const size_t at = std::find(order.begin(), order.end(), name) - order.begin();
    if (protocol.empty() && (at < next || at >= order.size()))
      protocol = fmt::format("result record '{}' unexpected, out of order or repeated", name);
    if (!protocol.empty()) break;
    stages[name] = j;
    next = at + 1;
  }
  const std::string how = pr.ok() ? "stopped" : pr.describe();
  std::string failed, failure;
  if (!protocol.empty()) {
    failed = "worker";
    failure = "the worker's results broke the protocol (" + protocol + "): the program interfered with the result channel";
  }
  for (const std::string& name : order) {
    if (!failed.empty()) break;
    if (name == "worker_end") {
      auto it = stages.find(name);
      const bool clean = it != stages.end() && it->second.value("exit_code", -1) == 0 && !it->second.contains("signal");
      if (!clean) {
        failed = "worker";
        failure = it == stages.end() ? fmt::format("the worker {} before reporting how it ended", how)
                                     : fmt::format("the candidate's process did not exit cleanly after its results ({})", it->second.dump());
      }
      break;
    }
    auto it = stages.find(name);
    if (it == stages.end()) {
      failed = name == "loaded" ? "load" : name == "done" ? "worker" : name;
      const auto end = stages.find("worker_end");
      const std::string child = end == stages.end() ? how
                                : end->second.contains("signal") ? describe_signal(end->second["signal"].get<int>())
                                                                 : fmt::format("exited with code {}", end->second.value("exit_code", -1));
      failure = fmt::format("the worker {} before finishing stage '{}'", child, failed);
      if (pr.timed_out) failure += fmt::format(" (limit {:.0f} s)", o.timeout_seconds);
      break;
    }
    const nlohmann::json& j = it->second;
    if (j.contains("metrics"))
      for (auto& [k, v] : j["metrics"].items()) metrics[k] = v;
    if (j.contains("artifacts"))
      for (auto& [k, v] : j["artifacts"].items()) artifacts[k] = v;
    if (j.contains("passed") && !j["passed"].get<bool>()) {
      failed = name;
      failure = j.value("failure", "failed");
      break;
    }
  }
  if (!failed.empty()) return finish(failed, failure);
  metrics["correct"] = true;
  // The score: the weighted geometric-mean speedup over the stock kernel (1.0 when not benchmarked); for a device
  // entry the geometric mean over the timed contexts of its decode speed in the persistent step over the built-in
  // step's (1.0 without the end-to-end stage).
  if (device)
    metrics["combined_score"] = o.end_to_end ? metrics.value("e2e_decode_ratio_geomean", 0.0) : 1.0;
  else
    metrics["combined_score"] = o.bench ? metrics.value("speedup_geomean", 0.0) : 1.0;
  return finish("", "");
}

}  // namespace gqa::eval
