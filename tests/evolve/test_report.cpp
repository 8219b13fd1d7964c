// The reports of a run: report.md names the best program and shows that program's benchmark table (it
// once showed another's, found through a pointer into a list it had sorted); report.html holds the whole
// run as data its script draws, with nothing in the run able to end the page's script element early; a
// missing chart library is an error naming the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "evolve/database.h"
#include "evolve/report.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

namespace {

// The stand-in evaluator, plus a benchmark table that only this program has.
nlohmann::json with_table(const std::string& code, const std::string& parent, int64_t it) {
  nlohmann::json r = fake_evaluate(code, parent, it);
  r["artifacts"]["benchmark_table"] = fmt::format("| shape | speedup |\n| table of {} |\n", knob_summary(code));
  return r;
}

std::string section_after(const std::string& text, const std::string& heading) {
  const size_t at = text.find(heading);
  return at == std::string::npos ? "" : text.substr(at);
}

RunRecord small_run(const std::string& dir) {
  EvolveConfig c = parse_config("max_iterations: 12\nworkers: 1\nrandom_seed: 5\ndatabase: {num_islands: 2}\n", "r.yaml");
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir;
  o.print_progress = false;
  run_evolution(c, o, with_table);
  return load_run_record(Database(dir + "/evolve.db", Database::Mode::ReadOnly), dir);
}

}  // namespace

TEST(EvolveReport, MarkdownNamesTheBestProgramAndShowsItsTable) {
  const std::string dir = temp_dir("report-md");
  const RunRecord run = small_run(dir);
  ASSERT_GT(run.programs.size(), 3u);
  const Program* best = run.program(run.best_id);
  ASSERT_NE(best, nullptr);
  for (const Program& p : run.programs)
    if (p.correct) EXPECT_LE(p.combined_score, best->combined_score);
  // The old bug printed the table of whichever program sat at the best's index after sorting by score: make
  // sure this run would have shown it.
  std::vector<Program> ranked = run.programs;
  std::stable_sort(ranked.begin(), ranked.end(), [](const Program& a, const Program& b) { return a.combined_score > b.combined_score; });
  const size_t index = static_cast<size_t>(best - run.programs.data());
  ASSERT_NE(ranked.at(index).id, best->id) << "this run cannot tell the right table from the wrong one";

  const std::string md = gqa::read_file(dir + "/report.md", "test");
  EXPECT_NE(md.find(fmt::format("**best program #{}: combined_score {:.4f}**", best->id, best->combined_score)), std::string::npos) << md;
  EXPECT_NE(md.find("- status: stopped: max_iterations"), std::string::npos) << md;
  const std::string table = section_after(md, "## Best program's benchmark");
  EXPECT_NE(table.find(fmt::format("(#{})", best->id)), std::string::npos) << table;
  EXPECT_NE(table.find("| table of " + knob_summary(best->code) + " |"), std::string::npos) << table;
  for (const Program& p : run.programs)
    if (knob_summary(p.code) != knob_summary(best->code))
      EXPECT_EQ(table.find("| table of " + knob_summary(p.code) + " |"), std::string::npos) << "#" << p.id << "'s table:\n" << table;
  // Top programs start with the best; every island lists its elites.
  EXPECT_NE(md.find(fmt::format("|---|---|---|---|---|---|\n| {} |", best->id)), std::string::npos) << md;
  EXPECT_NE(md.find("- island 1: #"), std::string::npos) << md;
  // Regenerated from the database alone, it says the same.
  EXPECT_EQ(markdown_report(run, "stopped: max_iterations"), md);
  std::filesystem::remove_all(dir);
}

TEST(EvolveReport, HtmlHoldsTheRunSafely) {
  const std::string dir = temp_dir("report-html");
  RunRecord run = small_run(dir);
  // A program text that would end a <script> element if it were pasted in as it is.
  run.programs.at(1).artifacts["stderr"] = "</script><script>document.title='pwned'</script>";
  const ChartAssets assets{"window.fakeChart = 1;", ".u-legend{}"};
  const std::string html = html_report(run, "running", assets);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  // Nothing to fetch: the page opens offline (the only URL is the SVG namespace).
  for (const char* fetch : {"<link", " src=", "@import", "fetch(", "XMLHttpRequest", "https://"})
    EXPECT_EQ(html.find(fetch), std::string::npos) << fetch;
  EXPECT_NE(html.find("window.fakeChart = 1;"), std::string::npos);  // the chart library is inlined
  EXPECT_NE(html.find("function lineage()"), std::string::npos);   // and the page's own script
  // Exactly the three script elements close: data, chart library, page script.
  size_t closes = 0;
  for (size_t at = 0; (at = html.find("</script>", at)) != std::string::npos; ++at) ++closes;
  EXPECT_EQ(closes, 3u);
  const std::string open = "<script type=\"application/json\" id=\"run-data\">";
  const size_t begin = html.find(open) + open.size();
  const nlohmann::json data = nlohmann::json::parse(html.substr(begin, html.find("</script>", begin) - begin));
  EXPECT_EQ(data["programs"].size(), run.programs.size());
  EXPECT_EQ(data["attempts"].size(), run.attempts.size());
  EXPECT_EQ(data["best_id"], run.best_id);
  EXPECT_EQ(data["status"], "running");
  EXPECT_EQ(data["islands"].size(), 2u);
  EXPECT_EQ(data["feature_dimensions"], nlohmann::json({"complexity", "diversity"}));
  EXPECT_EQ(data["programs"][1]["artifacts"]["stderr"], "</script><script>document.title='pwned'</script>");
  EXPECT_EQ(data["programs"][0]["code"], run.programs[0].code);
  EXPECT_EQ(data["completed"], 12);
  std::filesystem::remove_all(dir);
}

TEST(EvolveReport, MissingChartLibraryNamesTheFile) {
  const std::string dir = temp_dir("no-assets");
  std::string error;
  try {
    load_chart_assets(dir);
  } catch (const gqa::Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("[report] " + dir + "/uplot/uPlot.iife.min.js is missing: run scripts/setup.sh"), std::string::npos) << error;
  std::filesystem::remove_all(dir);
}
