// Charts of a benchmark report drawn by gnuplot (Debian's gnuplot-nox): decode tok/s per scenario with
// 95% CI error bars (baseline vs candidate), and decode tok/s against context length. SVG, and PNG too
// where gnuplot has the cairo terminal.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace gqa::bench {

struct ChartResult {
  std::vector<std::string> images;  // file names (in the output folder) of the charts drawn
  std::string note;                 // why a chart is missing (no gnuplot, gnuplot failed, no data)
};

// Writes <stem>-<chart>.dat and .gp beside the images (names relative to `dir`: redraw with
// `cd DIR && gnuplot STEM-decode.gp`).
// Never throws for a missing or failing gnuplot: that goes into `note`.
ChartResult write_charts(const nlohmann::json& report, const std::string& dir, const std::string& stem);

// True when `gnuplot` runs ($GQA_GNUPLOT names another binary; "none" turns charts off).
bool gnuplot_available();

}  // namespace gqa::bench
