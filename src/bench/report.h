// Benchmark results as files: one JSON document holds every run and every statistic; the CSV summary, the
// Markdown summary and the charts are all derived from that JSON, so they can never disagree with it.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bench/runner.h"

namespace gqa::bench {

// What the runs do not say about themselves: mode, device, model, settings, caps, arms.
struct RunContext {
  std::string mode, scenario_file, device, model_dir, timestamp;  // timestamp: ISO 8601 UTC
  nlohmann::json model = nlohmann::json::object();     // config summary
  nlohmann::json settings = nlohmann::json::object();  // warmup, runs, caps, threads...
  std::vector<nlohmann::json> arms;                    // {name, label, program, ...} per arm
};

// The whole result: context, per-scenario statistics per arm, the paired comparison when there are two arms
// (named "baseline" and "candidate"), the averages across scenarios with their spread, and every run.
nlohmann::json build_report(const BenchRuns& runs, const RunContext& context);

struct WrittenFiles {
  std::vector<std::string> paths;  // JSON, CSV, Markdown, then charts
  std::string charts_note;         // why there are no charts, when there are none
};

// Writes <dir>/<stem>.json, .csv, .md and the charts (charts.h); `stem` e.g. "bench-quick-20250101-120000".
WrittenFiles write_reports(const nlohmann::json& report, const std::string& dir, const std::string& stem);

}  // namespace gqa::bench
