// Builds the benchmark's JSON document from the runs: statistics per scenario and arm, paired A/B
// comparison with validity (token agreement, program calls), averages across scenarios with their spread.
#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "bench/charts.h"
#include "bench/stats.h"
#include "bench/summaries.h"
#include "common/error.h"

namespace gqa::bench {

namespace {

using nlohmann::json;

json summary_json(const Summary& s) {
  return {{"n", s.n},           {"median", s.median}, {"mean", s.mean},       {"stddev", s.stddev},
          {"cv", s.cv},         {"ci95_low", s.ci_low}, {"ci95_high", s.ci_high}, {"min", s.min},
          {"max", s.max}};
}

json comparison_json(const Comparison& c) {
  return {{"n", c.n},
          {"ratio_median", c.ratio_median},
          {"ratio_geomean", c.ratio_geomean},
          {"ratio_ci95_low", c.ratio_ci_low},
          {"ratio_ci95_high", c.ratio_ci_high},
          {"change_percent", c.change_percent},
          {"change_ci95_low_percent", c.change_ci_low_percent},
          {"change_ci95_high_percent", c.change_ci_high_percent},
          {"verdict", c.verdict}};
}

// FNV-1a of a token sequence: identical generations are visible in the JSON without storing every token.
uint64_t token_hash(const std::vector<int32_t>& t) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t x : t)
    for (int b = 0; b < 4; ++b) h = (h ^ ((static_cast<uint32_t>(x) >> (8 * b)) & 0xff)) * 1099511628211ull;
  return h;
}

json run_json(const RunRecord& r) {
  const size_t head = std::min<size_t>(r.tokens.size(), 32);
  return {{"arm", r.arm},
          {"index", r.index},
          {"prompt_tokens", r.prompt_tokens},
          {"generated_tokens", r.generated_tokens},
          {"prefill_seconds", r.prefill_seconds},
          {"decode_seconds", r.decode_seconds},
          {"wall_seconds", r.wall_seconds},
          {"prefill_tokens_per_second", r.prefill_tps},
          {"decode_tokens_per_second", r.decode_tps},
          {"total_tokens_per_second", r.total_tps},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"peak_rss_scope", r.peak_rss_per_run ? "run" : "process"},
          {"peak_device_bytes", r.peak_device_bytes},
          {"program_calls", r.program_calls},
          {"decode_path", r.decode_path},
          {"decode_layout", r.decode_layout},
          {"tokens_fnv1a", fmt::format("{:016x}", token_hash(r.tokens))},
          {"first_tokens", std::vector<int32_t>(r.tokens.begin(), r.tokens.begin() + static_cast<long>(head))}};
}

std::vector<const RunRecord*> runs_of(const ScenarioRuns& s, const std::string& arm) {
  std::vector<const RunRecord*> out;
  for (const auto& r : s.runs)
    if (r.arm == arm) out.push_back(&r);
  return out;
}

template <class F>
std::vector<double> column(const std::vector<const RunRecord*>& runs, F f) {
  std::vector<double> v;
  for (const auto* r : runs) v.push_back(f(*r));
  return v;
}

json arm_stats(const std::vector<const RunRecord*>& runs) {
  if (runs.empty()) return json{{"n", 0}};
  size_t rss = 0, dev = 0;
  uint64_t calls_min = UINT64_MAX;
  for (const auto* r : runs) {
    rss = std::max(rss, r->peak_rss_bytes);
    dev = std::max(dev, r->peak_device_bytes);
    calls_min = std::min(calls_min, r->program_calls);
  }
  return {{"n", runs.size()},
          {"prompt_tokens", runs[0]->prompt_tokens},
          {"generated_tokens", runs[0]->generated_tokens},
          {"decode_tokens_per_second", summary_json(summarize(column(runs, [](auto& r) { return r.decode_tps; })))},
          {"prefill_tokens_per_second", summary_json(summarize(column(runs, [](auto& r) { return r.prefill_tps; })))},
          {"total_tokens_per_second", summary_json(summarize(column(runs, [](auto& r) { return r.total_tps; })))},
          {"wall_seconds", summary_json(summarize(column(runs, [](auto& r) { return r.wall_seconds; })))},
          {"peak_rss_bytes", rss},
          {"peak_device_bytes", dev},
          {"program_calls_min", calls_min},
          {"decode_path", runs[0]->decode_path},
          {"decode_layout", runs[0]->decode_layout}};
}

