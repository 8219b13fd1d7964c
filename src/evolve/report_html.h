// DIR/report.html: one self-contained page (no server, no network; it opens from the file system) made
// from the run's database: the best score over time and per island, the lineage tree (a click on a program
// shows its code, its diff against its parent, metrics, artifacts and the prompt and answer that made it),
// each island's MAP-Elites grid, failures by stage, LLM usage, cost and the model choice. The page's own
// script and style (report_page.js/.css) are compiled in; the chart library (uPlot, fetched and checked by
// scripts/setup.sh) is read from the assets folder and inlined.
#pragma once
#include <string>

#include "evolve/run_record.h"

namespace gqa::evolve {

struct ChartAssets {
  std::string script, style;  // uPlot's iife build and its stylesheet
};

// Reads DIR/uplot/uPlot.iife.min.js and uPlot.min.css; throws "[report] PATH is missing: run
// scripts/setup.sh ..." naming the first missing file.
ChartAssets load_chart_assets(const std::string& assets_dir);

std::string html_report(const RunRecord& run, const std::string& status, const ChartAssets& assets);

// The run as the page's script reads it (embedded as JSON in the page).
nlohmann::json report_data(const RunRecord& run, const std::string& status);

}  // namespace gqa::evolve
