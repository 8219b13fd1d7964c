// The run loop. All state (population, RNG, counters) is owned by the calling thread; worker threads only
// call the LLM and the evaluator and hand results back through a queue. Each result is committed with the
// state it produces in one transaction: what is in the database is exactly what a resume continues from.
#include "evolve/controller.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/process.h"
#include "evaluate/evaluator.h"
#include "evolve/database.h"
#include "evolve/diff.h"
#include "evolve/llm_client.h"
#include "evolve/mutator_offline.h"
#include "evolve/population.h"
#include "evolve/program_text.h"
#include "evolve/prompt.h"
#include "evolve/report.h"

namespace fs = std::filesystem;

namespace gqa::evolve {

namespace {

using Clock = std::chrono::steady_clock;

struct Job {
  int64_t iteration = 0;
  int island = 0;
  int64_t parent_id = 0;
  int parent_generation = 0;
  double parent_score = 0;
  std::string parent_code;
  int model = -1;            // LLM model index; -1: offline
  std::string mutator;       // "offline" or the model's name
  std::string code;          // offline: the proposal
  std::string description;
  std::string system, user;  // LLM prompt
};

struct Result {
  Job job;
  std::string outcome;  // evaluated | llm_error | diff_failed | duplicate | too_long | exhausted
  std::string reason;
  std::string code;
  nlohmann::json eval;
  double seconds = 0;
  std::exception_ptr error;
};

// A tiny blocking queue between the controller and the workers.
template <class T>
class Queue {
 public:
  void push(T v) {
    {
      std::lock_guard<std::mutex> l(m_);
      q_.push_back(std::move(v));
    }
    cv_.notify_one();
  }
  std::optional<T> pop() {  // nullopt once closed and empty
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    return v;
  }
  void close() {
    {
      std::lock_guard<std::mutex> l(m_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<T> q_;
  bool closed_ = false;
};

// Everything the loop carries between iterations, and its JSON form stored with every commit.
struct RunState {
  int64_t next_iteration = 1, completed = 0, next_program_id = 1, last_migration = 0;
  int64_t best_id = 0, last_improvement = 0;
  double elapsed_before = 0;
  std::map<std::string, int64_t> failures;  // by stage or outcome
};

thread_local int t_worker = -1;

}  // namespace

int current_worker() { return t_worker; }

int count_gpus() {
  try {
    ProcessOptions po;
    po.argv = {"nvidia-smi", "-L"};
    po.timeout_seconds = 30;
    ProcessResult r = run_process(po);
    if (!r.ok()) return 0;
    int n = 0;
    for (size_t p = 0; (p = r.out.find("GPU ", p)) != std::string::npos; ++p) ++n;
    return n;
  } catch (const Error&) {
    return 0;
  }
}

EvaluateFn make_evaluator(const EvolveConfig& config, const std::string& target, const std::string& work_dir, int gpus,
                          const std::string& device) {
  const EvaluatorConfig ec = config.evaluator;
  const std::string ext = target == "cuda" ? ".cu" : ".cpp";
  return [ec, target, ext, work_dir, gpus, device](const std::string& code, const std::string& parent, int64_t iteration) {
    const std::string base = fmt::format("{}/candidate_{}", work_dir, iteration);
    write_file_atomic(base + ext, code, "evolve");
    write_file_atomic(base + "_parent" + ext, parent, "evolve");
    eval::EvaluateOptions o;
    o.program_path = base + ext;
    o.parent_path = base + "_parent" + ext;
    o.target = parse_target(target);
    o.cache_dir = ec.cache_dir;
    o.cuda_arch = ec.cuda_arch;
    o.timeout_seconds = ec.timeout_seconds;
    o.memory_limit_bytes = static_cast<size_t>(ec.memory_limit_gb * (1ull << 30));
    o.threads = ec.threads;
    o.seed = ec.seed;
    o.bench = ec.bench;
    o.end_to_end = ec.end_to_end;
    o.min_reps = ec.min_reps;
    o.bench_seconds = ec.bench_seconds;
    if (target == "cuda" && !device.empty()) o.visible_devices = device;
    else if (gpus > 0 && target == "cuda" && current_worker() >= 0) o.visible_devices = std::to_string(current_worker() % gpus);
    nlohmann::json r = eval::evaluate(o);
    std::error_code err;
    fs::remove(base + ext, err);
    fs::remove(base + "_parent" + ext, err);
    return r;
  };
}

RunSummary run_evolution(const EvolveConfig& cfg, const RunOptions& opt, EvaluateFn evaluate) {
  const auto t0 = Clock::now();
  const std::string target = opt.target.value_or(cfg.target);
  if (target != "cpu" && target != "cuda") fail("evolve", "unknown target '{}' (expected cpu or cuda)", target);
  const std::string ext = target == "cuda" ? ".cu" : ".cpp";
  if ((target == "cuda") != (fs::path(opt.initial_program).extension() == ".cu"))
    fail("evolve", "{}: a {} program must be a {} file", opt.initial_program, target, ext);
  const int64_t max_iterations = opt.iterations.value_or(cfg.max_iterations);
  const int gpus = target == "cuda" ? count_gpus() : 0;
  int workers = opt.workers.value_or(cfg.workers);
  if (workers <= 0) workers = std::max(1, gpus);
  const bool use_llm = !cfg.llm.api_base.empty();

  const fs::path dir = opt.output_dir;
  fs::create_directories(dir / "work");
  fs::create_directories(dir / "best");
  const std::string db_path = (dir / "evolve.db").string();
  const bool existed = fs::exists(db_path);
  Database db(db_path);
  std::optional<nlohmann::json> saved = db.load_state();
  if (saved && !opt.resume)
    fail("evolve", "{} already holds a run; pass --resume to continue it or choose another --output", dir.string());
  if (!saved && opt.resume && existed) fail("evolve", "{}: the run never committed its initial program; start it again without --resume", dir.string());
  if (!saved && opt.resume) fail("evolve", "{}: there is no run to resume (no evolve.db)", dir.string());
  if (!evaluate) evaluate = make_evaluator(cfg, target, (dir / "work").string(), workers > 1 ? gpus : 0);

  std::ofstream log((dir / "evolve.log").string(), std::ios::app);
  auto say = [&](const std::string& line, bool console) {
    log << line << "\n";
    log.flush();
    if (console && opt.print_progress) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  };

  for (const std::string& note : opt.notes) say(note, true);

  Population pop(cfg.database);
  Rng rng(cfg.random_seed);
  ModelEnsemble ensemble(cfg.llm);
  std::optional<LlmClient> llm;
  if (use_llm) llm.emplace(cfg.llm);
  const OfflineMutator offline(cfg.offline);
  RunState st;
  std::set<std::string> known;  // code hashes committed or in flight
  std::mutex known_mutex;
  std::deque<Attempt> history;

  auto state_json = [&] {
    return nlohmann::json{{"version", 1},
                          {"target", target},
                          {"next_iteration", st.next_iteration},
                          {"completed", st.completed},
                          {"next_program_id", st.next_program_id},
                          {"last_migration", st.last_migration},
                          {"best_id", st.best_id},
                          {"last_improvement", st.last_improvement},
                          {"elapsed_seconds", st.elapsed_before + std::chrono::duration<double>(Clock::now() - t0).count()},
                          {"failures", st.failures},
                          {"rng", rng.state()},
                          {"population", pop.to_json()},
                          {"ensemble", ensemble.to_json()}};
  };
  auto note_attempt = [&](const Attempt& a) {
    const std::string key = a.outcome == "evaluated" ? a.stage : a.outcome;
    if (!key.empty()) ++st.failures[key];
    history.push_back(a);
    while (history.size() > static_cast<size_t>(std::max(cfg.prompt.history, 1))) history.pop_front();
  };

  if (saved) {  // resume: programs from the database, grids and counters from the state
    const nlohmann::json& s = *saved;
    if (s.value("target", target) != target) fail("evolve", "the saved run targets {}, not {}", s.value("target", ""), target);
    for (const Program& p : db.programs()) {
      pop.index(p);
      known.insert(p.code_hash);
    }
    pop.from_json(s.at("population"));
    rng.set_state(s.at("rng").get<std::string>());
    if (s.contains("ensemble")) ensemble.from_json(s["ensemble"]);
    st.next_iteration = s.at("next_iteration");
    st.completed = s.at("completed");
    st.next_program_id = s.at("next_program_id");
    st.last_migration = s.at("last_migration");
    st.best_id = s.at("best_id");
    st.last_improvement = s.at("last_improvement");
    st.elapsed_before = s.at("elapsed_seconds");
    st.failures = s.at("failures").get<std::map<std::string, int64_t>>();
    for (const Attempt& a : db.attempts()) {
      history.push_back(a);
      while (history.size() > static_cast<size_t>(std::max(cfg.prompt.history, 1))) history.pop_front();
    }
    say(fmt::format("resuming {}: {} iterations done, {} programs, best #{} ({:.4f})", dir.string(), st.completed,
                    db.count_programs(), st.best_id, pop.score(st.best_id)), true);
  } else {  // a new run: the initial program is iteration 0 and seeds every island
    const std::string code = read_file(opt.initial_program, "evolve");
    if (static_cast<int>(code.size()) > cfg.max_code_length)
      fail("evolve", "{}: {} bytes, more than max_code_length {}", opt.initial_program, code.size(), cfg.max_code_length);
    find_evolve_block(code);  // a clear error now rather than failures on every iteration
    if (!use_llm && parse_knobs(code).empty())
      fail("evolve", "{}: without llm.api_base the offline mutator needs `// EVOLVE-KNOB values=...` lines in the EVOLVE-BLOCK",
           opt.initial_program);
    say(fmt::format("evaluating the initial program {} ({} target, {} worker(s), {} mutator)", opt.initial_program, target,
                    workers, use_llm ? "llm" : "offline"), true);
    const auto te = Clock::now();
    Program p;
    p.id = st.next_program_id++;
    p.code = code;
    p.code_hash = code_hash(code);
    p.mutation = "initial";
    const nlohmann::json result = evaluate(code, code, 0);
    p.metrics = result.value("metrics", nlohmann::json::object());
    p.artifacts = result.value("artifacts", nlohmann::json::object());
    p.combined_score = p.metrics.value("combined_score", 0.0);
    p.correct = p.metrics.value("correct", false);
    p.features = pop.features_of(p);
    pop.add(p, /*all_islands=*/true);
    st.best_id = p.id;
    Attempt a{0, 0, 0, "initial", "evaluated", "", "", 0, std::chrono::duration<double>(Clock::now() - te).count(), ""};
    if (!p.correct) {
      a.stage = p.metrics.value("failed_stage", std::string("unknown"));
      a.reason = p.metrics.value("failure", std::string());
    }
    note_attempt(a);
    db.commit(&p, a, state_json());
    known.insert(p.code_hash);
    say(fmt::format("initial program #{}: combined_score {:.4f}{}", p.id, p.combined_score,
                    p.correct ? "" : fmt::format(" (failed at {}: {})", a.stage, a.reason)), true);
    if (result.contains("worker")) say(fmt::format("    evaluated by {}", result["worker"].get<std::string>()), false);
  }
  const double initial_score = db.program(1) ? db.program(1)->combined_score : 0.0;
  auto write_best = [&] {
    if (st.best_id == 0) return;
    auto best = db.program(st.best_id);
    if (best) write_best_files(dir.string(), ext, *best);
  };
  write_best();  // also repairs a kill between a commit and the best files' rewrite

  // Workers: LLM call (when any), diff application, duplicate and length checks, evaluation.
  Queue<Job> jobs;
  Queue<Result> results;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      t_worker = w;
      while (auto job = jobs.pop()) {
        Result r;
        r.job = *job;
        const auto ts = Clock::now();
        try {
          r.code = job->code;
          if (job->model >= 0) {
            LlmReply reply = llm->complete(job->mutator, job->system, job->user);
            if (!reply.ok) {
              r.outcome = "llm_error", r.reason = reply.error;
            } else {
              ChildCode child = apply_response(job->parent_code, reply.content, cfg.diff_based_evolution);
              if (!child.ok) r.outcome = "diff_failed", r.reason = child.error;
              r.code = child.code;
              r.job.description = child.full_rewrite ? "full rewrite" : fmt::format("diff ({} blocks)", child.blocks);
            }
          }
          if (r.outcome.empty() && static_cast<int>(r.code.size()) > cfg.max_code_length)
            r.outcome = "too_long", r.reason = fmt::format("{} bytes, more than max_code_length {}", r.code.size(), cfg.max_code_length);
          if (r.outcome.empty() && job->model >= 0) {
            std::lock_guard<std::mutex> l(known_mutex);
            if (!known.insert(code_hash(r.code)).second)
              r.outcome = "duplicate", r.reason = "the change gives a program already in the database";
          }
          if (r.outcome.empty()) {
            r.eval = evaluate(r.code, job->parent_code, job->iteration);
            r.outcome = "evaluated";
          }
        } catch (...) {
          r.error = std::current_exception();
        }
        r.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
        results.push(std::move(r));
      }
    });
  struct Joiner {  // close and join on every exit path, errors included
    Queue<Job>& jobs;
    std::vector<std::thread>& threads;
    ~Joiner() {
      jobs.close();
      for (auto& t : threads) t.join();
    }
  } joiner{jobs, threads};

