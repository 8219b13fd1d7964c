// `evolve --workers mpi` under a real mpirun on the CPU target (benchmark and end-to-end stages off, so a
// correct program scores exactly 1 and the search does not depend on timings):
//  - 3 ranks: the run completes, every program evaluated by any rank is in the database once, both worker
//    ranks evaluated, the best program is exported;
//  - 2 ranks (one worker) give the same programs, parents and islands as a single-process run with one
//    worker and the same seed;
//  - bad setups (one rank, a bad config) end with one clear error instead of a hang;
//  - an evaluator rank killed with SIGKILL ends the job, and --resume under a new mpirun loses nothing committed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "common/process.h"
#include "evolve/database.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

namespace {

std::string write_config(const std::string& dir, int iterations) {
  const std::string cfg = dir + "/cfg.yaml";
  gqa::write_file_atomic(cfg, fmt::format("max_iterations: {}\nrandom_seed: 7\nworkers: 1\n"
                                          "database: {{num_islands: 2, migration_interval: 3}}\n"
                                          "evaluator: {{bench: false, end_to_end: false, timeout_seconds: 120, cache_dir: '{}'}}\n",
                                          iterations, GQA_TEST_CACHE_DIR), "test");
  return cfg;
}

// mpirun with what containers and small machines need: root, more ranks than cores, no cross-memory attach.
gqa::ProcessResult run_mpi(int ranks, const std::vector<std::string>& args) {
  gqa::ProcessOptions po;
  po.argv = {GQA_MPIEXEC, "-n", std::to_string(ranks), "--allow-run-as-root", "--oversubscribe", GQA_BINARY};
  po.argv.insert(po.argv.end(), args.begin(), args.end());
  po.env = {{"OMPI_MCA_btl_vader_single_copy_mechanism", "none"}, {"OMP_WAIT_POLICY", "passive"}};
  po.timeout_seconds = 400;
  return gqa::run_process(po);
}

// Pids of this machine's processes whose environment says they are rank `rank` of an MPI job started
// under `launcher` (its direct children).
std::vector<pid_t> ranks_of(pid_t launcher, int rank) {
  std::vector<pid_t> pids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) != 2 || ppid != launcher) continue;
    std::ifstream env(e.path() / "environ", std::ios::binary);
    const std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (all.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos) pids.push_back(std::stoi(name));
  }
  return pids;
}

std::vector<std::string> evolve_args(const std::string& cfg, const std::string& out, const std::string& workers) {
  return {"evolve", tunable_path(), "--config", cfg, "--output", out, "--quiet", "--workers", workers};
}

}  // namespace

TEST(EvolveMpi, ThreeRanksCompleteAndCommitEveryProgramOnce) {
  const std::string dir = temp_dir("mpi3");
  const std::string out = dir + "/run";
  const gqa::ProcessResult r = run_mpi(3, evolve_args(write_config(dir, 6), out, "mpi"));
  ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
  EXPECT_NE(r.out.find("best program:"), std::string::npos) << r.out;

  Database db(out + "/evolve.db");
  const auto programs = db.programs();
  const auto attempts = db.attempts();
  int evaluated = 0;
  std::set<int64_t> iterations;
  for (const Attempt& a : attempts) {
    evaluated += a.outcome == Outcome::Evaluated;
    iterations.insert(a.iteration);
  }
  EXPECT_EQ(iterations.size(), 7u);  // the initial program (0) and iterations 1..6, each once
  EXPECT_EQ(db.load_state().value()["completed"].get<int64_t>(), 6);
  ASSERT_EQ(static_cast<int>(programs.size()), evaluated);
  std::set<std::string> hashes;
  for (const Program& p : programs) {
    EXPECT_TRUE(hashes.insert(p.code_hash).second) << "program #" << p.id << " is in the database twice";
    EXPECT_TRUE(p.correct) << "program #" << p.id;
  }
  const std::string log = gqa::read_file(out + "/evolve.log", "test");
  EXPECT_NE(log.find("2 evaluator rank(s)"), std::string::npos) << log;
  EXPECT_NE(log.find("evaluated by rank 1 on"), std::string::npos) << log;
  EXPECT_NE(log.find("evaluated by rank 2 on"), std::string::npos) << log;
  size_t lines = 0;  // one "evaluated by" line per evaluated program, the initial one included
  for (size_t at = 0; (at = log.find("    evaluated by rank ", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, programs.size()) << log;
  const auto best = db.program(db.load_state().value()["best_id"].get<int64_t>());
  ASSERT_TRUE(best);
  EXPECT_EQ(gqa::read_file(out + "/best/best_program.cpp", "test"), best->code);
  EXPECT_TRUE(std::filesystem::exists(out + "/best/best_program_info.json"));
}

TEST(EvolveMpi, OneWorkerRankMatchesSingleProcessRun) {
  const std::string dir = temp_dir("mpi2");
  const std::string cfg = write_config(dir, 5);
  gqa::ProcessOptions po;
  po.argv = {GQA_BINARY};
  for (const std::string& a : evolve_args(cfg, dir + "/single", "1")) po.argv.push_back(a);
  po.env = {{"OMP_WAIT_POLICY", "passive"}};
  po.timeout_seconds = 400;
  const gqa::ProcessResult single = gqa::run_process(po);
  ASSERT_TRUE(single.ok()) << single.describe() << "\n" << single.out << single.err;
  const gqa::ProcessResult mpi = run_mpi(2, evolve_args(cfg, dir + "/mpi", "mpi"));
  ASSERT_TRUE(mpi.ok()) << mpi.describe() << "\n" << mpi.out << mpi.err;

  Database a(dir + "/single/evolve.db"), b(dir + "/mpi/evolve.db");
  const auto pa = a.programs(), pb = b.programs();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].code_hash, pb[i].code_hash) << "program #" << pa[i].id;
    EXPECT_EQ(pa[i].parent_id, pb[i].parent_id) << "program #" << pa[i].id;
    EXPECT_EQ(pa[i].island, pb[i].island) << "program #" << pa[i].id;
    EXPECT_EQ(pa[i].mutation, pb[i].mutation) << "program #" << pa[i].id;
    EXPECT_EQ(pa[i].combined_score, pb[i].combined_score) << "program #" << pa[i].id;
  }
  EXPECT_EQ(a.load_state().value()["population"], b.load_state().value()["population"]);
}

