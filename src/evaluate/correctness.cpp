// Correctness stage, judged in the worker's relay: every case of evaluation_cases() twice with fresh random
// inputs (so that results remembered from an earlier call are wrong), alternating KV layouts. The relay writes
// the inputs into the shared arena and keeps its own copies; the candidate's process calls the program on the
// arena (CPU target: inputs read-only there, output and workspace NaN-poisoned, guard pages around every
// buffer) or on device copies of it (CUDA target: the call captured into a graph and replayed, device outputs
// poisoned and guard bands checked; the output and the inputs as the device holds them are copied back); the
// relay then compares the inputs as the program left them with its copies, checks the canaries, and compares
// the output row by row with the float64 reference of its copies.
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "evaluate/channel.h"
#include "evaluate/stages.h"

namespace gqa::eval {

bool post_protections(ChildLink& child, const SharedArena& arena, const std::vector<const Problem*>& problems,
                      bool inputs_read_only) {
  std::vector<Protection> prot;
  for (const Problem* p : problems) p->protections(prot, inputs_read_only);
  if (prot.size() > static_cast<size_t>(Control::kMaxProtections))
    fail("evaluate", "{} arena protections, more than the {} a request holds", prot.size(), Control::kMaxProtections);
  return child.post(Op::Protect, [&](Control& c) {
    c.reset_begin = reinterpret_cast<uintptr_t>(arena.base());
    c.reset_bytes = arena.high_water();
    c.num_protections = static_cast<int32_t>(prot.size());
    std::copy(prot.begin(), prot.end(), c.prot);
  });
}

StageResult run_correctness(ChildLink& child, SharedArena& arena, const WorkerSettings& set) {
  StageResult r;
  Rng rng{set.seed};
  std::string report;
  int index = 0, failed = 0;
  double worst_error = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const bool cuda = set.target == Target::Cuda;
  for (const Case& c : evaluation_cases(set.target, set.seed, set.heads)) {
    const KvLayout layout = index++ % 2 == 0 ? KvLayout::PosMajor : KvLayout::HeadMajor;
    arena.reset();
    Problem p(c, layout, set.threads, &arena);
    if (!post_protections(child, arena, {&p}, !cuda)) return r;
    for (int trial = 0; trial < 2; ++trial) {
      p.fill(rng);
      p.poison();
      if (!child.post(cuda ? Op::CudaCall : Op::Call, [&](Control& k) { k.args = p.args(); })) return r;
      const Control& answer = child.control();
      std::string line = fmt::format("{:<22} trial {} layout {:<10}", c.name, trial,
                                     layout == KvLayout::PosMajor ? "pos-major" : "head-major");
      if (cuda && answer.fatal) {  // the CUDA context may be unusable: nothing more can be asked
        const std::string text(answer.failure, strnlen(answer.failure, sizeof answer.failure));
        report += fmt::format("{} FAIL: {}\n", line, text);
        r.metrics = {{"correctness_cases", index}, {"correctness_failed", failed + 1}, {"input_seed", set.seed}};
        r.failure = text;
        r.artifacts["correctness_report"] = report;
        return r;
      }
      if (cuda && answer.integrity[0]) {
        report += fmt::format("{} FAIL: {}\n", line, std::string(answer.integrity, strnlen(answer.integrity, sizeof answer.integrity)));
        ++failed;
        break;
      }
      if (answer.rc != GQA_OK) {
        report += fmt::format("{} FAIL: {}\n", line, std::string(answer.failure, strnlen(answer.failure, sizeof answer.failure)));
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