  int in_flight = 0;
  int64_t evaluated_now = 0;
  std::string stop_reason = st.completed >= max_iterations ? "max_iterations" : "";
  auto program_of = [&](int64_t id) {
    auto p = db.program(id);
    if (!p) fail("evolve", "program #{} is in the run state but not in the database", id);
    return *p;
  };

  // Commits one iteration's outcome with the state it leads to.
  auto commit = [&](Result& r) {
    if (r.error) std::rethrow_exception(r.error);
    const Job& job = r.job;
    Attempt a{job.iteration, job.island, job.parent_id, job.mutator, r.outcome, "", r.reason, 0, r.seconds, ""};
    std::optional<Program> p;
    const int64_t best_before = st.best_id;
    if (r.outcome == "evaluated") {
      p.emplace();
      p->id = st.next_program_id++;
      p->parent_id = job.parent_id;
      p->island = job.island;
      p->generation = job.parent_generation + 1;
      p->iteration = job.iteration;
      p->code = r.code;
      p->code_hash = code_hash(r.code);
      p->metrics = r.eval.value("metrics", nlohmann::json::object());
      p->artifacts = r.eval.value("artifacts", nlohmann::json::object());
      p->combined_score = p->metrics.value("combined_score", 0.0);
      p->correct = p->metrics.value("correct", false);
      p->mutation = job.mutator == "offline" ? "offline: " + job.description : job.mutator + ": " + job.description;
      if (!p->correct) {
        a.stage = p->metrics.value("failed_stage", std::string("unknown"));
        a.reason = p->metrics.value("failure", std::string());
      }
      p->features = pop.features_of(*p);
      pop.add(*p);
      ++evaluated_now;
      if (p->correct && p->combined_score > pop.score(st.best_id)) st.best_id = p->id, st.last_improvement = job.iteration;
    }
    if (job.model >= 0)
      ensemble.record(static_cast<size_t>(job.model), p && p->correct && p->combined_score > job.parent_score);
    note_attempt(a);
    ++st.completed;
    const bool migrating = st.completed - st.last_migration >= cfg.database.migration_interval;
    if (migrating) pop.migrate(), st.last_migration = st.completed;
    db.commit(p ? &*p : nullptr, a, state_json());

    // After the commit: files and progress, which a resume can rebuild.
    if (st.best_id != best_before) write_best();
    const double minutes = std::chrono::duration<double>(Clock::now() - t0).count() / 60;
    std::string fails;
    for (auto& [k, n] : st.failures) fails += fmt::format("{}{} {}", fails.empty() ? "" : ", ", k, n);
    std::string what = p ? fmt::format("#{} score {:.4f}{}", p->id, p->combined_score, p->correct ? "" : " (" + a.stage + ")")
                         : fmt::format("no program ({})", r.outcome);
    say(fmt::format("[{}/{}] island {} parent #{} -> {} | best #{} {:.4f} | {:.1f} eval/min | failures: {}", job.iteration,
                    max_iterations, job.island, job.parent_id, what, st.best_id, pop.score(st.best_id),
                    minutes > 0 ? evaluated_now / minutes : 0.0, fails.empty() ? "none" : fails), true);
    if (p) say(fmt::format("    {} {}", p->mutation, a.reason.empty() ? "" : "| " + a.reason), false);
    else say(fmt::format("    {} {}", job.mutator, a.reason), false);
    if (r.eval.contains("worker")) say(fmt::format("    evaluated by {}", r.eval["worker"].get<std::string>()), false);
    if (migrating) say(fmt::format("    migration after {} iterations", st.completed), false);
    if (cfg.checkpoint_interval > 0 && st.completed % cfg.checkpoint_interval == 0) {
      db.checkpoint();
      write_checkpoint(dir.string(), ext, st.completed, program_of(st.best_id));
    }
    if (st.completed >= max_iterations) stop_reason = "max_iterations";
    if (cfg.target_score > 0 && pop.score(st.best_id) >= cfg.target_score) stop_reason = "target_score";
    if (cfg.early_stopping_patience > 0 && job.iteration - st.last_improvement >= cfg.early_stopping_patience)
      stop_reason = "early_stopping_patience";
  };

