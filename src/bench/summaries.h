// Human-readable forms of a benchmark report: CSV (one row per scenario and arm), Markdown (settings,
// tables, comparison with validity, charts) and the terminal summary. All read the report's JSON only.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "bench/charts.h"

namespace gqa::bench {

std::string format_csv(const nlohmann::json& report);
std::string format_markdown(const nlohmann::json& report, const ChartResult& charts);
std::string format_console_summary(const nlohmann::json& report);

}  // namespace gqa::bench
