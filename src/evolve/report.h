// Files a run leaves for people: DIR/best/ (the best program and its info, rewritten atomically on every
// improvement), DIR/checkpoints/<n>/ snapshots, DIR/report.md and DIR/report.html (report_html.h), both
// made from the database alone (run_record.h), during the run, at its end and by `gqa-evolve report DIR`.
#pragma once
#include <optional>
#include <string>

#include "evolve/database.h"
#include "evolve/report_html.h"
#include "evolve/run_record.h"

namespace gqa::evolve {

void write_best_files(const std::string& dir, const std::string& ext, const Program& best);
void write_checkpoint(const std::string& dir, const std::string& ext, int64_t completed, const Program& best);

// The Markdown report. `status`: how the run stands ("running", "stopped: max_iterations", ...).
std::string markdown_report(const RunRecord& run, const std::string& status);

// Writes DIR/report.md and, with the chart assets, DIR/report.html. Each file is written under a name of
// this process and renamed, so a run and a `gqa-evolve report` writing at once never mix their files.
void write_reports(const RunRecord& run, const std::string& status, const std::optional<ChartAssets>& assets);

}  // namespace gqa::evolve