  // Builds the next iteration's job; nullopt when the offline mutator found nothing new (committed as such).
  auto make_job = [&]() -> std::optional<Job> {
    Job job;
    job.iteration = st.next_iteration++;
    job.island = static_cast<int>((job.iteration - 1) % cfg.database.num_islands);
    job.parent_id = pop.select_parent(job.island, rng);
    if (job.parent_id == 0) job.parent_id = 1;  // nothing correct yet: keep working from the initial program
    const Program parent = program_of(job.parent_id);
    job.parent_code = parent.code;
    job.parent_generation = parent.generation;
    job.parent_score = parent.combined_score;
    const auto ids = pop.inspirations(job.island, job.parent_id, cfg.prompt.num_top_programs,
                                      cfg.prompt.num_diverse_programs, rng);
    if (use_llm) {
      job.model = static_cast<int>(ensemble.choose(rng));
      job.mutator = ensemble.name(static_cast<size_t>(job.model));
      std::vector<Program> insp;
      for (int64_t id : ids) insp.push_back(program_of(id));
      PromptInputs in;
      in.parent = &parent;
      in.target = target;
      const size_t ntop = std::min<size_t>(insp.size(), static_cast<size_t>(cfg.prompt.num_top_programs));
      for (size_t i = 0; i < insp.size(); ++i) (i < ntop ? in.top : in.diverse).push_back(&insp[i]);
      const size_t skip = history.size() > static_cast<size_t>(cfg.prompt.history) ? history.size() - cfg.prompt.history : 0;
      in.history.assign(history.begin() + static_cast<std::ptrdiff_t>(skip), history.end());
      job.system = system_message(cfg);
      job.user = user_prompt(cfg, in);
      return job;
    }
    job.mutator = "offline";
    std::vector<Mate> mates;
    for (int64_t id : ids) mates.push_back({id, program_of(id).code});
    std::optional<Proposal> prop;
    {
      std::lock_guard<std::mutex> l(known_mutex);
      prop = offline.propose(parent.code, mates, rng, [&](const std::string& h) { return known.count(h) > 0; });
      if (prop) known.insert(code_hash(prop->code));
    }
    if (!prop) {
      Result r;
      r.job = job;
      r.outcome = "exhausted";
      r.reason = fmt::format("every knob change of #{} tried so far is already in the database", job.parent_id);
      commit(r);
      return std::nullopt;
    }
    job.code = std::move(prop->code);
    job.description = std::move(prop->description);
    return job;
  };

