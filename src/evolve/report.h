// Files a run leaves for people: DIR/best/ (the best program and its info, rewritten atomically on every
// improvement), DIR/checkpoints/<n>/ snapshots, and DIR/report.md at the end.
#pragma once
#include <map>
#include <string>

#include "evolve/database.h"
#include "evolve/outcome.h"
#include "evolve/population.h"

namespace gqa::evolve {

void write_best_files(const std::string& dir, const std::string& ext, const Program& best);
void write_checkpoint(const std::string& dir, const std::string& ext, int64_t completed, const Program& best);

struct ReportInputs {
  const Database* db;
  const Population* population;
  const std::map<std::string, int64_t>* failures;
  Target target;
  double seconds;  // over the whole run, resumes included
  StopReason stop_reason;
};
void write_report(const std::string& dir, const std::string& ext, const ReportInputs& in);

}  // namespace gqa::evolve
