// The database (round trip, state saved with each commit, duplicate hashes refused), the stored names of
// outcomes, and the population (cell placement, elites per cell, archive, ring migration, state round trip,
// parent selection).
#include <gtest/gtest.h>

#include "evolve/database.h"
#include "evolve/outcome.h"
#include "evolve/population.h"
#include "evolve/run_lock.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

namespace {

Program make_program(int64_t id, const std::string& code, double score, int island, nlohmann::json metrics = {}) {
  Program p;
  p.id = id;
  p.parent_id = id > 1 ? 1 : 0;
  p.island = island;
  p.generation = id > 1 ? 1 : 0;
  p.iteration = id - 1;
  p.code = code;
  p.code_hash = code_hash(code);
  p.metrics = metrics.is_object() ? metrics : nlohmann::json{{"combined_score", score}};
  p.combined_score = score;
  p.correct = score > 0;
  p.mutation = "test";
  return p;
}

std::string block_code(const std::string& body) { return "x\n// EVOLVE-BLOCK-START\n" + body + "// EVOLVE-BLOCK-END\ny\n"; }

}  // namespace

TEST(EvolveDatabase, RoundTripAndState) {
  const std::string dir = temp_dir("db");
  {
    Database db(dir + "/e.db");
    EXPECT_FALSE(db.load_state());
    Program p = make_program(0, block_code("a\n"), 0.5, 0);
    p.artifacts = {{"compile_log", "ok"}};
    p.features = {{"cell", {1, 2}}};
    Attempt a{0, 0, 0, "initial", Outcome::Evaluated, "", "", 0, 1.5, ""};
    db.commit(&p, a, {{"n", 1}});
    EXPECT_EQ(p.id, 1);
    Attempt b{1, 0, 1, "offline", Outcome::Exhausted, "", "nothing new", 0, 0.0, ""};
    db.commit(nullptr, b, {{"n", 2}});
    Program dup = make_program(0, block_code("a\n"), 0.7, 1);
    EXPECT_THROW(db.commit(&dup, a, {{"n", 3}}), gqa::Error);  // code_hash is UNIQUE; nothing of it lands
  }
  Database db(dir + "/e.db");  // reopened, as by --resume
  EXPECT_EQ(db.load_state().value()["n"], 2);
  ASSERT_EQ(db.count_programs(), 1);
  const Program p = db.programs().at(0);
  EXPECT_EQ(p.code, block_code("a\n"));
  EXPECT_EQ(p.combined_score, 0.5);
  EXPECT_EQ(p.artifacts["compile_log"], "ok");
  EXPECT_EQ(p.features["cell"][1], 2);
  EXPECT_FALSE(p.created_at.empty());
  EXPECT_TRUE(db.has_hash(code_hash(block_code("a\n"))));
  const auto attempts = db.attempts();
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].program_id, 1);
  EXPECT_EQ(attempts[1].outcome, Outcome::Exhausted);
  EXPECT_EQ(attempts[1].reason, "nothing new");
  std::filesystem::remove_all(dir);
}

// An LLM exchange lands with its attempt (same transaction); a read-only connection sees everything and
// changes nothing, and refuses to create a database.
TEST(EvolveDatabase, LlmCallsAndReadOnly) {
  const std::string dir = temp_dir("calls");
  Database db(dir + "/e.db");
  Program p = make_program(0, block_code("a\n"), 0.5, 0);
  db.commit(&p, Attempt{0, 0, 0, "initial", Outcome::Evaluated, "", "", 0, 1.0, ""}, {{"n", 1}});
  const LlmCall c{.iteration = 1, .model = "m", .url = "http://127.0.0.1:9/v1/chat/completions", .system = "sys",
                  .user = "user prompt", .answer = "<think>hm</think>answer", .reasoning = "separate", .status = 200,
                  .error = "", .prompt_tokens = 11, .completion_tokens = 22, .reasoning_tokens = 3, .latency_seconds = 0.25,
                  .retries = 2, .cost = 0.5, .whitespace_matched = 1, .improved = true, .created_at = ""};
  db.commit(nullptr, Attempt{1, 0, 1, "m", Outcome::DiffFailed, "", "x", 0, 0.3, ""}, {{"n", 2}}, &c);
  LlmCall unpriced = c;
  unpriced.iteration = 2;
  unpriced.cost.reset();
  Program dup = make_program(0, block_code("a\n"), 0.7, 1);
  EXPECT_THROW(db.commit(&dup, Attempt{2, 0, 1, "m", Outcome::Evaluated, "", "", 0, 0.3, ""}, {{"n", 3}}, &unpriced), gqa::Error);
  db.commit(nullptr, Attempt{2, 0, 1, "m", Outcome::LlmError, "", "y", 0, 0.3, ""}, {{"n", 3}}, &unpriced);

  const Database ro(dir + "/e.db", Database::Mode::ReadOnly);
  const auto calls = ro.llm_calls();
  ASSERT_EQ(calls.size(), 2u);  // the failed transaction left nothing
  EXPECT_EQ(calls[0].user, "user prompt");
  EXPECT_EQ(calls[0].answer, "<think>hm</think>answer");
  EXPECT_EQ(calls[0].reasoning, "separate");
  EXPECT_EQ(calls[0].completion_tokens, 22);
  EXPECT_EQ(calls[0].retries, 2);
  EXPECT_EQ(calls[0].cost, 0.5);
  EXPECT_EQ(calls[0].whitespace_matched, 1);
  EXPECT_TRUE(calls[0].improved);
  EXPECT_FALSE(calls[1].cost.has_value());
  EXPECT_EQ(ro.load_state().value()["n"], 3);
  EXPECT_THROW(Database(dir + "/none.db", Database::Mode::ReadOnly), gqa::Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/none.db"));
  std::filesystem::remove_all(dir);
}

// One writer per folder: a second lock is refused with the holder named; closing releases it.
TEST(EvolveRunLock, SecondWriterRefusedWithHolder) {
  const std::string dir = temp_dir("lock");
  std::string error;
  {
    RunLock first(dir);
    const auto holder = RunLock::holder(dir);
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->rfind(fmt::format("pid {} on host ", getpid()), 0), 0u) << *holder;
    try {
      RunLock second(dir);
    } catch (const gqa::Error& e) {
      error = e.what();
    }
    EXPECT_NE(error.find(dir + " is in use by another gqa-evolve (pid " + std::to_string(getpid()) + " on host "), std::string::npos) << error;
  }
  RunLock again(dir);  // released with its descriptor (as when a process ends, however it ends)
  std::filesystem::remove_all(dir);
}