  while (true) {
    // Bounded by iterations completed, not by numbers handed out: jobs in flight when a run was killed are
    // lost, and their numbers are not reused, so a resumed run must not stop short by their count.
    while (in_flight < workers && stop_reason.empty() && st.completed + in_flight < max_iterations) {
      if (auto job = make_job()) {
        jobs.push(std::move(*job));
        ++in_flight;
      }
    }
    if (in_flight == 0) break;
    std::optional<Result> r = results.pop();
    --in_flight;
    commit(*r);
  }
  if (stop_reason.empty()) stop_reason = "max_iterations";
  db.checkpoint();

  RunSummary sum;
  sum.iterations = st.completed;
  sum.programs = db.count_programs();
  sum.best_id = st.best_id;
  sum.best_score = pop.score(st.best_id);
  sum.initial_score = initial_score;
  sum.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  sum.stop_reason = stop_reason;
  sum.best_program_path = (dir / "best" / ("best_program" + ext)).string();
  sum.report_path = (dir / "report.md").string();
  ReportInputs ri{&db, &pop, &st.failures, target, st.elapsed_before + sum.seconds, stop_reason};
  write_report(dir.string(), ext, ri);
  say(fmt::format("stopped ({}) after {} iterations: best #{} combined_score {:.4f} (initial {:.4f})", stop_reason,
                  sum.iterations, sum.best_id, sum.best_score, sum.initial_score), true);
  return sum;
}

}  // namespace gqa::evolve
