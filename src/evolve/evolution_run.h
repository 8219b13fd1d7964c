// One evolution run (new or resumed) in its output folder: the state run_evolution (controller.h) drives.
// Internal to src/evolve; everything else goes through run_evolution.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/rng.h"
#include "evolve/config.h"
#include "evolve/controller.h"
#include "evolve/database.h"
#include "evolve/llm_client.h"
#include "evolve/mutator_offline.h"
#include "evolve/outcome.h"
#include "evolve/population.h"
#include "evolve/report_html.h"
#include "evolve/run_lock.h"
#include "evolve/work_queue.h"

namespace gqa::evolve {

// All state (population, RNG, counters) belongs to the thread that calls run(); worker threads only call
// the LLM and the evaluator and hand results back through a queue. Each result is committed with the state
// it produces in one transaction: what is in the database is exactly what a resume continues from.
class EvolutionRun {
 public:
  // Checks the options, opens (or creates) the output folder, takes its lock (one writer per folder), opens
  // its database and log; refuses a folder that holds a run unless resuming, and a resume without a run (a
  // run killed before its initial program was committed starts again from INITIAL_PROGRAM). Evaluates
  // nothing yet.
  EvolutionRun(const EvolveConfig& config, const RunOptions& options, EvaluateFn evaluate);
  ~EvolutionRun();  // stops and joins the workers, also when run() threw
  EvolutionRun(const EvolutionRun&) = delete;
  EvolutionRun& operator=(const EvolutionRun&) = delete;

  RunSummary run();

 private:
  using Clock = std::chrono::steady_clock;

  // One iteration handed to a worker.
  struct Job {
    int64_t iteration = 0;
    int island = 0;
    int64_t parent_id = 0;
    int parent_generation = 0;
    double parent_score = 0;
    std::string parent_code;
    int model = -1;            // LLM model index; -1: offline
    std::string mutator;       // "offline" or the model's name
    std::string code;          // offline: the proposal (LLM: made by the worker)
    std::string description;
    std::string system, user;  // LLM prompt
  };

  // What a worker hands back; `error` (the evaluator could not work) ends the run when committed.
  struct Result {
    Job job;
    Outcome outcome = Outcome::Evaluated;
    std::string reason;
    std::string code;
    nlohmann::json eval;
    double seconds = 0;
    std::exception_ptr error;
    LlmReply reply;  // of an LLM job
    int whitespace_matched = 0;  // SEARCH parts applied with whitespace ignored
  };

  // Everything the loop carries between iterations (saved as JSON with every commit).
  struct State {
    int64_t next_iteration = 1, completed = 0, next_program_id = 1, last_migration = 0;
    int64_t best_id = 0, last_improvement = 0;
    double elapsed_before = 0;
    std::map<std::string, int64_t> failures;  // by failed stage, or by outcome when there was no program
  };

  // Starting: continue a saved run, or evaluate the initial program as iteration 0.
  void resume(const nlohmann::json& saved);
  void start_new();

  // On worker threads, which touch nothing but the LLM client, the evaluator and (locked) known_.
  void work(int worker);
  Result evaluate_job(const Job& job);
  Outcome make_child(Result& r);
  bool claim(const std::string& hash);  // false when the code is already known

  // On the thread that called run(): all other state lives there, so a seed fixes the search.
  void start_workers();
  void stop_workers();
  void hand_out_jobs();
  std::optional<Job> propose();
  void propose_llm(Job& job, const Program& parent, const std::vector<int64_t>& inspirations);
  bool propose_offline(Job& job, const Program& parent, const std::vector<int64_t>& inspirations);
  void commit(const Result& r);
  LlmCall llm_call(const Result& r, bool improved) const;
  void note_reply(const Result& r);
  void write_reports_if_due(bool now, const std::string& status);
  Program new_program(const Result& r, Attempt& attempt);
  bool migrate_if_due();
  void checkpoint_if_due();
  void check_stop(int64_t iteration);
  RunSummary finish();

  nlohmann::json state_json() const;
  void note_attempt(const Attempt& a);
  void remember(const Attempt& a);
  Program program_of(int64_t id) const;
  void write_best() const;
  void log_progress(const Result& r, const std::optional<Program>& p, const Attempt& a, bool migrated);
  void say(const std::string& line, bool console);

  const Clock::time_point t0_ = Clock::now();
  const EvolveConfig cfg_;
  const RunOptions opt_;
  const Target target_;
  const std::string ext_;  // of program files: .cpp or .cu
  const int64_t max_iterations_;
  const int gpus_;
  const int workers_;
  const bool use_llm_;
  const std::filesystem::path dir_;
  RunLock lock_;  // before the database is opened: a second writer stops here
  const bool db_existed_;
  Database db_;
  std::optional<nlohmann::json> saved_;  // the state of the run to resume
  EvaluateFn evaluate_;
  std::ofstream log_;

  Population pop_;
  Rng rng_;
  ModelEnsemble ensemble_;
  std::optional<LlmClient> llm_;
  std::vector<int> fatal_streak_;  // per model: consecutive answers that retrying cannot fix
  const OfflineMutator offline_;
  State st_;
  std::set<std::string> known_;  // code hashes committed or in flight
  std::mutex known_mutex_;
  std::deque<Attempt> history_;  // the recent attempts prompts show
  double initial_score_ = 0;

  WorkQueue<Job> jobs_;
  WorkQueue<Result> results_;
  std::vector<std::thread> threads_;
  int in_flight_ = 0;
  int64_t evaluated_now_ = 0;  // this session, for the eval/min rate
  std::optional<StopReason> stop_;
  std::optional<ChartAssets> assets_;  // none: report.md only
  Clock::time_point last_report_ = Clock::now();
};

}  // namespace gqa::evolve
