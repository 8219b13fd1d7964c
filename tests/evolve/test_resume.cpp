// Crash safety end to end: a real `gqa-evolve evolve` (real evaluator, benchmark and end-to-end stages off
// to keep it cheap) is killed with SIGKILL mid-run; `--resume` keeps every committed program and continues
// the iteration count.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/process.h"
#include "evolve/database.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

TEST(EvolveResume, SigkillThenResumeLosesNothing) {
  const std::string dir = temp_dir("resume");
  const std::string cfg = dir + "/cfg.yaml";
  gqa::write_file_atomic(cfg, fmt::format("max_iterations: 100\nrandom_seed: 11\nworkers: 1\ncheckpoint_interval: 2\n"
                                          "database: {{num_islands: 2, migration_interval: 2}}\n"
                                          "evaluator: {{bench: false, end_to_end: false, timeout_seconds: 120, cache_dir: '{}'}}\n",
                                          GQA_TEST_CACHE_DIR), "test");
  const std::string out = dir + "/run";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(GQA_BINARY, GQA_BINARY, "evolve", tunable_path().c_str(), "--config", cfg.c_str(), "--output", out.c_str(), "--quiet",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the initial program and three children to be committed, then kill without warning.
  bool exited = false;
  const int64_t seen = wait_for_programs(out + "/evolve.db", 4, pid, 400, &exited);
  ASSERT_FALSE(exited) << "evolve exited early";
  // While it runs: a second writer (a --resume started by mistake) is refused at once, naming the folder
  // and the running process; a report reads the run without disturbing it.
  {
    gqa::ProcessOptions second;
    second.argv = {GQA_BINARY, "evolve", tunable_path(), "--config", cfg, "--output", out, "--resume", "--quiet"};
    second.timeout_seconds = 60;
    const gqa::ProcessResult r = gqa::run_process(second);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(fmt::format("{} is in use by another gqa-evolve (pid {} on host ", out, pid)), std::string::npos) << r.err;
    gqa::ProcessOptions report;
    report.argv = {GQA_BINARY, "report", out, "--assets", GQA_ASSETS_DIR};
    report.timeout_seconds = 60;
    const gqa::ProcessResult rr = gqa::run_process(report);
    EXPECT_TRUE(rr.ok()) << rr.describe() << rr.out << rr.err;
    EXPECT_NE(rr.out.find(fmt::format("running (pid {} on host ", pid)), std::string::npos) << rr.out;
    EXPECT_NE(gqa::read_file(out + "/report.html", "test").find("\"status\":\"running (pid"), std::string::npos);
    int status;
    ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the run ended while it was being read";
  }
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  ASSERT_GE(seen, 4);

  std::vector<Program> before;
  nlohmann::json state;
  int64_t last_iteration = 0;
  {
    Database db(out + "/evolve.db");
    before = db.programs();
    state = db.load_state().value();
    for (const Attempt& a : db.attempts()) last_iteration = std::max(last_iteration, a.iteration);
  }
  const int64_t completed = state["completed"];
  ASSERT_GE(completed, 3);
  EXPECT_EQ(state["next_iteration"].get<int64_t>(), last_iteration + 1);

  gqa::ProcessOptions po;
  po.argv = {GQA_BINARY, "evolve", tunable_path(), "--config", cfg, "--output", out, "--resume",
             "--iterations", std::to_string(completed + 2)};
  po.timeout_seconds = 400;
  const gqa::ProcessResult r = gqa::run_process(po);
  ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
  EXPECT_NE(r.out.find(fmt::format("resuming {}: {} iterations done", out, completed)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best program:"), std::string::npos);

  Database db(out + "/evolve.db");
  const auto after = db.programs();
  ASSERT_GE(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {  // every committed program is still there, unchanged
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].code_hash, before[i].code_hash);
    EXPECT_EQ(after[i].metrics, before[i].metrics);
    EXPECT_EQ(after[i].iteration, before[i].iteration);
  }
  const auto st = db.load_state().value();
  EXPECT_EQ(st["completed"].get<int64_t>(), completed + 2);
  const auto attempts = db.attempts();
  ASSERT_EQ(static_cast<int64_t>(attempts.size()), completed + 3);  // the initial program, then one per iteration
  EXPECT_EQ(attempts[attempts.size() - 2].iteration, last_iteration + 1);  // numbering continues
  EXPECT_EQ(attempts.back().iteration, last_iteration + 2);
  // A second start without --resume is refused; the best files and report exist.
  po.argv = {GQA_BINARY, "evolve", tunable_path(), "--config", cfg, "--output", out};
  const gqa::ProcessResult again = gqa::run_process(po);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already holds a run"), std::string::npos) << again.err;
  EXPECT_TRUE(std::filesystem::exists(out + "/best/best_program.cpp"));
  EXPECT_TRUE(std::filesystem::exists(out + "/report.md"));
  std::filesystem::remove_all(dir);
}

// A run killed before its initial program was committed has a database without a run in it: --resume
// starts it (from INITIAL_PROGRAM) instead of asking for a fresh start.
TEST(EvolveResume, ResumeBeforeTheInitialCommitStartsTheRun) {
  const std::string dir = temp_dir("early-kill");
  { Database db(dir + "/evolve.db"); }  // what the killed run left: the tables, nothing committed
  EvolveConfig c = parse_config("max_iterations: 3\nworkers: 1\n", "c.yaml");
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir;
  o.print_progress = false;
  o.resume = true;
  const RunSummary s = run_evolution(c, o, fake_evaluate);
  EXPECT_EQ(s.iterations, 3);
  EXPECT_EQ(Database(dir + "/evolve.db").count_programs(), 4);
  EXPECT_NE(gqa::read_file(dir + "/evolve.log", "test").find("stopped before its initial program was committed; starting it from"),
            std::string::npos);
  std::filesystem::remove_all(dir);
  // No database at all is still no run to resume.
  EXPECT_THROW(run_evolution(c, o, fake_evaluate), gqa::Error);
  std::filesystem::remove_all(dir);
}
