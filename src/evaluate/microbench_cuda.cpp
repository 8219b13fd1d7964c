// Microbenchmark stage (CUDA target, host entries), judged in the worker's relay. The relay makes every buffer
// set of a shape in the shared arena (the engine's head-major KV layout, which the stock kernels need; 2..8 sets,
// so that one rotation holds >= 128 MiB of K/V) and keeps its own copies. The candidate's process makes device
// copies, captures the candidate's, the stock kernels' and the stock-behind-the-ABI kernels' graphs, and on each
// repetition the relay asks for replays them with the L2 flushed before each, timed by CUDA events (only the
// candidate's process can time its GPU work). The relay draws fresh queries before every repetition and checks
// every timed call itself: the device's inputs (copied back) against its own copies, the canaries, the device's
// guard bands, the candidate's output against the stock kernel's for the same inputs, and, on repetitions it
// draws privately (std::random_device: not derivable from the evaluation's seed, which the candidate's process
// knows), against its own float64 reference. Reported times must fit in the relay's wall clock around the
// repetition. docs/evaluator.md says what this guarantees and what it does not.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/error.h"
#include "evaluate/channel.h"
#include "evaluate/stages.h"

namespace gqa::eval {

namespace {

std::string text(const char* s, size_t n) { return std::string(s, strnlen(s, n)); }

// Timed calls per shape checked against the float64 reference, drawn privately in the relay.
constexpr int kReferenceChecks = 3;

}  // namespace

StageResult run_cuda_microbench(ChildLink& child, SharedArena& arena, const WorkerSettings& set) {
  StageResult r;
  Rng rng{set.seed ^ 0x5EED5EEDull};
  std::random_device private_draw;
  double bandwidth = 0;
  std::string device;
  nlohmann::json shapes = nlohmann::json::array();
  double log_sum = 0, log_sum_abi = 0, weight_sum = 0;
  double total_check_seconds = 0, total_timed_seconds = 0;  // the timed loops' wall time, and the checks' share
  std::string table = fmt::format("{:<22} {:>11} {:>11} {:>12} {:>8} {:>9} {:>9} {:>6}\n", "shape", "stock (us)",
                                  "stock+cvt", "program (us)", "speedup", "%read-BW", "stock %BW", "reps");
  for (const Case& c : benchmark_cases(set.target, set.heads)) {
    arena.reset();
    std::vector<std::unique_ptr<Problem>> sets;
    std::vector<const Problem*> views;
    size_t bytes = 0;
    while (sets.size() < 2 || (bytes < (size_t{128} << 20) && sets.size() < static_cast<size_t>(Control::kMaxSets))) {
      sets.push_back(std::make_unique<Problem>(c, KvLayout::HeadMajor, set.threads, &arena));
      sets.back()->fill(rng);
      sets.back()->second_args();  // the stock kernel's own output and workspace
      sets.back()->poison();
      views.push_back(sets.back().get());
      bytes += sets.back()->kv_bytes();
    }
    if (!post_protections(child, arena, views, false)) return r;
    const int n = static_cast<int>(sets.size());
    if (!child.post(Op::CudaBenchSetup, [&](Control& k) {
          k.num_sets = n;
          for (int i = 0; i < n; ++i) {
            k.sets[i] = sets[static_cast<size_t>(i)]->args();
            k.out2[i] = reinterpret_cast<uintptr_t>(sets[static_cast<size_t>(i)]->second_args().out);
          }
        }))
      return r;
    const Control& a = child.control();
    if (a.fatal) {
      r.failure = fmt::format("benchmark shape {}: {}", c.name, text(a.failure, sizeof a.failure));
      return r;
    }
    if (a.rc_stock != GQA_OK) fail("evaluate", "benchmark shape {}: the stock kernel returned error {}", c.name, a.rc_stock);
    if (a.rc != GQA_OK) {
      r.failure = fmt::format("benchmark shape {}: the program {}", c.name, text(a.failure, sizeof a.failure));
      return r;
    }
    bandwidth = a.read_bandwidth;
    device = text(a.device, sizeof a.device);
    if (!(bandwidth > 0)) fail("evaluate", "the candidate's process reported no read bandwidth");
    std::vector<int> check_reps;
    for (int i = 0; i < kReferenceChecks; ++i) check_reps.push_back(static_cast<int>(private_draw() % set.min_reps));
    std::vector<double> tc, ts, ta;
    std::string wrong;
    int checks = 0;
    double check_seconds = 0, spent = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int rep = 0;; ++rep) {
      Problem& p = *sets[static_cast<size_t>(rep % n)];
      p.refill_queries(rng);  // nothing remembered from an earlier call can be the answer
      p.poison();             // what the child does not copy back stays NaN
      const auto w0 = std::chrono::steady_clock::now();
      if (!child.post(Op::CudaRepetition, [&](Control& k) { k.set = rep % n, k.rotation = rep % 3; })) return r;
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
      const auto c0 = std::chrono::steady_clock::now();
      if (a.fatal) {
        wrong = text(a.failure, sizeof a.failure);
      } else if (a.integrity[0]) {
        wrong = text(a.integrity, sizeof a.integrity);
      } else if (!(a.cand_seconds > 0 && a.stock_seconds > 0 && a.stock_abi_seconds > 0 &&
                   a.cand_seconds + a.stock_seconds + a.stock_abi_seconds <= wall)) {
        // The times come from the candidate's process: they must at least fit in the relay's own clock.
        wrong = fmt::format("the reported times ({:.1f} us program, {:.1f} us stock, {:.1f} us stock+cvt) do not fit in the "
                            "{:.1f} us the relay measured around the repetition: forged timings",
                            a.cand_seconds * 1e6, a.stock_seconds * 1e6, a.stock_abi_seconds * 1e6, wall * 1e6);
      } else {
        // Every timed call: inputs and canaries intact, output within the bound of the stock kernel's for the
        // same inputs; the privately drawn ones also against the float64 reference.
        ++checks;
        wrong = p.inputs_changed();
        if (wrong.empty() && !p.canaries_intact()) wrong = "wrote outside its output or workspace (canary bytes changed)";
        if (wrong.empty()) {
          Comparison cmp = p.compare_with_second();
          if (!cmp.ok) wrong = fmt::format("differs from the stock kernel's output ({} bad rows; {})", cmp.bad_rows, cmp.worst);
        }
        if (wrong.empty() && std::find(check_reps.begin(), check_reps.end(), rep) != check_reps.end()) {
          Comparison cmp = p.compare();
          if (!cmp.ok) wrong = fmt::format("is wrong ({} bad rows; {})", cmp.bad_rows, cmp.worst);
        }
      }
      if (!wrong.empty()) {
        r.failure = fmt::format("benchmark shape {}: timed call {}: {}", c.name, rep, wrong);
        return r;
      }
      tc.push_back(a.cand_seconds), ts.push_back(a.stock_seconds), ta.push_back(a.stock_abi_seconds);
      check_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
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
  r.passed = true;
  r.metrics = {{"speedup_geomean", std::exp(log_sum / weight_sum)},
               {"speedup_geomean_vs_stock_with_conversions", std::exp(log_sum_abi / weight_sum)},
               {"read_bandwidth_gbps", bandwidth * 1e-9}, {"gpu", device}, {"benchmark", shapes},
               {"benchmark_check_seconds", total_check_seconds}, {"benchmark_timed_loop_seconds", total_timed_seconds}};
  r.artifacts["benchmark_table"] = fmt::format(
      "{}, measured read bandwidth {:.0f} GB/s. stock = the engine's kernels as it launches them (float q prepared "
      "untimed); stock+cvt = the same behind the ABI (bf16 q/out conversions); speedup is against stock.\n{}",
      device, bandwidth * 1e-9, table);
  return r;
}

}  // namespace gqa::eval