TEST(EvolveMpi, BadSetupsEndWithOneClearError) {
  const std::string dir = temp_dir("mpibad");
  const gqa::ProcessResult one = run_mpi(1, evolve_args(write_config(dir, 2), dir + "/one", "mpi"));
  EXPECT_FALSE(one.ok());
  EXPECT_FALSE(one.timed_out);
  EXPECT_NE(one.err.find("--workers mpi needs at least 2 ranks"), std::string::npos) << one.err;

  const std::string bad = dir + "/bad.yaml";
  gqa::write_file_atomic(bad, "max_iterations: 3\ndatabase: {num_islands: 0}\n", "test");
  const gqa::ProcessResult r = run_mpi(3, evolve_args(bad, dir + "/bad", "mpi"));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.timed_out) << "the worker ranks were left waiting";
  EXPECT_NE(r.err.find("num_islands"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad/evolve.db"));
}

TEST(EvolveMpi, KilledWorkerRankEndsTheJobAndResumeLosesNothing) {
  const std::string dir = temp_dir("mpikill");
  const std::string cfg = write_config(dir, 40), out = dir + "/run";
  std::vector<std::string> argv = {GQA_MPIEXEC, "-n", "3", "--allow-run-as-root", "--oversubscribe", GQA_BINARY};
  for (const std::string& a : evolve_args(cfg, out, "mpi")) argv.push_back(a);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    setenv("OMP_WAIT_POLICY", "passive", 1);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  // Let the initial program and two children be committed, then kill evaluator rank 2 without warning.
  bool exited = false;
  const int64_t seen = wait_for_programs(out + "/evolve.db", 3, pid, 300, &exited);
  ASSERT_FALSE(exited) << "mpirun exited early";
  const std::vector<pid_t> victims = ranks_of(pid, 2);
  ASSERT_EQ(victims.size(), 1u) << "rank 2 of mpirun " << pid << " not found";
  ASSERT_GE(seen, 3);
  kill(victims[0], SIGKILL);
  int status = 0;
  const auto tk = std::chrono::steady_clock::now();
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() - tk < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ASSERT_NE(done, 0) << "the job went on after a rank died";
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "mpirun reported success after a rank died";

  std::vector<Program> before;
  int64_t completed = 0;
  {
    Database db(out + "/evolve.db");
    before = db.programs();
    completed = db.load_state().value()["completed"].get<int64_t>();
  }
  ASSERT_GE(before.size(), 3u);
  std::vector<std::string> resume = evolve_args(cfg, out, "mpi");
  resume.insert(resume.end(), {"--resume", "--iterations", std::to_string(completed + 3)});
  const gqa::ProcessResult r = run_mpi(3, resume);
  ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
  Database db(out + "/evolve.db");
  const auto after = db.programs();
  ASSERT_GE(after.size(), before.size() + 1);
  for (size_t i = 0; i < before.size(); ++i) {  // every committed program is still there, unchanged
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].code_hash, before[i].code_hash);
  }
  EXPECT_EQ(db.load_state().value()["completed"].get<int64_t>(), completed + 3) << r.out;
}
