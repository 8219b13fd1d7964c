// Correctness stage: every case of evaluation_cases() twice with fresh random inputs (so that results
// remembered from an earlier call are wrong), alternating KV layouts, output and workspace poisoned before
// each call, inputs read-only and compared with the evaluator's copies after it, canaries checked,
// compared row by row with the float64 reference of the evaluator's copies.
#include <chrono>

#include "common/error.h"
#include "evaluate/stages.h"

namespace gqa::eval {

StageResult run_correctness(Kernel& cand, const WorkerSettings& set) {
  StageResult r;
  Rng rng{set.seed};
  std::string report;
  int index = 0, failed = 0;
  double worst_error = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const Case& c : evaluation_cases(set.target, set.seed)) {
    const KvLayout layout = index++ % 2 == 0 ? KvLayout::PosMajor : KvLayout::HeadMajor;
    Problem p(c, layout, set.threads);
    for (int trial = 0; trial < 2; ++trial) {
      p.fill(rng);
      p.poison();
      const int rc = cand(p.args());
      p.set_inputs_read_only(false);
      std::string line = fmt::format("{:<22} trial {} layout {:<10}", c.name, trial,
                                     layout == KvLayout::PosMajor ? "pos-major" : "head-major");
      if (rc != GQA_OK) {
        report += fmt::format("{} FAIL: {}\n", line, cand.describe(rc));
        ++failed;
        break;
      }
      if (!p.canaries_intact()) {
        report += fmt::format("{} FAIL: wrote outside the output or workspace (canary bytes changed)\n", line);
        ++failed;
        break;
      }
      if (std::string changed = p.inputs_changed(); !changed.empty()) {
        report += fmt::format("{} FAIL: {}\n", line, changed);
        ++failed;
        break;
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
  r.passed = failed == 0;
  if (!r.passed) r.failure = fmt::format("{} correctness case(s) failed (see correctness_report)", failed);
  r.metrics = {{"correctness_cases", index}, {"correctness_failed", failed}, {"max_row_error", worst_error},
               {"row_tolerance", kRowTolerance}, {"input_seed", set.seed},
               {"correctness_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
  r.artifacts["correctness_report"] = report;
  return r;
}

}  // namespace gqa::eval