// Candidate vs baseline of one scenario, pairs matched by repetition index.
json compare_scenario(const std::vector<const RunRecord*>& base, const std::vector<const RunRecord*>& cand) {
  const size_t n = std::min(base.size(), cand.size());
  if (n == 0) return json{{"n", 0}};
  std::vector<double> bd, cd, bp, cp, bt, ct, agreement;
  int64_t prefix_min = INT64_MAX;
  uint64_t calls_min = UINT64_MAX;
  for (size_t i = 0; i < n; ++i) {
    const RunRecord &b = *base[i], &c = *cand[i];
    bd.push_back(b.decode_tps), cd.push_back(c.decode_tps);
    bp.push_back(b.prefill_tps), cp.push_back(c.prefill_tps);
    bt.push_back(b.total_tps), ct.push_back(c.total_tps);
    const size_t m = std::min(b.tokens.size(), c.tokens.size());
    size_t same = 0, prefix = 0;
    while (prefix < m && b.tokens[prefix] == c.tokens[prefix]) ++prefix;
    for (size_t k = 0; k < m; ++k) same += b.tokens[k] == c.tokens[k];
    agreement.push_back(m ? static_cast<double>(same) / m : 0.0);
    prefix_min = std::min<int64_t>(prefix_min, static_cast<int64_t>(prefix));
    calls_min = std::min(calls_min, c.program_calls);
  }
  auto safe = [](const std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!(a[i] > 0) || !(b[i] > 0)) return false;
    return true;
  };
  json j{{"pairs", n},
         {"token_agreement", *std::min_element(agreement.begin(), agreement.end())},
         {"token_agreement_mean", summarize(agreement).mean},
         {"identical_prefix_tokens_min", prefix_min},
         {"candidate_program_calls_min", calls_min},
         {"candidate_program_calls_per_token",
          cand[0]->generated_tokens > 0 ? static_cast<double>(calls_min) / cand[0]->generated_tokens : 0.0}};
  if (safe(bd, cd)) j["decode"] = comparison_json(compare_paired(bd, cd));
  if (safe(bp, cp)) j["prefill"] = comparison_json(compare_paired(bp, cp));
  if (safe(bt, ct)) j["total"] = comparison_json(compare_paired(bt, ct));
  return j;
}

// Across scenarios: the per-scenario geometric-mean ratios, summarised (mean, median, spread, CI), and the
// count of each verdict; an average is never reported without its spread.
json across_scenarios(const json& scenarios, const char* metric) {
  std::vector<double> changes;
  std::map<std::string, int> verdicts;
  for (const auto& s : scenarios) {
    if (!s.contains("comparison") || !s["comparison"].contains(metric)) continue;
    const auto& c = s["comparison"][metric];
    changes.push_back(c["change_percent"].get<double>());
    verdicts[c["verdict"].get<std::string>()]++;
  }
  if (changes.empty()) return json{{"scenarios", 0}};
  double log_sum = 0;
  for (double c : changes) log_sum += std::log1p(c / 100);
  return {{"scenarios", changes.size()},
          {"change_percent", summary_json(summarize(changes))},
          {"geomean_change_percent", (std::exp(log_sum / changes.size()) - 1) * 100},
          {"verdicts", verdicts}};
}

}  // namespace

