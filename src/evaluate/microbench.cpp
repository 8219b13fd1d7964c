// Microbenchmark stage (CPU target), judged in the worker's relay. The candidate's process times each call
// (steady clock around it), candidate and stock kernel back to back in alternating order, over several
// buffer sets in the shared arena so that caches do not flatter; median of at least min_reps after
// warm-up. The relay draws fresh queries before every repetition and checks every timed call itself:
// the inputs as the program left them against its own copies, the canaries, the candidate's output
// against the stock kernel's output that the relay computes on its own copies (and three repetitions
// drawn at random against the float64 reference), and that the reported times fit in the wall time the
// relay measured around the repetition. A program that is right only while being checked is caught here;
// one that forges its times can only move time between the two kernels of a repetition (docs/evaluator.md).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
#include "engine/cpu/attention_bf16.h"
#include "evaluate/channel.h"
#include "evaluate/stages.h"

namespace gqa::eval {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

double measure_host_read_bandwidth(int threads) {
  const size_t n = (256u << 20) / 8;
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
#pragma omp parallel for num_threads(threads)
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    uint64_t sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for reduction(+ : sum) num_threads(threads)
    for (size_t i = 0; i < n; ++i) sum += buf[i];
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sum == 1) best += 0;  // keeps the sum alive
    best = std::max(best, n * 8.0 / s);
  }
  return best;
}

namespace {

// Bounds on what the candidate's process reports (medians over a shape's repetitions): the wall time of a
// repetition not covered by its two timed calls may be at most this share of it plus a few round trips,
// and the stock kernel's time at most this multiple of the relay's own run of it.
constexpr double kUntimedShare = 0.1, kUntimedTrips = 3, kStockRatio = 3;

// The stock kernel's output for a problem's inputs, computed in the relay from its private copies. With
// several threads OpenMP's pool is released afterwards, so that no thread of the relay spins on the cores
// the next timed calls run on; that costs milliseconds (the pool is made again), so calls the child timed
// under kRelaySingleThread run on one thread instead.
constexpr double kRelaySingleThread = 5e-3;

class RelayStock {
 public:
  // Seconds the call took.
  double run(const Problem& p, int threads) {
    const gqa_attention_args& a = p.args();
    const size_t out_elems = static_cast<size_t>(a.total_q) * a.num_q_heads * a.head_dim;
    if (out_.size() < out_elems) out_.resize(out_elems);
    if (!ws_.data() || ws_.size() < a.workspace_bytes) ws_ = GuardedBuffer(a.workspace_bytes);
    const gqa_attention_args own = p.private_args(reinterpret_cast<gqa_bf16*>(out_.data()), ws_.data(), threads);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = cpu::stock_attention(&own);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (threads > 1) omp_pause_resource_all(omp_pause_soft);
    if (rc != GQA_OK) fail("evaluate", "benchmark shape {}: the stock kernel in the relay returned {}", p.spec().name, rc);
    return t;
  }
  const uint16_t* output() const { return out_.data(); }

 private:
  std::vector<uint16_t> out_;
  GuardedBuffer ws_;
};

}  // namespace

