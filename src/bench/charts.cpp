// gnuplot charts of a benchmark report (see charts.h). gnuplot runs as a child process with a time limit;
// its absence or failure is reported, never fatal: the JSON, CSV and Markdown files matter more.
#include "bench/charts.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/process.h"

namespace gqa::bench {

namespace {

using nlohmann::json;

std::string gnuplot_binary() {
  const char* env = std::getenv("GQA_GNUPLOT");
  return env && *env ? env : "gnuplot";
}

// gnuplot single-quoted string: a quote is written twice.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// Mean and 95% CI of decode tok/s of one arm of a scenario; false when the arm has no runs.
bool decode_stats(const json& scenario, const std::string& arm, double& mean, double& lo, double& hi) {
  if (!scenario["arms"].contains(arm) || scenario["arms"][arm].value("n", 0) == 0) return false;
  const auto& s = scenario["arms"][arm]["decode_tokens_per_second"];
  mean = s["mean"], lo = s["ci95_low"], hi = s["ci95_high"];
  return true;
}

// The same chart as PNG, where this gnuplot has the cairo terminal (SVG renderers differ; PNG is what
// Markdown viewers show most reliably).
std::string png_replot(const std::string& png, int width) {
  return fmt::format(
      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {{\n  set terminal pngcairo noenhanced size {},520 background rgb 'white' "
      "font 'sans,10'\n  set output {}\n  replot\n}}\n",
      width, gp_string(png));
}

struct Plot {
  std::string name, data, script;
};

}  // namespace

bool gnuplot_available() {
  const std::string bin = gnuplot_binary();
  if (bin == "none") return false;
  ProcessOptions po;
  po.argv = {bin, "--version"};
  po.timeout_seconds = 20;
  try {
    return run_process(po).ok();
  } catch (const Error&) {
    return false;
  }
}

ChartResult write_charts(const json& report, const std::string& dir, const std::string& stem) {
  ChartResult r;
  std::vector<std::string> arms;
  for (const auto& a : report["arms"]) arms.push_back(a["name"].get<std::string>());
  const std::string dev = report.value("device", "");
  const std::string title_tail = fmt::format("{} ({}, {})", report.value("mode", ""), dev, report.value("timestamp", ""));

  // Decode tok/s per scenario, one cluster per scenario, one bar per arm with its 95% CI.
  std::string per_scenario = "# index scenario";
  for (const auto& a : arms) per_scenario += fmt::format(" {0}_mean {0}_ci_low {0}_ci_high", a);
  per_scenario += "\n";
  // Speed against context: average context during decode = prompt + generated / 2.
  std::vector<std::pair<double, std::string>> ctx_rows;
  int index = 0;
  for (const auto& s : report["scenarios"]) {
    std::string row = fmt::format("{} {}", index, s["name"].get<std::string>());
    bool any = false;
    double ctx = 0;
    std::string ctx_row;
    for (const auto& a : arms) {
      double m = 0, lo = 0, hi = 0;
      if (decode_stats(s, a, m, lo, hi)) {
        any = true;
        ctx = s["arms"][a]["prompt_tokens"].get<double>() + 0.5 * s["arms"][a]["generated_tokens"].get<double>();
        row += fmt::format(" {:.6g} {:.6g} {:.6g}", m, std::max(lo, 0.0), hi);
        ctx_row += fmt::format(" {:.6g} {:.6g} {:.6g}", m, std::max(lo, 0.0), hi);
      } else {
        row += " NaN NaN NaN";
        ctx_row += " NaN NaN NaN";
      }
    }
    if (!any) continue;
    per_scenario += row + "\n";
    ctx_rows.push_back({ctx, fmt::format("{:.1f}{} {}", ctx, ctx_row, s["name"].get<std::string>())});
    ++index;
  }
  if (index == 0) {
    r.note = "no charts: no scenario has measured runs";
    return r;
  }
  std::sort(ctx_rows.begin(), ctx_rows.end());
  std::string per_context = "# context";
  for (const auto& a : arms) per_context += fmt::format(" {0}_mean {0}_ci_low {0}_ci_high", a);
  per_context += " scenario\n";
  for (const auto& [c, row] : ctx_rows) per_context += row + "\n";

  const std::string base = dir + "/" + stem;
  const char* colors[] = {"#4c72b0", "#dd8452", "#55a868", "#c44e52"};
  std::vector<Plot> plots;
  {
    Plot p{"decode", stem + "-decode.dat", ""};
    std::string cmd;
    for (size_t i = 0; i < arms.size(); ++i)
      cmd += fmt::format("{}{} using {}:{}:{}{} title '{}' lc rgb '{}'", i ? ", " : "", i ? std::string("''") : gp_string(p.data),
                         3 + 3 * i, 4 + 3 * i, 5 + 3 * i, i == 0 ? ":xtic(2)" : "", arms[i], colors[i % 4]);
    p.script = fmt::format(
        "set terminal svg size {},520 dynamic background rgb 'white' font 'sans,11'\n"
        "set output {}\nset termoption noenhanced\n"
        "set title 'decode tok/s per scenario (mean, 95% CI) - {}'\n"
        "set ylabel 'decode tokens / second'\nset yrange [0:*]\nset grid ytics\n"
        "set style data histograms\nset style histogram errorbars gap 2 lw 1.5\n"
        "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset xtics rotate by 30 right nomirror scale 0\n"
        "set key top right\nset bmargin 9\nplot {}\n{}",
        std::max(640, 90 * index + 200), gp_string(stem + "-decode.svg"), title_tail, cmd,
        png_replot(stem + "-decode.png", std::max(640, 90 * index + 200)));
    plots.push_back(p);
  }
  {
    Plot p{"context", stem + "-context.dat", ""};
    std::string cmd;
    for (size_t i = 0; i < arms.size(); ++i)
      cmd += fmt::format("{}{} using 1:{}:{}:{} with yerrorlines title '{}' lc rgb '{}' pt 7 ps 0.8", i ? ", " : "",
                         i ? std::string("''") : gp_string(p.data), 2 + 3 * i, 3 + 3 * i, 4 + 3 * i, arms[i], colors[i % 4]);
    p.script = fmt::format(
        "set terminal svg size 800,520 dynamic background rgb 'white' font 'sans,11'\n"
        "set output {}\nset termoption noenhanced\n"
        "set title 'decode tok/s against context length (mean, 95% CI) - {}'\n"
        "set xlabel 'average context during decode (prompt + generated/2, tokens)'\n"
        "set ylabel 'decode tokens / second'\nset logscale x 2\nset yrange [0:*]\nset grid\n"
        "set key top right\nplot {}\n{}",
        gp_string(stem + "-context.svg"), title_tail, cmd, png_replot(stem + "-context.png", 800));
    plots.push_back(p);
  }
  write_file_atomic(base + "-decode.dat", per_scenario, "bench");
  write_file_atomic(base + "-context.dat", per_context, "bench");

  for (const Plot& p : plots) write_file_atomic(base + "-" + p.name + ".gp", p.script, "bench");
  if (!gnuplot_available()) {
    r.note = fmt::format("no charts: gnuplot was not found ('{}'); install gnuplot-nox (scripts/setup.sh) and run "
                         "gnuplot on the .gp files written beside the results",
                         gnuplot_binary());
    return r;
  }
  for (const Plot& p : plots) {
    ProcessOptions po;
    // The scripts name their files relative to the output folder, so the folder can be moved and redrawn.
    po.argv = {gnuplot_binary(), "-e", "cd " + gp_string(dir) + "; load " + gp_string(stem + "-" + p.name + ".gp")};
    po.timeout_seconds = 60;
    ProcessResult pr = run_process(po);
    const std::string svg = stem + "-" + p.name + ".svg", png = stem + "-" + p.name + ".png";
    if (pr.ok() && std::filesystem::exists(dir + "/" + svg)) {
      r.images.push_back(svg);
      if (std::filesystem::exists(dir + "/" + png)) r.images.push_back(png);
    } else {
      r.note += fmt::format("{}chart {} failed: gnuplot {}: {}", r.note.empty() ? "" : "; ", p.name, pr.describe(),
                            pr.err.substr(0, 400));
    }
  }
  return r;
}

}  // namespace gqa::bench