// The names are what evolve.db, evolve.log and report.md hold: they must not change.
TEST(EvolveOutcome, NamesRoundTrip) {
  const std::vector<std::pair<Outcome, std::string>> names = {
      {Outcome::Evaluated, "evaluated"}, {Outcome::LlmError, "llm_error"}, {Outcome::DiffFailed, "diff_failed"},
      {Outcome::Duplicate, "duplicate"}, {Outcome::TooLong, "too_long"},   {Outcome::Exhausted, "exhausted"}};
  for (const auto& [outcome, name] : names) {
    EXPECT_EQ(to_string(outcome), name);
    EXPECT_EQ(parse_outcome(name), outcome);
  }
  EXPECT_EQ(to_string(StopReason::MaxIterations), "max_iterations");
  EXPECT_EQ(to_string(StopReason::TargetScore), "target_score");
  EXPECT_EQ(to_string(StopReason::EarlyStoppingPatience), "early_stopping_patience");
  try {
    parse_outcome("improved");
    FAIL() << "no error";
  } catch (const gqa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown outcome 'improved'"), std::string::npos) << e.what();
  }
}

TEST(EvolvePopulation, PlacementArchiveMigration) {
  DatabaseConfig c;
  c.num_islands = 2;
  c.feature_dimensions = {"metric:x"};
  c.feature_bins = 4;
  c.archive_size = 3;
  c.migration_rate = 0.5;
  Population pop(c);
  auto add = [&](int64_t id, double score, double x, int island, bool all = false) {
    Program p = make_program(id, block_code(std::to_string(id) + "\n"), score, island, {{"x", x}});
    p.features = pop.features_of(p);
    pop.add(p, all);
    return p.features["cell"][0].get<int>();
  };
  EXPECT_EQ(add(1, 1.0, 0.0, 0, true), 0);  // the first value fixes the range's start
  EXPECT_EQ(add(2, 2.0, 4.0, 0), 3);        // widens the range to [0, 4]: top bin
  EXPECT_EQ(add(3, 1.5, 1.1, 0), 1);
  EXPECT_EQ(add(4, 0.5, 1.2, 0), 1);        // same cell, worse: not an elite
  EXPECT_EQ(add(5, 3.0, 2.5, 1), 2);
  EXPECT_EQ(add(6, 0.0, 2.5, 1), 2);        // failed: never placed
  EXPECT_EQ(pop.island_elites(0), (std::vector<int64_t>{2, 3, 1}));
  EXPECT_EQ(pop.island_elites(1), (std::vector<int64_t>{5, 1}));
  EXPECT_EQ(pop.archive(), (std::vector<int64_t>{5, 2, 3}));  // size 3, best first
  EXPECT_EQ(pop.best_id(), 5);

  const nlohmann::json before = pop.to_json();
  pop.migrate();  // island 0's best 2 of 3 (rate 0.5 rounds up) go to island 1; island 1's best goes to 0
  EXPECT_EQ(pop.island_elites(1), (std::vector<int64_t>{5, 2, 3, 1}));
  EXPECT_EQ(pop.island_elites(0), (std::vector<int64_t>{5, 2, 3, 1}));

  Population again(c);  // resume: index the programs, restore grids from the saved state
  for (int64_t id = 1; id <= 6; ++id) again.index(make_program(id, block_code(std::to_string(id) + "\n"), id == 6 ? 0 : 1, 0));
  again.from_json(pop.to_json());
  EXPECT_EQ(again.to_json(), pop.to_json());
  EXPECT_NE(before, pop.to_json());

  gqa::Rng rng(1);
  for (int i = 0; i < 50; ++i) {
    const int64_t parent = pop.select_parent(0, rng);
    EXPECT_TRUE(parent == 1 || parent == 2 || parent == 3 || parent == 5) << parent;
    const auto insp = pop.inspirations(0, parent, 2, 1, rng);
    EXPECT_EQ(std::count(insp.begin(), insp.end(), parent), 0);
  }
}

TEST(EvolvePopulation, DiversityAgainstArchive) {
  DatabaseConfig c;
  c.num_islands = 1;
  c.feature_dimensions = {"diversity"};
  Population pop(c);
  Program a = make_program(1, block_code("a\nb\nc\nd\n"), 1.0, 0);
  a.features = pop.features_of(a);
  EXPECT_EQ(a.features["values"][0], 0.0);  // empty archive
  pop.add(a);
  Program b = make_program(2, block_code("a\nb\nc\nz\n"), 1.0, 0);
  EXPECT_DOUBLE_EQ(pop.features_of(b)["values"][0].get<double>(), 0.25);  // 2 of 8 lines differ
}
