// CSV, Markdown and terminal summaries of a benchmark report (see summaries.h).
#include "bench/summaries.h"

#include <fmt/format.h>

#include <algorithm>

namespace gqa::bench {

namespace {

using nlohmann::json;

double num(const json& j, const char* a, const char* b = nullptr) {
  const json* p = &j;
  if (!p->contains(a)) return 0;
  p = &(*p)[a];
  if (b) {
    if (!p->contains(b)) return 0;
    p = &(*p)[b];
  }
  return p->is_number() ? p->get<double>() : 0;
}

std::string mib(double bytes) { return bytes > 0 ? fmt::format("{:.0f}", bytes / 1048576.0) : "-"; }

std::vector<std::string> arm_names(const json& report) {
  std::vector<std::string> out;
  for (const auto& a : report["arms"]) out.push_back(a["name"].get<std::string>());
  return out;
}

bool paired(const json& report) { return report.contains("across_scenarios"); }

// "123.4 [120.1, 126.7]" for a statistic with a CI.
std::string with_ci(const json& s) {
  return fmt::format("{:.1f} [{:.1f}, {:.1f}]", num(s, "median"), num(s, "ci95_low"), num(s, "ci95_high"));
}

std::string change_text(const json& c) {
  return fmt::format("{:+.2f}% [{:+.2f}, {:+.2f}]", num(c, "change_percent"), num(c, "change_ci95_low_percent"),
                     num(c, "change_ci95_high_percent"));
}

std::string across_text(const json& a) {
  if (num(a, "scenarios") == 0) return "no scenario with measured pairs";
  const json& c = a["change_percent"];
  std::string verdicts;
  for (auto& [k, v] : a["verdicts"].items()) verdicts += fmt::format("{}{} {}", verdicts.empty() ? "" : ", ", v.get<int>(), k);
  return fmt::format("mean {:+.2f}% (sd {:.2f}, median {:+.2f}, range {:+.2f} .. {:+.2f}, 95% CI of the mean [{:+.2f}, "
                     "{:+.2f}]) over {} scenarios; geometric mean {:+.2f}%; verdicts: {}",
                     num(c, "mean"), num(c, "stddev"), num(c, "median"), num(c, "min"), num(c, "max"),
                     num(c, "ci95_low"), num(c, "ci95_high"), a["scenarios"].get<int>(),
                     num(a, "geomean_change_percent"), verdicts);
}

std::string caps_text(const json& report) {
  const json& caps = report["settings"].value("caps", json::object());
  std::string out;
  if (num(caps, "max_tokens") > 0) out += fmt::format("generation capped at {} tokens", caps["max_tokens"].get<int64_t>());
  if (num(caps, "prompt_tokens") > 0)
    out += fmt::format("{}prompts capped at {} tokens", out.empty() ? "" : ", ", caps["prompt_tokens"].get<int64_t>());
  return out;
}

}  // namespace

std::string format_csv(const json& report) {
  std::string out =
      "scenario,category,arm,complete,n,prompt_tokens,generated_tokens,decode_tps_median,decode_tps_mean,"
      "decode_tps_ci95_low,decode_tps_ci95_high,decode_tps_cv,prefill_tps_median,prefill_tps_cv,total_tps_median,"
      "wall_seconds_median,peak_rss_bytes,peak_device_bytes,program_calls_min,decode_change_percent,"
      "decode_change_ci95_low_percent,decode_change_ci95_high_percent,decode_verdict,token_agreement\n";
  for (const auto& s : report["scenarios"])
    for (const auto& arm : arm_names(report)) {
      const json& a = s["arms"][arm];
      if (num(a, "n") == 0) continue;
      std::string cmp = ",,,,";
      if (arm == "candidate" && s.contains("comparison") && s["comparison"].contains("decode")) {
        const json& c = s["comparison"]["decode"];
        cmp = fmt::format("{:.4f},{:.4f},{:.4f},{},{:.4f}", num(c, "change_percent"), num(c, "change_ci95_low_percent"),
                          num(c, "change_ci95_high_percent"), c["verdict"].get<std::string>(),
                          num(s["comparison"], "token_agreement"));
      }
      out += fmt::format("{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.5f},{:.4f},{:.5f},{:.4f},{:.5f},{},{},{},{}\n",
                         s["name"].get<std::string>(), s["category"].get<std::string>(), arm,
                         s["complete"].get<bool>() ? "true" : "false", a["n"].get<int>(),
                         a["prompt_tokens"].get<int64_t>(), a["generated_tokens"].get<int64_t>(),
                         num(a["decode_tokens_per_second"], "median"), num(a["decode_tokens_per_second"], "mean"),
                         num(a["decode_tokens_per_second"], "ci95_low"), num(a["decode_tokens_per_second"], "ci95_high"),
                         num(a["decode_tokens_per_second"], "cv"), num(a["prefill_tokens_per_second"], "median"),
                         num(a["prefill_tokens_per_second"], "cv"), num(a["total_tokens_per_second"], "median"),
                         num(a["wall_seconds"], "median"), a["peak_rss_bytes"].get<uint64_t>(),
                         a["peak_device_bytes"].get<uint64_t>(), a["program_calls_min"].get<uint64_t>(), cmp);
    }
  return out;
}

std::string format_markdown(const json& report, const ChartResult& charts) {
  const json& st = report["settings"];
  std::string md = fmt::format("# gqa-evolve bench: {}\n\n", report["mode"].get<std::string>());
  md += fmt::format("- date: {}\n- device: {}\n- model: `{}` ({} layers, hidden {}, {} query / {} KV heads, context window {})\n",
                    report["timestamp"].get<std::string>(), report["device"].get<std::string>(),
                    report["model_dir"].get<std::string>(), num(report["model"], "layers"),
                    num(report["model"], "hidden_size"), num(report["model"], "query_heads"),
                    num(report["model"], "kv_heads"), num(report["model"], "max_position_embeddings"));
  md += fmt::format("- scenarios: `{}`; {} warm-up and {} measured runs per scenario and arm; greedy, end tokens "
                    "ignored (every run generates max_tokens)\n",
                    report["scenario_file"].get<std::string>(), num(st, "warmup"), num(st, "runs"));
  for (const auto& a : report["arms"])
    md += fmt::format("- arm `{}`: {}\n", a["name"].get<std::string>(), a.value("label", ""));
  md += "- statistics: " + report["statistics"].get<std::string>() + "\n";
  if (const std::string caps = caps_text(report); !caps.empty())
    md += fmt::format("\n**Scaled run**: {} (each scenario's original and effective values are in the JSON and "
                      "in the table below).\n", caps);
  if (report["interrupted"].get<bool>())
    md += "\n**Interrupted**: the run was stopped (SIGINT); the results below are what was measured until then.\n";

  md += "\n## Per scenario\n\n| scenario | arm | n | prompt | generated | decode tok/s median [95% CI of mean] | CV | "
        "prefill tok/s | total tok/s | wall s | peak RSS MiB | peak device MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : report["scenarios"])
    for (const auto& arm : arm_names(report)) {
      const json& a = s["arms"][arm];
      if (num(a, "n") == 0) continue;
      md += fmt::format("| {}{} | {} | {} | {} | {} | {} | {:.1f}% | {:.1f} | {:.1f} | {:.2f} | {} | {} |\n",
                        s["name"].get<std::string>(), s["complete"].get<bool>() ? "" : " (partial)", arm,
                        a["n"].get<int>(), a["prompt_tokens"].get<int64_t>(), a["generated_tokens"].get<int64_t>(),
                        with_ci(a["decode_tokens_per_second"]), 100 * num(a["decode_tokens_per_second"], "cv"),
                        num(a["prefill_tokens_per_second"], "median"), num(a["total_tokens_per_second"], "median"),
                        num(a["wall_seconds"], "median"), mib(num(a, "peak_rss_bytes")), mib(num(a, "peak_device_bytes")));
    }

  if (paired(report)) {
    md += "\n## Candidate against baseline\n\nChange of the candidate's decode tok/s (geometric mean of paired ratios, "
          "95% CI); validity beside it: greedy token agreement with the baseline (worst pair) and the program's "
          "invocations per run.\n\n| scenario | baseline decode tok/s (median) | candidate decode tok/s (median) | decode change [95% CI] | "
          "verdict | prefill change | token agreement | program calls |\n|---|---|---|---|---|---|---|---|\n";
    for (const auto& s : report["scenarios"]) {
      const json& c = s["comparison"];
      if (num(c, "pairs") == 0 || !c.contains("decode")) continue;
      md += fmt::format("| {} | {:.1f} | {:.1f} | {} | {} | {} | {:.3f} | {} |\n", s["name"].get<std::string>(),
                        num(s["arms"]["baseline"]["decode_tokens_per_second"], "median"),
                        num(s["arms"]["candidate"]["decode_tokens_per_second"], "median"), change_text(c["decode"]),
                        c["decode"]["verdict"].get<std::string>(),
                        c.contains("prefill") ? change_text(c["prefill"]) : "-", num(c, "token_agreement"),
                        c["candidate_program_calls_min"].get<uint64_t>());
    }
    const json& x = report["across_scenarios"];
    md += "\nAcross scenarios (per-scenario changes, summarised):\n\n";
    md += "- decode: " + across_text(x["decode"]) + "\n";
    md += "- prefill: " + across_text(x["prefill"]) + "\n";
    md += "- total: " + across_text(x["total"]) + "\n";
    const json& v = report["validity"];
    md += fmt::format("- validity: worst token agreement {:.3f}; fewest program calls in a run {}; program ran: {}\n",
                      num(v, "token_agreement_min"), num(v, "candidate_program_calls_min"),
                      v["program_ran"].get<bool>() ? "yes" : "NO");
  }

  md += "\n## Charts\n\n";
  // PNG inline where drawn (renders the same everywhere), with the SVG linked; else the SVG inline.
  for (const auto& img : charts.images) {
    if (img.size() < 4 || img.compare(img.size() - 4, 4, ".svg") != 0) continue;
    const std::string png = img.substr(0, img.size() - 4) + ".png";
    const bool have_png = std::find(charts.images.begin(), charts.images.end(), png) != charts.images.end();
    md += have_png ? fmt::format("![{0}]({0}) ([SVG]({1}))\n\n", png, img) : fmt::format("![{0}]({0})\n\n", img);
  }
  if (!charts.note.empty()) md += charts.note + "\n";

  std::string adj;
  for (const auto& s : report["scenarios"])
    for (const auto& a : s["adjustments"]) adj += fmt::format("- {}: {}\n", s["name"].get<std::string>(), a.get<std::string>());
  if (!adj.empty()) md += "\n## Adjustments to scenarios\n\n" + adj;
  return md;
}

std::string format_console_summary(const json& report) {
  std::string out = fmt::format("{:<34} {:<9} {:>3} {:>7} {:>6} {:>26} {:>6} {:>10} {:>9}\n", "scenario", "arm", "n",
                                "prompt", "gen", "decode tok/s [95% CI]", "CV", "prefill/s", "wall s");
  for (const auto& s : report["scenarios"])
    for (const auto& arm : arm_names(report)) {
      const json& a = s["arms"][arm];
      if (num(a, "n") == 0) continue;
      out += fmt::format("{:<34} {:<9} {:>3} {:>7} {:>6} {:>26} {:>5.1f}% {:>10.1f} {:>9.2f}\n",
                         s["name"].get<std::string>() + (s["complete"].get<bool>() ? "" : " (partial)"), arm,
                         a["n"].get<int>(), a["prompt_tokens"].get<int64_t>(), a["generated_tokens"].get<int64_t>(),
                         with_ci(a["decode_tokens_per_second"]), 100 * num(a["decode_tokens_per_second"], "cv"),
                         num(a["prefill_tokens_per_second"], "median"), num(a["wall_seconds"], "median"));
    }
  if (paired(report)) {
    out += fmt::format("\n{:<34} {:>30} {:<13} {:>9} {:>10}\n", "scenario", "decode change [95% CI]", " verdict",
                       "agreement", "calls");
    for (const auto& s : report["scenarios"]) {
      const json& c = s["comparison"];
      if (num(c, "pairs") == 0 || !c.contains("decode")) continue;
      out += fmt::format("{:<34} {:>30}  {:<12} {:>9.3f} {:>10}\n", s["name"].get<std::string>(), change_text(c["decode"]),
                         c["decode"]["verdict"].get<std::string>(), num(c, "token_agreement"),
                         c["candidate_program_calls_min"].get<uint64_t>());
    }
    out += "\nacross scenarios, decode: " + across_text(report["across_scenarios"]["decode"]) + "\n";
  }
  if (const std::string caps = caps_text(report); !caps.empty()) out += "scaled run: " + caps + "\n";
  if (report["interrupted"].get<bool>()) out += "interrupted: partial results\n";
  return out;
}

}  // namespace gqa::bench
