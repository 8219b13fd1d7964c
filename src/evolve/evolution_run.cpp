// The run loop: propose children (offline mutator or LLM) on the controller thread, make and evaluate them
// on worker threads, commit each result with the state it leads to, then log, checkpoint and check whether
// to stop.
#include "evolve/evolution_run.h"

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "common/gpus.h"
#include "evolve/diff.h"
#include "evolve/program_text.h"
#include "evolve/prompt.h"
#include "evolve/report.h"

namespace fs = std::filesystem;

namespace gqa::evolve {

namespace {

thread_local int t_worker = -1;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The extension of the run's program files; the initial program must already have it.
std::string program_ext(Target target, const std::string& initial_program) {
  const std::string ext = target == Target::Cuda ? ".cu" : ".cpp";
  if (target_of_path(initial_program) != target)
    fail("evolve", "{}: a {} program must be a {} file", initial_program, target_name(target), ext);
  return ext;
}

int worker_count(const EvolveConfig& cfg, const RunOptions& opt, int gpus) {
  const int workers = opt.workers.value_or(cfg.workers);
  return workers > 0 ? workers : std::max(1, gpus);
}

fs::path make_run_dir(const std::string& dir) {
  fs::create_directories(fs::path(dir) / "work");
  fs::create_directories(fs::path(dir) / "best");
  return dir;
}

// What to check for an answer that retrying cannot fix.
std::string fix_hint(const LlmModel& m, int status) {
  if (status == 401 || status == 403)
    return m.api_key_env.empty() ? " (no key is sent: set api_key_env)"
                                 : fmt::format(" (check the key in ${} and its access to the model)", m.api_key_env);
  if (status == 404) return " (check the model name and api_base)";
  return " (check this model's request settings: docs/evolve.md, llm section)";
}

}  // namespace

int current_worker() { return t_worker; }

EvolutionRun::EvolutionRun(const EvolveConfig& config, const RunOptions& options, EvaluateFn evaluate)
    : cfg_(config),
      opt_(options),
      target_(options.target.value_or(config.target)),
      ext_(program_ext(target_, options.initial_program)),
      max_iterations_(options.iterations.value_or(config.max_iterations)),
      gpus_(target_ == Target::Cuda ? count_gpus() : 0),
      workers_(worker_count(config, options, gpus_)),
      use_llm_(config.llm.enabled()),
      dir_(make_run_dir(options.output_dir)),
      lock_(dir_.string()),
      db_existed_(fs::exists(dir_ / "evolve.db")),
      db_((dir_ / "evolve.db").string()),
      evaluate_(std::move(evaluate)),
      pop_(cfg_.database),
      rng_(cfg_.random_seed),
      ensemble_(cfg_.llm),
      offline_(cfg_.offline) {
  saved_ = db_.load_state();
  if (saved_ && !opt_.resume)
    fail("evolve", "{} already holds a run; pass --resume to continue it or choose another --output", dir_.string());
  if (!saved_ && opt_.resume && !db_existed_) fail("evolve", "{}: there is no run to resume (no evolve.db)", dir_.string());
  if (!evaluate_) evaluate_ = make_evaluator(cfg_, target_, (dir_ / "work").string(), workers_ > 1 ? gpus_ : 0);
  log_.open((dir_ / "evolve.log").string(), std::ios::app);
  for (const std::string& note : opt_.notes) say(note, true);
  // Killed before the initial program was committed: nothing of the run is in the database, so the resume
  // is the start it never finished (the initial program is read again).
  if (!saved_ && opt_.resume)
    say(fmt::format("{}: the run was stopped before its initial program was committed; starting it from {}",
                    dir_.string(), opt_.initial_program), true);
  if (!opt_.assets_dir.empty()) {
    try {
      assets_ = load_chart_assets(opt_.assets_dir);
    } catch (const Error& e) {
      say(fmt::format("report.html is not written: {}", e.what()), true);
    }
  }
  if (use_llm_) llm_.emplace(cfg_.llm);
  fatal_streak_.resize(cfg_.llm.models.size());
}

EvolutionRun::~EvolutionRun() { stop_workers(); }

RunSummary EvolutionRun::run() {
  if (saved_) resume(*saved_);
  else start_new();
  initial_score_ = db_.program(1) ? db_.program(1)->combined_score : 0.0;
  write_best();  // also repairs a kill between a commit and the best files' rewrite
  start_workers();
  if (st_.completed >= max_iterations_) stop_ = StopReason::MaxIterations;
  while (true) {
    hand_out_jobs();
    if (in_flight_ == 0) break;
    std::optional<Result> r = results_.pop();
    --in_flight_;
    commit(*r);
  }
  return finish();
}

// Programs come from the database, grids and counters from the saved state.
void EvolutionRun::resume(const nlohmann::json& s) {
  const Target saved_target = s.contains("target") ? parse_target(s["target"].get<std::string>()) : target_;
  if (saved_target != target_)
    fail("evolve", "the saved run targets {}, not {}", target_name(saved_target), target_name(target_));
  for (const Program& p : db_.programs()) {
    pop_.index(p);
    known_.insert(p.code_hash);
  }
  pop_.from_json(s.at("population"));
  rng_.set_state(s.at("rng").get<std::string>());
  if (s.contains("ensemble")) ensemble_.from_json(s["ensemble"]);
  st_.next_iteration = s.at("next_iteration");
  st_.completed = s.at("completed");
  st_.next_program_id = s.at("next_program_id");
  st_.last_migration = s.at("last_migration");
  st_.best_id = s.at("best_id");
  st_.last_improvement = s.at("last_improvement");
  st_.elapsed_before = s.at("elapsed_seconds");
  st_.failures = s.at("failures").get<std::map<std::string, int64_t>>();
  for (const Attempt& a : db_.attempts()) remember(a);
  say(fmt::format("resuming {}: {} iterations done, {} programs, best #{} ({:.4f})", dir_.string(), st_.completed,
                  db_.count_programs(), st_.best_id, pop_.score(st_.best_id)), true);
}

// The initial program is iteration 0 and seeds every island.
void EvolutionRun::start_new() {
  const std::string code = read_file(opt_.initial_program, "evolve");
  if (static_cast<int>(code.size()) > cfg_.max_code_length)
    fail("evolve", "{}: {} bytes, more than max_code_length {}", opt_.initial_program, code.size(),
         cfg_.max_code_length);
  find_evolve_block(code);  // a clear error now rather than failures on every iteration
  if (!use_llm_ && parse_knobs(code).empty())
    fail("evolve",
         "{}: without llm.api_base the offline mutator needs `// EVOLVE-KNOB values=...` lines in the EVOLVE-BLOCK",
         opt_.initial_program);
  say(fmt::format("evaluating the initial program {} ({} target, {} worker(s), {} mutator)", opt_.initial_program,
                  target_name(target_), workers_, use_llm_ ? "llm" : "offline"), true);
  const auto te = Clock::now();
  Program p;
  p.id = st_.next_program_id++;
  p.code = code;
  p.code_hash = code_hash(code);
  p.mutation = "initial";
  const nlohmann::json result = evaluate_(code, code, 0);
  p.metrics = result.value("metrics", nlohmann::json::object());
  p.artifacts = result.value("artifacts", nlohmann::json::object());
  p.combined_score = p.metrics.value("combined_score", 0.0);
  p.correct = p.metrics.value("correct", false);
  p.features = pop_.features_of(p);
  pop_.add(p, /*all_islands=*/true);
  st_.best_id = p.id;
  Attempt a{0, 0, 0, "initial", Outcome::Evaluated, "", "", 0, seconds_since(te), ""};
  if (!p.correct) {
    a.stage = p.metrics.value("failed_stage", std::string("unknown"));
    a.reason = p.metrics.value("failure", std::string());
  }
  note_attempt(a);
  db_.commit(&p, a, state_json());
  known_.insert(p.code_hash);
  say(fmt::format("initial program #{}: combined_score {:.4f}{}", p.id, p.combined_score,
                  p.correct ? "" : fmt::format(" (failed at {}: {})", a.stage, a.reason)), true);
  if (result.contains("worker")) say(fmt::format("    evaluated by {}", result["worker"].get<std::string>()), false);
}

void EvolutionRun::start_workers() {
  for (int w = 0; w < workers_; ++w) threads_.emplace_back(&EvolutionRun::work, this, w);
}

void EvolutionRun::stop_workers() {
  jobs_.close();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void EvolutionRun::work(int worker) {
  t_worker = worker;
  while (auto job = jobs_.pop()) results_.push(evaluate_job(*job));
}

// On a worker thread: the LLM call (when any), diff application, duplicate and length checks, evaluation.
EvolutionRun::Result EvolutionRun::evaluate_job(const Job& job) {
  Result r;
  r.job = job;
  const auto ts = Clock::now();
  try {
    r.outcome = make_child(r);
    if (r.outcome == Outcome::Evaluated) r.eval = evaluate_(r.code, job.parent_code, job.iteration);
  } catch (...) {
    r.error = std::current_exception();
  }
  r.seconds = seconds_since(ts);
  return r;
}

// Sets r.code (and an LLM child's description); Evaluated when the child is to be evaluated, else why not,
// with r.reason.
Outcome EvolutionRun::make_child(Result& r) {
  const Job& job = r.job;
  r.code = job.code;
  if (job.model >= 0) {
    r.reply = llm_->complete(static_cast<size_t>(job.model), job.system, job.user);
    const LlmReply& reply = r.reply;
    if (!reply.ok) {
      r.reason = reply.error;
      return Outcome::LlmError;
    }
    const ChildCode child = apply_response(job.parent_code, reply.content, cfg_.diff_based_evolution);
    r.code = child.code;
    r.whitespace_matched = child.whitespace_matched;
    r.job.description = child.full_rewrite ? "full rewrite"
                        : child.whitespace_matched
                            ? fmt::format("diff ({} blocks, {} matched with whitespace ignored)", child.blocks, child.whitespace_matched)
                            : fmt::format("diff ({} blocks)", child.blocks);
    if (!child.ok) {
      r.reason = child.error;
      return Outcome::DiffFailed;
    }
  }
  if (static_cast<int>(r.code.size()) > cfg_.max_code_length) {
    r.reason = fmt::format("{} bytes, more than max_code_length {}", r.code.size(), cfg_.max_code_length);
    return Outcome::TooLong;
  }
  // Offline proposals were claimed when proposed (the mutator checks against what is known).
  if (job.model >= 0 && !claim(code_hash(r.code))) {
    r.reason = "the change gives a program already in the database";
    return Outcome::Duplicate;
  }
  return Outcome::Evaluated;
}

bool EvolutionRun::claim(const std::string& hash) {
  std::lock_guard<std::mutex> l(known_mutex_);
  return known_.insert(hash).second;
}

// Bounded by iterations completed, not by numbers handed out: jobs in flight when a run was killed are
// lost, and their numbers are not reused, so a resumed run must not stop short by their count.
void EvolutionRun::hand_out_jobs() {
  while (in_flight_ < workers_ && !stop_ && st_.completed + in_flight_ < max_iterations_) {
    if (auto job = propose()) {
      jobs_.push(std::move(*job));
      ++in_flight_;
    }
  }
}

// The next iteration's job; nullopt when the offline mutator found nothing new (committed as such).
std::optional<EvolutionRun::Job> EvolutionRun::propose() {
  Job job;
  job.iteration = st_.next_iteration++;
  job.island = static_cast<int>((job.iteration - 1) % cfg_.database.num_islands);
  job.parent_id = pop_.select_parent(job.island, rng_);
  if (job.parent_id == 0) job.parent_id = 1;  // nothing correct yet: keep working from the initial program
  const Program parent = program_of(job.parent_id);
  job.parent_code = parent.code;
  job.parent_generation = parent.generation;
  job.parent_score = parent.combined_score;
  const auto ids = pop_.inspirations(job.island, job.parent_id, cfg_.prompt.num_top_programs,
                                     cfg_.prompt.num_diverse_programs, rng_);
  if (use_llm_) {
    propose_llm(job, parent, ids);
    return job;
  }
  if (propose_offline(job, parent, ids)) return job;
  Result r;
  r.job = job;
  r.outcome = Outcome::Exhausted;
  r.reason = fmt::format("every knob change of #{} tried so far is already in the database", job.parent_id);
  commit(r);
  return std::nullopt;
}

// Draws the model and writes its prompt; the worker makes the call.
void EvolutionRun::propose_llm(Job& job, const Program& parent, const std::vector<int64_t>& ids) {
  job.model = static_cast<int>(ensemble_.choose(rng_));
  job.mutator = ensemble_.name(static_cast<size_t>(job.model));
  std::vector<Program> insp;
  for (int64_t id : ids) insp.push_back(program_of(id));
  PromptInputs in;
  in.parent = &parent;
  in.target = target_;
  const size_t ntop = std::min<size_t>(insp.size(), static_cast<size_t>(cfg_.prompt.num_top_programs));
  for (size_t i = 0; i < insp.size(); ++i) (i < ntop ? in.top : in.diverse).push_back(&insp[i]);
  const size_t keep = static_cast<size_t>(cfg_.prompt.history);
  const size_t skip = history_.size() > keep ? history_.size() - keep : 0;
  in.history.assign(history_.begin() + static_cast<std::ptrdiff_t>(skip), history_.end());
  job.system = system_message(cfg_, in);
  job.user = user_prompt(cfg_, in);
}

// The child is made here, not on a worker: it draws from the run's RNG, which only this thread may touch
// for a fixed seed to give the same run. False when every draw gave a known program.
bool EvolutionRun::propose_offline(Job& job, const Program& parent, const std::vector<int64_t>& ids) {
  job.mutator = "offline";
  std::vector<Mate> mates;
  for (int64_t id : ids) mates.push_back({id, program_of(id).code});
  std::optional<Proposal> prop;
  {
    std::lock_guard<std::mutex> l(known_mutex_);
    prop = offline_.propose(parent.code, mates, rng_, [this](const std::string& h) { return known_.count(h) > 0; });
    if (prop) known_.insert(code_hash(prop->code));
  }
  if (!prop) return false;
  job.code = std::move(prop->code);
  job.description = std::move(prop->description);
  return true;
}

// Commits one iteration's outcome with the state it leads to; then what a resume can rebuild: best files,
// log lines, checkpoints.
void EvolutionRun::commit(const Result& r) {
  if (r.error) std::rethrow_exception(r.error);
  const Job& job = r.job;
  Attempt a{job.iteration, job.island, job.parent_id, job.mutator, r.outcome, "", r.reason, 0, r.seconds, ""};
  std::optional<Program> p;
  const int64_t best_before = st_.best_id;
  if (r.outcome == Outcome::Evaluated) p = new_program(r, a);
  const bool improved = p && p->correct && p->combined_score > job.parent_score;
  std::optional<LlmCall> call;
  if (job.model >= 0) {
    ensemble_.record(static_cast<size_t>(job.model), improved);
    ensemble_.add_usage(static_cast<size_t>(job.model), r.reply);
    call = llm_call(r, improved);
  }
  note_attempt(a);
  ++st_.completed;
  const bool migrated = migrate_if_due();
  db_.commit(p ? &*p : nullptr, a, state_json(), call ? &*call : nullptr);

  if (st_.best_id != best_before) write_best();
  log_progress(r, p, a, migrated);
  if (job.model >= 0) note_reply(r);
  checkpoint_if_due();
  check_stop(job.iteration);
  write_reports_if_due(st_.best_id != best_before, "running");
}

// The record of the exchange: the prompt as sent, the answer as received, usage, latency, retries, cost.
LlmCall EvolutionRun::llm_call(const Result& r, bool improved) const {
  const LlmReply& reply = r.reply;
  const LlmModel& m = cfg_.llm.models.at(static_cast<size_t>(r.job.model));
  LlmCall c;
  c.iteration = r.job.iteration;
  c.model = m.name;
  c.url = llm_->url(static_cast<size_t>(r.job.model));
  c.system = r.job.system;
  c.user = r.job.user;
  c.answer = reply.raw_content;
  c.reasoning = reply.reasoning;
  c.status = reply.status;
  c.error = reply.ok ? "" : reply.error;
  c.prompt_tokens = reply.prompt_tokens;
  c.completion_tokens = reply.completion_tokens;
  c.reasoning_tokens = reply.reasoning_tokens;
  c.latency_seconds = reply.seconds;
  c.retries = std::max(0, reply.requests - 1);
  c.cost = m.cost(reply.prompt_tokens, reply.completion_tokens);
  c.whitespace_matched = r.whitespace_matched;
  c.improved = improved;
  return c;
}

// Reports from the database as committed: on an improvement, else at most once a minute (they read every
// program and exchange, which a long run should not do per iteration).
void EvolutionRun::write_reports_if_due(bool now, const std::string& status) {
  if (!now && Clock::now() - last_report_ < std::chrono::seconds(60)) return;
  write_reports(load_run_record(db_, dir_.string()), status, assets_);
  last_report_ = Clock::now();
}

// After an LLM iteration is committed: its token counts, the request changes the server asked for, and
// the fail-fast rule: a model whose last max_fatal_errors answers were 400/401/403/404 is dropped while
// others remain, else the run stops with that answer (what is committed so far stays resumable).
void EvolutionRun::note_reply(const Result& r) {
  const LlmReply& reply = r.reply;
  const auto m = static_cast<size_t>(r.job.model);
  for (const std::string& note : reply.notes) say("    " + note, true);
  if (reply.prompt_tokens || reply.completion_tokens)
    say(fmt::format("    tokens: {} prompt, {} completion ({} reasoning)", reply.prompt_tokens, reply.completion_tokens,
                    reply.reasoning_tokens), false);
  fatal_streak_.at(m) = reply.fatal ? fatal_streak_.at(m) + 1 : 0;
  // Answers of a dropped model still in flight on other workers were already judged.
  if (fatal_streak_[m] < cfg_.llm.max_fatal_errors || ensemble_.dropped(m)) return;
  const std::string why = fmt::format("model '{}' at {}: HTTP {} {} times in a row ({}); retrying cannot fix this{}",
                                      ensemble_.name(m), llm_->url(m), reply.status, fatal_streak_[m],
                                      reply.server_message, fix_hint(cfg_.llm.models.at(m), reply.status));
  ensemble_.drop(m);
  if (ensemble_.available() > 0) {
    say(fmt::format("dropping {} for the rest of this run", why), true);
    return;
  }
  fail("llm", "{}; no model is left to ask", why);
}

// The evaluated child as a program, placed in the population; a failed stage goes into the attempt.
Program EvolutionRun::new_program(const Result& r, Attempt& a) {
  const Job& job = r.job;
  Program p;
  p.id = st_.next_program_id++;
  p.parent_id = job.parent_id;
  p.island = job.island;
  p.generation = job.parent_generation + 1;
  p.iteration = job.iteration;
  p.code = r.code;
  p.code_hash = code_hash(r.code);
  p.metrics = r.eval.value("metrics", nlohmann::json::object());
  p.artifacts = r.eval.value("artifacts", nlohmann::json::object());
  p.combined_score = p.metrics.value("combined_score", 0.0);
  p.correct = p.metrics.value("correct", false);
  p.mutation = job.mutator + ": " + job.description;
  if (!p.correct) {
    a.stage = p.metrics.value("failed_stage", std::string("unknown"));
    a.reason = p.metrics.value("failure", std::string());
  }
  p.features = pop_.features_of(p);
  pop_.add(p);
  ++evaluated_now_;
  if (p.correct && p.combined_score > pop_.score(st_.best_id)) st_.best_id = p.id, st_.last_improvement = job.iteration;
  return p;
}

// Before the commit, so that the migrated grids are what the commit saves.
bool EvolutionRun::migrate_if_due() {
  if (st_.completed - st_.last_migration < cfg_.database.migration_interval) return false;
  pop_.migrate();
  st_.last_migration = st_.completed;
  return true;
}

void EvolutionRun::checkpoint_if_due() {
  if (cfg_.checkpoint_interval <= 0 || st_.completed % cfg_.checkpoint_interval != 0) return;
  db_.checkpoint();
  write_checkpoint(dir_.string(), ext_, st_.completed, program_of(st_.best_id));
}

// Later checks win: a run that reaches the target score on its last iteration stopped for the score.
void EvolutionRun::check_stop(int64_t iteration) {
  if (st_.completed >= max_iterations_) stop_ = StopReason::MaxIterations;
  if (cfg_.target_score > 0 && pop_.score(st_.best_id) >= cfg_.target_score) stop_ = StopReason::TargetScore;
  if (cfg_.early_stopping_patience > 0 && iteration - st_.last_improvement >= cfg_.early_stopping_patience)
    stop_ = StopReason::EarlyStoppingPatience;
}

RunSummary EvolutionRun::finish() {
  const StopReason stop = stop_.value_or(StopReason::MaxIterations);
  db_.checkpoint();
  RunSummary sum;
  sum.iterations = st_.completed;
  sum.programs = db_.count_programs();
  sum.best_id = st_.best_id;
  sum.best_score = pop_.score(st_.best_id);
  sum.initial_score = initial_score_;
  sum.seconds = seconds_since(t0_);
  sum.stop_reason = stop;
  sum.best_program_path = (dir_ / "best" / ("best_program" + ext_)).string();
  sum.report_path = (dir_ / "report.md").string();
  const RunRecord record = load_run_record(db_, dir_.string());
  write_reports(record, fmt::format("stopped: {}", to_string(stop)), assets_);
  for (const ModelTotals& t : model_totals(record.llm_calls)) say("    " + totals_line(t), true);
  if (use_llm_)
    for (size_t m = 0; m < ensemble_.size(); ++m)
      if (ensemble_.dropped(m)) say(fmt::format("    {}: dropped", ensemble_.name(m)), true);
  say(fmt::format("stopped ({}) after {} iterations: best #{} combined_score {:.4f} (initial {:.4f})", to_string(stop),
                  sum.iterations, sum.best_id, sum.best_score, sum.initial_score), true);
  return sum;
}

nlohmann::json EvolutionRun::state_json() const {
  return nlohmann::json{{"version", 1},
                        {"target", std::string(target_name(target_))},
                        {"next_iteration", st_.next_iteration},
                        {"completed", st_.completed},
                        {"next_program_id", st_.next_program_id},
                        {"last_migration", st_.last_migration},
                        {"best_id", st_.best_id},
                        {"last_improvement", st_.last_improvement},
                        {"elapsed_seconds", st_.elapsed_before + seconds_since(t0_)},
                        {"failures", st_.failures},
                        {"rng", rng_.state()},
                        {"population", pop_.to_json()},
                        {"ensemble", ensemble_.to_json()},
                        // for the reports (not read back): how the grids' cells are cut, the iteration budget
                        {"database", {{"feature_dimensions", cfg_.database.feature_dimensions},
                                      {"feature_bins", cfg_.database.feature_bins}}},
                        {"max_iterations", max_iterations_}};
}

void EvolutionRun::note_attempt(const Attempt& a) {
  const std::string key = a.outcome == Outcome::Evaluated ? a.stage : std::string(to_string(a.outcome));
  if (!key.empty()) ++st_.failures[key];
  remember(a);
}

void EvolutionRun::remember(const Attempt& a) {
  history_.push_back(a);
  while (history_.size() > static_cast<size_t>(std::max(cfg_.prompt.history, 1))) history_.pop_front();
}

Program EvolutionRun::program_of(int64_t id) const {
  auto p = db_.program(id);
  if (!p) fail("evolve", "program #{} is in the run state but not in the database", id);
  return *p;
}

void EvolutionRun::write_best() const {
  if (st_.best_id == 0) return;
  auto best = db_.program(st_.best_id);
  if (best) write_best_files(dir_.string(), ext_, *best);
}

void EvolutionRun::log_progress(const Result& r, const std::optional<Program>& p, const Attempt& a, bool migrated) {
  const Job& job = r.job;
  const double minutes = seconds_since(t0_) / 60;
  std::string fails;
  for (auto& [k, n] : st_.failures) fails += fmt::format("{}{} {}", fails.empty() ? "" : ", ", k, n);
  const std::string what =
      p ? fmt::format("#{} score {:.4f}{}", p->id, p->combined_score, p->correct ? "" : " (" + a.stage + ")")
        : fmt::format("no program ({})", to_string(r.outcome));
  say(fmt::format("[{}/{}] island {} parent #{} -> {} | best #{} {:.4f} | {:.1f} eval/min | failures: {}",
                  job.iteration, max_iterations_, job.island, job.parent_id, what, st_.best_id, pop_.score(st_.best_id),
                  minutes > 0 ? evaluated_now_ / minutes : 0.0, fails.empty() ? "none" : fails),
      true);
  if (p) say(fmt::format("    {} {}", p->mutation, a.reason.empty() ? "" : "| " + a.reason), false);
  else say(fmt::format("    {} {}", job.mutator, a.reason), false);
  if (r.eval.contains("worker")) say(fmt::format("    evaluated by {}", r.eval["worker"].get<std::string>()), false);
  if (migrated) say(fmt::format("    migration after {} iterations", st_.completed), false);
}

void EvolutionRun::say(const std::string& line, bool console) {
  log_ << line << "\n";
  log_.flush();
  if (console && opt_.print_progress) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

}  // namespace gqa::evolve