json build_report(const BenchRuns& br, const RunContext& ctx) {
  json scenarios = json::array();
  std::vector<std::string> arm_names;
  for (const auto& a : ctx.arms) arm_names.push_back(a.value("name", ""));
  // compare: baseline, candidate, and where the candidate runs through a path of its own, a control arm.
  const bool paired = arm_names.size() >= 2 && arm_names[0] == "baseline" && arm_names[1] == "candidate";
  for (const ScenarioRuns& s : br.scenarios) {
    const PreparedScenario& p = s.prepared;
    json j{{"name", p.scenario.name},
           {"category", p.scenario.category},
           {"complete", s.complete},
           {"prompt_tokens", p.prompt.size()},
           {"uncapped_prompt_tokens", p.uncapped_prompt_tokens},
           {"max_tokens", p.max_tokens},
           {"scenario_max_tokens", p.scenario.max_tokens},
           {"adjustments", p.adjustments}};
    json arms = json::object();
    for (const auto& name : arm_names) arms[name] = arm_stats(runs_of(s, name));
    j["arms"] = arms;
    if (paired) j["comparison"] = compare_scenario(runs_of(s, "baseline"), runs_of(s, "candidate"));
    // The control arm (the stock program through the candidate's path): what the path itself costs, and the
    // candidate against it.
    if (paired && !runs_of(s, "control").empty()) {
      j["control_vs_baseline"] = compare_scenario(runs_of(s, "baseline"), runs_of(s, "control"));
      j["candidate_vs_control"] = compare_scenario(runs_of(s, "control"), runs_of(s, "candidate"));
    }
    json runs = json::array();
    for (const auto& r : s.runs) runs.push_back(run_json(r));
    j["runs"] = runs;
    scenarios.push_back(j);
  }
  json report{{"format", "gqa-evolve-bench/1"},
              {"timestamp", ctx.timestamp},
              {"mode", ctx.mode},
              {"scenario_file", ctx.scenario_file},
              {"device", ctx.device},
              {"model_dir", ctx.model_dir},
              {"model", ctx.model},
              {"settings", ctx.settings},
              {"arms", ctx.arms},
              {"interrupted", br.interrupted},
              {"seconds", br.seconds},
              {"statistics",
               "per scenario and arm: median, mean, sample stddev, cv = stddev/mean, 95% Student-t interval of the "
               "mean; comparisons: paired candidate/baseline ratios by repetition, t-interval of the mean log ratio; "
               "verdict faster/slower when the whole interval is above/below 1, else within noise"},
              {"scenarios", scenarios}};
  if (paired) {
    report["across_scenarios"] = {{"decode", across_scenarios(scenarios, "decode")},
                                  {"prefill", across_scenarios(scenarios, "prefill")},
                                  {"total", across_scenarios(scenarios, "total")}};
    double agree_min = 1;
    uint64_t calls_min = UINT64_MAX;
    int counted = 0;
    for (const auto& s : scenarios)
      if (s["comparison"].value("pairs", 0) > 0) {
        agree_min = std::min(agree_min, s["comparison"]["token_agreement"].get<double>());
        calls_min = std::min(calls_min, s["comparison"]["candidate_program_calls_min"].get<uint64_t>());
        ++counted;
      }
    report["validity"] = {{"scenarios", counted},
                          {"token_agreement_min", counted ? agree_min : 0.0},
                          {"candidate_program_calls_min", counted ? calls_min : 0},
                          {"program_ran", counted > 0 && calls_min > 0}};
  }
  return report;
}

WrittenFiles write_reports(const json& report, const std::string& dir, const std::string& stem) {
  std::filesystem::create_directories(dir);
  WrittenFiles w;
  const std::string base = dir + "/" + stem;
  write_file_atomic(base + ".json", report.dump(2, ' ', false, json::error_handler_t::replace) + "\n", "bench");
  w.paths.push_back(base + ".json");
  ChartResult charts = write_charts(report, dir, stem);
  write_file_atomic(base + ".csv", format_csv(report), "bench");
  w.paths.push_back(base + ".csv");
  write_file_atomic(base + ".md", format_markdown(report, charts), "bench");
  w.paths.push_back(base + ".md");
  for (const auto& c : charts.images) w.paths.push_back(dir + "/" + c);
  w.charts_note = charts.note;
  return w;
}

}  // namespace gqa::bench