StageResult run_microbench(ChildLink& child, SharedArena& arena, const WorkerSettings& set) {
  StageResult r;
  Rng rng{set.seed ^ 0x5EED5EEDull};
  const double bandwidth = measure_host_read_bandwidth(set.threads);
  omp_pause_resource_all(omp_pause_soft);
  RelayStock relay_stock;
  nlohmann::json shapes = nlohmann::json::array();
  double log_sum = 0, weight_sum = 0;
  std::string table = fmt::format("{:<22} {:>12} {:>12} {:>8} {:>9} {:>6}\n", "shape", "stock (us)", "program (us)",
                                  "speedup", "%read-BW", "reps");
  for (const Case& c : benchmark_cases(set.target, set.heads)) {
    // Enough buffer sets that one rotation does not fit in a large last-level cache (>= 64 MiB), 2..8.
    arena.reset();
    std::vector<std::unique_ptr<Problem>> sets;
    std::vector<const Problem*> views;
    size_t bytes = 0;
    while (sets.size() < 2 || (bytes < (64u << 20) && sets.size() < 8)) {
      sets.push_back(std::make_unique<Problem>(c, KvLayout::PosMajor, set.threads, &arena));
      sets.back()->fill(rng);
      sets.back()->second_args();  // the stock kernel's own output and workspace
      sets.back()->poison();
      views.push_back(sets.back().get());
      bytes += sets.back()->kv_bytes();
    }
    if (!post_protections(child, arena, views)) return r;
    std::string wrong;
    // One repetition in the candidate's process; false when it ended. `wall`: seconds the relay measured
    // from posting the request to reading the answer.
    auto repetition = [&](Problem& p, bool stock_first, double& wall) {
      const auto t0 = std::chrono::steady_clock::now();
      const bool ok = child.post(Op::Repetition, [&](Control& k) {
        k.args = p.args();
        k.args2 = p.second_args();
        k.stock_first = stock_first;
      });
      wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const Control& a = child.control();
      if (ok && a.rc != GQA_OK)
        wrong = fmt::format("the program {}", std::string(a.failure, strnlen(a.failure, sizeof a.failure)));
      else if (ok && a.rc_stock != GQA_OK)
        fail("evaluate", "benchmark shape {}: the stock kernel {}", c.name, std::string(a.failure, strnlen(a.failure, sizeof a.failure)));
      return ok;
    };
    double wall = 0;
    for (int w = 0; w < 2 && wrong.empty(); ++w)  // warm-up: page faults, thread pools, instruction caches
      for (auto& p : sets) {
        if (!repetition(*p, true, wall)) return r;
        if (!wrong.empty()) break;
        p->poison();
      }
    // The round trip alone (no kernel): what of a repetition's wall time is not in its timed calls.
    std::vector<double> trips;
    for (int i = 0; i < 11; ++i) {
      const auto n0 = std::chrono::steady_clock::now();
      if (!child.post(Op::Nop)) return r;
      trips.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - n0).count());
    }
    const double trip = median(trips);
    // Reps whose candidate output is checked against the float64 reference: drawn at random.
    std::vector<int> check_reps;
    for (int i = 0; i < 3; ++i) check_reps.push_back(static_cast<int>(rng.next() % set.min_reps));
    std::vector<double> tc, ts, t_relay, walls, untimed;
    int checks = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int rep = 0; wrong.empty(); ++rep) {
      Problem& p = *sets[rep % sets.size()];
      p.refill_queries(rng);  // nothing from an earlier call can be the answer
      p.poison();
      if (!repetition(p, rep % 2 == 0, wall)) return r;
      if (!wrong.empty()) break;
      const Control& a = child.control();
      const double cs = a.cand_seconds, ss = a.stock_seconds;
      // The times come from the candidate's process: they must at least fit in the relay's own clock.
      if (!(cs > 0 && ss > 0 && cs + ss <= wall)) {
        wrong = fmt::format("the reported times ({:.1f} us program, {:.1f} us stock) do not fit in the {:.1f} us the relay "
                            "measured around the repetition: forged timings", cs * 1e6, ss * 1e6, wall * 1e6);
        break;
      }
      tc.push_back(cs);
      ts.push_back(ss);
      walls.push_back(wall);
      untimed.push_back(wall - cs - ss);
      // Every timed call: inputs and canaries intact, output within the bound of the stock kernel's.
      wrong = p.inputs_changed();
      if (wrong.empty() && !p.canaries_intact()) wrong = "wrote outside its output or workspace (canary bytes changed)";
      if (wrong.empty()) {
        t_relay.push_back(relay_stock.run(p, ss < kRelaySingleThread ? 1 : set.threads));
        Comparison cmp = p.compare_with(relay_stock.output());
        ++checks;
        if (!cmp.ok) wrong = fmt::format("output differs from the stock kernel's ({} bad rows; {})", cmp.bad_rows, cmp.worst);
      }
      if (wrong.empty() && std::find(check_reps.begin(), check_reps.end(), rep) != check_reps.end()) {
        Comparison cmp = p.compare();
        if (!cmp.ok) wrong = fmt::format("output is wrong ({} bad rows; {})", cmp.bad_rows, cmp.worst);
      }
      if (!wrong.empty()) {
        wrong = fmt::format("timed call {}: {}", rep, wrong);
        break;
      }
      const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep + 1 >= set.min_reps && (spent > set.bench_seconds || rep + 1 >= 1000)) break;
    }
    // The times as a whole: what the child's reports leave unaccounted of the relay's wall time (a program
    // that understates its own time leaves it there), and the stock kernel's time against the relay's
    // own run of it on the same inputs (a program that overstates it, or really slows it, shows there).
    const double mc = median(tc), ms = median(ts), speedup = ms / mc;
    const double untimed_median = untimed.empty() ? 0 : median(untimed), wall_median = walls.empty() ? 0 : median(walls);
    const double relay_stock_median = t_relay.empty() ? 0 : median(t_relay);
    if (wrong.empty() && untimed_median > kUntimedShare * wall_median + kUntimedTrips * trip)
      wrong = fmt::format("the reported times leave {:.1f} us of a repetition's {:.1f} us unaccounted (medians; a round trip "
                          "without kernels takes {:.1f} us): the program's time was understated",
                          untimed_median * 1e6, wall_median * 1e6, trip * 1e6);
    if (wrong.empty() && ms > kStockRatio * relay_stock_median)
      wrong = fmt::format("the stock kernel took {:.1f} us (median) in the candidate's process, {:.1f} us in the relay: "
                          "more than {}x (its time overstated, or the program slows it)",
                          ms * 1e6, relay_stock_median * 1e6, kStockRatio);
    if (!wrong.empty()) {
      r.failure = fmt::format("benchmark shape {}: {}", c.name, wrong);
      return r;
    }
    const double bw_pct = 100.0 * c.min_bytes() / mc / bandwidth;
    log_sum += c.weight * std::log(speedup);
    weight_sum += c.weight;
    shapes.push_back({{"shape", c.name}, {"weight", c.weight}, {"reps", tc.size()}, {"buffer_sets", sets.size()},
                      {"program_median_us", mc * 1e6}, {"program_p25_us", quantile(tc, 0.25) * 1e6},
                      {"program_p75_us", quantile(tc, 0.75) * 1e6}, {"stock_median_us", ms * 1e6},
                      {"stock_p25_us", quantile(ts, 0.25) * 1e6}, {"stock_p75_us", quantile(ts, 0.75) * 1e6},
                      {"stock_relay_median_us", relay_stock_median * 1e6}, {"untimed_median_us", untimed_median * 1e6},
                      {"wall_median_us", wall_median * 1e6}, {"round_trip_us", trip * 1e6},
                      {"speedup", speedup}, {"percent_of_read_bandwidth", bw_pct}, {"checked_calls", checks},
                      {"stock_percent_of_read_bandwidth", 100.0 * c.min_bytes() / ms / bandwidth},
                      {"program_gflops", c.flops() / mc * 1e-9}});
    table += fmt::format("{:<22} {:>12.1f} {:>12.1f} {:>8.3f} {:>9.1f} {:>6}\n", c.name, ms * 1e6, mc * 1e6, speedup,
                         bw_pct, tc.size());
  }
  r.passed = true;
  r.metrics = {{"speedup_geomean", std::exp(log_sum / weight_sum)}, {"read_bandwidth_gbps", bandwidth * 1e-9},
               {"benchmark", shapes}};
  r.artifacts["benchmark_table"] = table;
  return r;
}

}  // namespace gqa::eval
