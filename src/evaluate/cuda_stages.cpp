// CUDA target, correctness and microbenchmark. Every call of the candidate is captured into a CUDA graph
// (global capture mode: a program that allocates, synchronises or strays off its stream is not capturable
// and fails) and run by replaying it. Outputs and workspaces are NaN-poisoned, guard bands and inputs are
// checked after calls, and any CUDA error after the candidate ran (sticky or not) fails the candidate.
// The benchmark times CUDA events around graph replays with the L2 flushed before each, the engine's own
// stock kernels interleaved in the same process.
#include "evaluate/cuda_stages.h"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_engine.h"
#include "engine/cuda/ops.h"
#include "engine/cuda/stock_attention_abi.h"
#include "evaluate/device_problem.h"
#include "evaluate/l2_flush.h"
#include "evaluate/sandbox.h"

namespace gqa::eval {

namespace {

// A CUDA failure attributed to the candidate (it ran; the context may now be unusable).
struct CandidateCudaError : Error {
  using Error::Error;
};

std::string cuda_text(cudaError_t e) { return fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e)); }

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("evaluate", "CUDA: {}: {}", what, cuda_text(e));
}

// After the candidate ran: any error, including a sticky one from its kernels, is its failure.
void ck_candidate(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw CandidateCudaError(fmt::format("CUDA error {}: {}", what, cuda_text(e)));
}

class GraphExec {
 public:
  GraphExec() = default;
  explicit GraphExec(cudaGraphExec_t e) : e_(e) {}
  ~GraphExec() {
    if (e_) cudaGraphExecDestroy(e_);
  }
  GraphExec(GraphExec&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  GraphExec& operator=(GraphExec&& o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  cudaGraphExec_t get() const { return e_; }

 private:
  cudaGraphExec_t e_ = nullptr;
};

// Captures one call of `fn` on `a` (whose stream is `st`). Returns the instantiated graph, or throws
// CandidateCudaError when the call is not capturable; rc is the call's return code.
template <class Call>
GraphExec capture(Call&& call, cudaStream_t st, int& rc, const char* who) {
  cudaGetLastError();
  ck(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal), "begin graph capture");
  rc = call();
  cudaGraph_t g = nullptr;
  const cudaError_t end = cudaStreamEndCapture(st, &g);
  const cudaError_t last = cudaGetLastError();
  if (end != cudaSuccess || last != cudaSuccess) {
    if (g) cudaGraphDestroy(g);
    throw CandidateCudaError(fmt::format("{} is not safe in CUDA graph capture: {}", who,
                                         cuda_text(end != cudaSuccess ? end : last)));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = rc == GQA_OK ? cudaGraphInstantiate(&exec, g, 0) : cudaSuccess;
  cudaGraphDestroy(g);
  if (inst != cudaSuccess) throw CandidateCudaError(fmt::format("{}'s graph cannot be instantiated: {}", who, cuda_text(inst)));
  return GraphExec(exec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

StageResult correctness(Kernel& cand, const WorkerSettings& set, cudaStream_t st) {
  StageResult r;
  Rng rng{set.seed};
  std::string report;
  int index = 0, failed = 0;
  double worst_error = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto finish = [&] {
    r.passed = failed == 0;
    if (!r.passed && r.failure.empty()) r.failure = fmt::format("{} correctness case(s) failed (see correctness_report)", failed);
    r.metrics = {{"correctness_cases", index}, {"correctness_failed", failed}, {"max_row_error", worst_error},
                 {"row_tolerance", kRowTolerance}, {"input_seed", set.seed},
                 {"correctness_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
    r.artifacts["correctness_report"] = report;
    return r;
  };
  for (const Case& c : evaluation_cases(set.target, set.seed, set.heads)) {
    const KvLayout layout = index++ % 2 == 0 ? KvLayout::PosMajor : KvLayout::HeadMajor;
    Problem p(c, layout, set.threads);
    p.fill(rng);
    DeviceProblem d(p, st);
    for (int trial = 0; trial < 2; ++trial) {
      if (trial > 0) {
        p.fill(rng);
        d.upload_inputs();
      }
      const std::string line = fmt::format("{:<22} trial {} layout {:<10}", c.name, trial,
                                           layout == KvLayout::PosMajor ? "pos-major" : "head-major");
      try {
        int rc = GQA_OK;
        GraphExec g = capture([&] { return cand(d.args()); }, st, rc, "the program");
        if (rc != GQA_OK) {
          report += fmt::format("{} FAIL: {}\n", line, cand.describe(rc));
          ++failed;
          break;
        }
        // Work a program did outside the graph (on another stream, at capture time) is finished, then
        // overwritten by the poison: only what the graph computes counts.
        ck_candidate(cudaDeviceSynchronize(), "after capturing the program");
        d.poison();
        ck_candidate(cudaGraphLaunch(g.get(), st), "launching the program's graph");
        ck_candidate(cudaStreamSynchronize(st), "in the program's kernels");
        const std::string integrity = d.check_integrity();
        if (!integrity.empty()) {
          report += fmt::format("{} FAIL: {}\n", line, integrity);
          ++failed;
          break;
        }
        d.download_output();
      } catch (const CandidateCudaError& e) {
        report += fmt::format("{} FAIL: {}\n", line, e.what());
        ++failed;
        r.failure = e.what();
        return finish();  // the context may be unusable: nothing more can be trusted
      } catch (const Error& e) {  // a sticky error from the candidate surfaces in our next CUDA call
        report += fmt::format("{} FAIL: {}\n", line, e.what());
        ++failed;
        r.failure = fmt::format("CUDA failure after the program ran: {}", e.what());
        return finish();
      }
      Comparison cmp = p.compare();
      worst_error = std::max(worst_error, cmp.max_row_error);
      if (!cmp.ok) {
        report += line + " FAIL: " + describe_mismatch(cmp, static_cast<int64_t>(p.args().total_q) * c.num_q_heads) + "\n";
        ++failed;
        break;
      }
      report += line + " ok: " + describe_match(cmp) + "\n";
    }
  }
  return finish();
}

// One buffer set of a benchmark shape: host problem, device twin, and the three graphs timed.
struct BenchSet {
  std::unique_ptr<Problem> host;
  std::unique_ptr<DeviceProblem> dev;
  GraphExec cand, stock, stock_abi;
};

StageResult microbench(Kernel& cand, const WorkerSettings& set, cudaStream_t st) {
  StageResult r;
  Rng rng{set.seed ^ 0x5EED5EEDull};
  const double bandwidth = cuda::measure_read_bandwidth(size_t{1} << 30, 10);
  int dev = 0, l2 = 0;
  ck(cudaGetDevice(&dev), "cudaGetDevice");
  ck(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "L2 size");
  const size_t flush_bytes = std::max<size_t>(size_t{4} * static_cast<size_t>(l2), size_t{256} << 20);
  void* flush_buf = nullptr;
  ck(cudaMalloc(&flush_buf, flush_bytes), "cudaMalloc of the L2 flush buffer");
  ck(cudaMemset(flush_buf, 1, flush_bytes), "fill the L2 flush buffer");
  struct FlushFree {
    void* p;
    ~FlushFree() { cudaFree(p); }
  } flush_free{flush_buf};
  std::vector<cudaEvent_t> ev(6);
  for (auto& e : ev) ck(cudaEventCreate(&e), "cudaEventCreate");
  struct EventsFree {
    std::vector<cudaEvent_t>& v;
    ~EventsFree() {
      for (auto e : v) cudaEventDestroy(e);
    }
  } events_free{ev};

  nlohmann::json shapes = nlohmann::json::array();
  double log_sum = 0, log_sum_abi = 0, weight_sum = 0;
  double total_check_seconds = 0, total_timed_seconds = 0;  // the timed loops' wall time, and the checks' share
  std::string table = fmt::format("{:<22} {:>11} {:>11} {:>12} {:>8} {:>9} {:>9} {:>6}\n", "shape", "stock (us)",
                                  "stock+cvt", "program (us)", "speedup", "%read-BW", "stock %BW", "reps");
  for (const Case& c : benchmark_cases(set.target, set.heads)) {
    // Buffer sets rotated so that one rotation holds >= 128 MiB of K/V (2..8 sets); the engine's head-major
    // layout, which the stock kernels need.
    std::vector<BenchSet> sets;
    size_t bytes = 0;
    while (sets.size() < 2 || (bytes < (size_t{128} << 20) && sets.size() < 8)) {
      BenchSet b;
      b.host = std::make_unique<Problem>(c, KvLayout::HeadMajor, set.threads);
      b.host->fill(rng);
      b.dev = std::make_unique<DeviceProblem>(*b.host, st);
      bytes += b.host->kv_bytes();
      sets.push_back(std::move(b));
    }
    int rc = GQA_OK, rc_stock = GQA_OK, checks = 0;
    for (BenchSet& b : sets) {
      b.dev->poison();
      b.stock = capture([&] { return cuda::stock_attention_engine_kernels(&b.dev->second_args()); }, st, rc_stock, "stock");
      if (rc_stock == GQA_OK)
        b.stock_abi = capture([&] { return cuda::stock_attention_abi(&b.dev->second_args()); }, st, rc_stock, "stock");
      if (rc_stock != GQA_OK) fail("evaluate", "benchmark shape {}: the stock kernel returned error {}", c.name, rc_stock);
      b.cand = capture([&] { return cand(b.dev->args()); }, st, rc, "the program");
      if (rc != GQA_OK) {
        r.failure = fmt::format("benchmark shape {}: the program returned error code {}", c.name, rc);
        return r;
      }
    }
    ck_candidate(cudaDeviceSynchronize(), "after capturing the program");
    auto prepare = [&](BenchSet& b) {  // the engine's float q, positions and counters for the stock kernels
      b.dev->poison();
      if (cuda::stock_attention_prepare(&b.dev->second_args()) != GQA_OK) fail("evaluate", "stock prepare failed");
    };
    for (int w = 0; w < 2; ++w)  // warm-up: instruction caches, graph uploads, clocks
      for (BenchSet& b : sets) {
        prepare(b);
        for (const GraphExec* g : {&b.stock, &b.stock_abi, &b.cand}) ck_candidate(cudaGraphLaunch(g->get(), st), "warm-up");
        ck_candidate(cudaStreamSynchronize(st), "in the warm-up replays");
      }
    std::vector<int> check_reps;
    for (int i = 0; i < 3; ++i) check_reps.push_back(static_cast<int>(rng.next() % set.min_reps));
    std::vector<double> tc, ts, ta;
    double check_seconds = 0, spent = 0;  // what the per-call checks below cost of the shape's wall time
    const auto t0 = std::chrono::steady_clock::now();
    for (int rep = 0;; ++rep) {
      BenchSet& b = sets[rep % sets.size()];
      b.host->refill_queries(rng);  // nothing remembered from an earlier call can be the answer
      b.dev->upload_queries();
      prepare(b);
      // Order rotates so that none of the three always follows the same neighbour.
      const GraphExec* order[3] = {&b.stock, &b.cand, &b.stock_abi};
      std::rotate(order, order + rep % 3, order + 3);
      for (int i = 0; i < 3; ++i) {
        flush_l2(flush_buf, flush_bytes, st);
        ck(cudaEventRecord(ev[2 * i], st), "cudaEventRecord");
        ck_candidate(cudaGraphLaunch(order[i]->get(), st), "replaying a graph");
        ck(cudaEventRecord(ev[2 * i + 1], st), "cudaEventRecord");
      }
      ck_candidate(cudaStreamSynchronize(st), "in the timed replays");
      for (int i = 0; i < 3; ++i) {
        float ms = 0;
        ck(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]), "cudaEventElapsedTime");
        (order[i] == &b.cand ? tc : order[i] == &b.stock ? ts : ta).push_back(ms * 1e-3);
      }
      // Every timed call: guards and inputs intact, output within the bound of the stock kernel's for the
      // same inputs; three drawn at random also against the float64 reference.
      {
        ++checks;
        const auto tc0 = std::chrono::steady_clock::now();
        const std::string integrity = b.dev->check_integrity();
        b.dev->download_outputs();
        Comparison cmp = b.host->compare_with_second();
        std::string what = "differs from the stock kernel's output";
        if (cmp.ok && std::find(check_reps.begin(), check_reps.end(), rep) != check_reps.end()) {
          cmp = b.host->compare();
          what = "is wrong";
        }
        if (!cmp.ok || !integrity.empty()) {
          r.failure = fmt::format("benchmark shape {}: the output of timed call {} {} ({} bad rows; {}{})", c.name, rep,
                                  what, cmp.bad_rows, cmp.worst, integrity.empty() ? "" : "; " + integrity);
          return r;
        }
        check_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - tc0).count();
      }
      spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep + 1 >= set.min_reps && (spent > set.bench_seconds || rep + 1 >= 1000)) break;
    }
    const double mc = median(tc), ms = median(ts), ma = median(ta), speedup = ms / mc;
    const double bw_pct = 100.0 * c.min_bytes() / mc / bandwidth;
    log_sum += c.weight * std::log(speedup);
    log_sum_abi += c.weight * std::log(ma / mc);
    weight_sum += c.weight;
    total_check_seconds += check_seconds, total_timed_seconds += spent;
    shapes.push_back({{"shape", c.name}, {"weight", c.weight}, {"reps", tc.size()}, {"buffer_sets", sets.size()},
                      {"check_seconds", check_seconds}, {"timed_loop_seconds", spent},
                      {"program_median_us", mc * 1e6}, {"program_p25_us", quantile(tc, 0.25) * 1e6},
                      {"program_p75_us", quantile(tc, 0.75) * 1e6}, {"stock_median_us", ms * 1e6},
                      {"stock_p25_us", quantile(ts, 0.25) * 1e6}, {"stock_p75_us", quantile(ts, 0.75) * 1e6},
                      {"stock_with_conversions_median_us", ma * 1e6}, {"speedup", speedup},
                      {"speedup_vs_stock_with_conversions", ma / mc}, {"percent_of_read_bandwidth", bw_pct},
                      {"stock_percent_of_read_bandwidth", 100.0 * c.min_bytes() / ms / bandwidth},
                      {"checked_calls", checks}, {"program_tflops", c.flops() / mc * 1e-12}});
    table += fmt::format("{:<22} {:>11.2f} {:>11.2f} {:>12.2f} {:>8.3f} {:>9.1f} {:>9.1f} {:>6}\n", c.name, ms * 1e6,
                         ma * 1e6, mc * 1e6, speedup, bw_pct, 100.0 * c.min_bytes() / ms / bandwidth, tc.size());
  }
  cudaDeviceProp prop{};
  ck(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  r.passed = true;
  r.metrics = {{"speedup_geomean", std::exp(log_sum / weight_sum)},
               {"speedup_geomean_vs_stock_with_conversions", std::exp(log_sum_abi / weight_sum)},
               {"read_bandwidth_gbps", bandwidth * 1e-9}, {"gpu", prop.name}, {"benchmark", shapes},
               {"benchmark_check_seconds", total_check_seconds}, {"benchmark_timed_loop_seconds", total_timed_seconds}};
  r.artifacts["benchmark_table"] = fmt::format(
      "{}: {} SMs, L2 {} MB, measured read bandwidth {:.0f} GB/s. stock = the engine's kernels as it launches them "
      "(float q prepared untimed); stock+cvt = the same behind the ABI (bf16 q/out conversions); speedup is against "
      "stock.\n{}",
      prop.name, prop.multiProcessorCount, l2 >> 20, bandwidth * 1e-9, table);
  return r;
}

}  // namespace

// engine: opened by the caller (before the sandbox), or null to open it here. cuda_end_to_end.cpp.
StageResult run_end_to_end_cuda(gqa_attention_fn candidate, const WorkerSettings& set, std::unique_ptr<Engine> engine);

namespace {
// The CUDA runtime the program loaded with it (the evaluator compiles programs with -cudart shared; imports.cpp),
// initialised by one call through it: whatever its start-up opens is opened before the seccomp filter. A
// program without one has nothing to initialise.
int find_cudart(dl_phdr_info* info, size_t, void* out) {
  if (info->dlpi_name && std::strstr(info->dlpi_name, "/libcudart.so")) {
    *static_cast<std::string*>(out) = info->dlpi_name;
    return 1;
  }
  return 0;
}
void initialise_program_runtime() {
  std::string path;
  dl_iterate_phdr(find_cudart, &path);
  if (path.empty()) return;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!lib) return;
  using FreeFn = int (*)(void*);
  if (auto* free_fn = reinterpret_cast<FreeFn>(dlsym(lib, "cudaFree")); free_fn && free_fn(nullptr) != 0)
    fail("evaluate", "worker: the program's CUDA runtime ({}) failed to initialise", path);
  dlclose(lib);
}
}  // namespace

uint64_t run_cuda_stages(gqa_attention_fn program, const WorkerRequest& req, const StageReport& report) {
  // With the sandbox, every module loads when its runtime starts (not at a kernel's first launch, which would
  // run under the filter).
  if (req.settings.cuda_sandbox) setenv("CUDA_MODULE_LOADING", "EAGER", 1);
  ck(cudaSetDevice(0), "cudaSetDevice");
  cuda::configure_kernels();  // shared-memory opt-ins of the stock kernels: not allowed during capture
  cudaStream_t st = nullptr;
  // A blocking stream: a program that launches on the legacy default stream while it is being captured
  // then breaks the capture (cudaErrorStreamCaptureImplicit) instead of running outside the graph.
  ck(cudaStreamCreate(&st), "cudaStreamCreate");
  std::unique_ptr<Engine> e2e_engine;
  if (req.settings.cuda_sandbox) {  // what opens files first: the end-to-end engine (its model), the runtimes
    if (req.end_to_end) e2e_engine = open_cuda_engine(req.settings.model_dir);
    initialise_program_runtime();
    enter_cuda_sandbox();
  }
  Kernel cand{"program", program};
  auto guarded = [&](auto&& stage) {
    try {
      return stage();
    } catch (const CandidateCudaError& e) {
      StageResult f;
      f.failure = e.what();
      return f;
    }
  };
  StageResult c = guarded([&] { return correctness(cand, req.settings, st); });
  report("correctness", c);
  if (!c.passed) return cand.calls;
  if (req.bench) {
    StageResult b = guarded([&] { return microbench(cand, req.settings, st); });
    report("benchmark", b);
    if (!b.passed) return cand.calls;
  }
  if (req.end_to_end) {
    StageResult e = run_end_to_end_cuda(cand.fn, req.settings, std::move(e2e_engine));
    report("end_to_end", e);
  }
  return cand.calls;
}

}  // namespace gqa::eval
