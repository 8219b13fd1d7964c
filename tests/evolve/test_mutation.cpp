// Knob parsing, the offline mutator (never a duplicate; a fixed seed gives identical runs), and applying
// LLM responses: SEARCH/REPLACE inside the EVOLVE-BLOCK only, malformed diffs, full rewrites.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>

#include "evolve/database.h"
#include "evolve/diff.h"
#include "evolve/mutator_offline.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

TEST(EvolveKnobs, ParseAndSet) {
  const std::string code = tunable_code();
  const auto knobs = parse_knobs(code);
  ASSERT_GE(knobs.size(), 6u);
  EXPECT_EQ(knobs[0].name, "KV_BLOCK");
  EXPECT_EQ(knobs[0].value, "64");
  EXPECT_EQ(knobs[0].values, (std::vector<std::string>{"16", "32", "64", "128"}));
  const std::string changed = set_knobs(code, {{"KV_BLOCK", "128"}, {"GQA_PACK", "0"}});
  EXPECT_NE(changed.find("constexpr int KV_BLOCK = 128;"), std::string::npos);
  EXPECT_EQ(parse_knobs(changed)[2].value, "0");
  EXPECT_EQ(changed.size(), code.size() + 1);
  EXPECT_THROW(set_knobs(code, {{"NOPE", "1"}}), gqa::Error);
}

TEST(EvolveOffline, NeverProposesSeenPrograms) {
  const std::string code = tunable_code();
  OfflineConfig c;
  OfflineMutator m(c);
  gqa::Rng rng(7);
  std::set<std::string> seen = {code_hash(code)};
  // A small knob space: only KV_BLOCK (4 values) and GQA_PACK (2) free → 7 children, then exhausted.
  std::string small = code;
  for (const Knob& k : parse_knobs(code))
    if (k.name != "KV_BLOCK" && k.name != "GQA_PACK") {
      const size_t at = small.find("values=" + fmt::format("{}", fmt::join(k.values, ",")));
      small.replace(at, 7 + fmt::format("{}", fmt::join(k.values, ",")).size(), "values=" + k.value);
    }
  seen = {code_hash(small)};
  std::string parent = small;
  int proposals = 0;
  while (auto p = m.propose(parent, {}, rng, [&](const std::string& h) { return seen.count(h) > 0; })) {
    EXPECT_TRUE(seen.insert(code_hash(p->code)).second) << "duplicate: " << p->description;
    ++proposals;
    parent = p->code;  // walk on from the child, as evolution does
    ASSERT_LT(proposals, 20);
  }
  EXPECT_EQ(proposals, 7);
}

TEST(EvolveOffline, CrossoverTakesMatesValues) {
  const std::string code = tunable_code();
  const std::string mate = set_knobs(code, {{"KV_BLOCK", "128"}, {"Q_TILE", "1"}, {"GQA_PACK", "0"}});
  OfflineConfig c;
  c.crossover_rate = 1.0;
  OfflineMutator m(c);
  gqa::Rng rng(3);
  auto p = m.propose(code, {{9, mate}}, rng, [](const std::string&) { return false; });
  ASSERT_TRUE(p);
  EXPECT_EQ(p->description.rfind("crossover with #9: ", 0), 0u) << p->description;
  const auto mine = parse_knobs(code), theirs = parse_knobs(mate), child = parse_knobs(p->code);
  for (size_t i = 0; i < child.size(); ++i)  // every knob comes from one of the two parents
    EXPECT_TRUE(child[i].value == mine[i].value || child[i].value == theirs[i].value) << child[i].name;
}

namespace {

// Everything in the database but the timestamps.
nlohmann::json contents(const std::string& db_path) {
  Database db(db_path);
  nlohmann::json j = nlohmann::json::array();
  for (const Program& p : db.programs())
    j.push_back({p.id, p.parent_id, p.island, p.generation, p.iteration, p.code_hash, p.metrics, p.combined_score,
                 p.features, p.mutation});
  for (const Attempt& a : db.attempts()) j.push_back({a.iteration, a.island, a.parent_id, std::string(to_string(a.outcome)), a.reason, a.program_id});
  nlohmann::json state = db.load_state().value();
  state.erase("elapsed_seconds");
  j.push_back(state);
  return j;
}

EvolveConfig small_config() {
  EvolveConfig c = parse_config("max_iterations: 25\nrandom_seed: 5\nworkers: 1\ncheckpoint_interval: 10\n"
                                "database: {num_islands: 3, migration_interval: 5, feature_bins: 4}\n", "test.yaml");
  return c;
}

}  // namespace

TEST(EvolveOffline, FixedSeedRunsAreIdentical) {
  const std::string dir = temp_dir("determinism");
  std::vector<nlohmann::json> runs;
  for (int run = 0; run < 2; ++run) {
    RunOptions o;
    o.initial_program = tunable_path();
    o.output_dir = dir + "/run" + std::to_string(run);
    o.print_progress = false;
    const RunSummary s = run_evolution(small_config(), o, fake_evaluate);
    EXPECT_EQ(s.iterations, 25);
    EXPECT_GT(s.best_score, s.initial_score);
    runs.push_back(contents(o.output_dir + "/evolve.db"));
  }
  EXPECT_EQ(runs[0], runs[1]);
  // No code twice; the failing setting was recorded as a failure; the best files and report exist.
  Database db(dir + "/run0/evolve.db");
  std::set<std::string> hashes;
  for (const Program& p : db.programs()) EXPECT_TRUE(hashes.insert(p.code_hash).second);
  EXPECT_TRUE(std::filesystem::exists(dir + "/run0/best/best_program.cpp"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/run0/best/best_program_info.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/run0/report.md"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/run0/checkpoints/checkpoint_20/best_program.cpp"));
  const auto info = nlohmann::json::parse(gqa::read_file(dir + "/run0/best/best_program_info.json", "test"));
  EXPECT_EQ(gqa::read_file(dir + "/run0/best/best_program.cpp", "test"), db.program(info["id"]).value().code);
  // Starting again in the same folder without --resume is refused.
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir + "/run0";
  o.print_progress = false;
  EXPECT_THROW(run_evolution(small_config(), o, fake_evaluate), gqa::Error);
  std::filesystem::remove_all(dir);
}

TEST(EvolveOffline, EarlyStoppingAndTarget) {
  const std::string dir = temp_dir("stop");
  EvolveConfig c = small_config();
  c.max_iterations = 200;
  c.target_score = 0.75;
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir + "/a";
  o.print_progress = false;
  RunSummary s = run_evolution(c, o, fake_evaluate);
  EXPECT_EQ(s.stop_reason, StopReason::TargetScore);
  EXPECT_GE(s.best_score, 0.75);
  c.target_score = 0;
  c.early_stopping_patience = 3;
  o.output_dir = dir + "/b";
  s = run_evolution(c, o, [](const std::string& code, const std::string& p, int64_t it) {
    nlohmann::json r = fake_evaluate(code, p, it);
    if (it > 0) r["metrics"]["combined_score"] = 0.1;  // nothing ever improves
    return r;
  });
  EXPECT_EQ(s.stop_reason, StopReason::EarlyStoppingPatience);
  EXPECT_EQ(s.iterations, 3);
  std::filesystem::remove_all(dir);
}

namespace {

std::string program(const std::string& body) {
  return "#include \"gqa/abi.h\"\n// EVOLVE-BLOCK-START\n" + body + "// EVOLVE-BLOCK-END\nint tail() { return 1; }\n";
}

}  // namespace

TEST(EvolveDiff, AppliesInsideTheBlock) {
  const std::string parent = program("int a = 1;\nint b = 2;\n");
  ChildCode c = apply_response(parent, "Idea.\n<<<<<<< SEARCH\nint b = 2;\n=======\nint b = 3;\n>>>>>>> REPLACE\n", true);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.code, program("int a = 1;\nint b = 3;\n"));
  EXPECT_EQ(c.blocks, 1);
  // Two blocks, applied in order.
  c = apply_response(parent,
                     "<<<<<<< SEARCH\nint a = 1;\n=======\nint a = 5;\n>>>>>>> REPLACE\n"
                     "<<<<<<< SEARCH\nint b = 2;\n=======\n>>>>>>> REPLACE\n", true);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.code, program("int a = 5;\n"));
}

TEST(EvolveDiff, RefusesOutsideMalformedAndMissing) {
  const std::string parent = program("int a = 1;\n");
  ChildCode c = apply_response(parent, "<<<<<<< SEARCH\nint tail() { return 1; }\n=======\nint tail() { return 2; }\n>>>>>>> REPLACE\n", true);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.error.find("only outside the EVOLVE-BLOCK"), std::string::npos) << c.error;
  c = apply_response(parent, "<<<<<<< SEARCH\n// EVOLVE-BLOCK-END\n=======\n>>>>>>> REPLACE\n", true);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.error.find("marker"), std::string::npos) << c.error;
  c = apply_response(parent, "<<<<<<< SEARCH\nint a = 1;\nint a = 2;\n>>>>>>> REPLACE\n", true);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.error.find("malformed diff"), std::string::npos) << c.error;
  c = apply_response(parent, "<<<<<<< SEARCH\nint a = 1;\n=======\nint a = 2;\n", true);
  EXPECT_NE(c.error.find("not closed"), std::string::npos) << c.error;
  c = apply_response(parent, "<<<<<<< SEARCH\nint zz = 1;\n=======\nint a = 2;\n>>>>>>> REPLACE\n", true);
  EXPECT_NE(c.error.find("is not in the EVOLVE-BLOCK"), std::string::npos) << c.error;
  c = apply_response(parent, "I would make it faster.", true);
  EXPECT_NE(c.error.find("no SEARCH/REPLACE block"), std::string::npos) << c.error;
}

// A SEARCH part whose indentation or trailing blanks differ is applied when it matches one place only, and
// counted; two places that match loosely are refused with the count.
TEST(EvolveDiff, WhitespaceTolerantSearch) {
  const std::string parent = program("int f() {\n    int a = 1;\n    return a;\n}\n");
  ChildCode c = apply_response(parent, "<<<<<<< SEARCH\nint a = 1;   \n  return a;\n=======\n    int a = 2;\n    return a;\n>>>>>>> REPLACE\n", true);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.code, program("int f() {\n    int a = 2;\n    return a;\n}\n"));
  EXPECT_EQ(c.whitespace_matched, 1);
  c = apply_response(parent, "<<<<<<< SEARCH\n    int a = 1;\n=======\n    int a = 3;\n>>>>>>> REPLACE\n", true);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.whitespace_matched, 0);  // exact
  const std::string twice = program("  int a = 1;\n\tint a = 1;\n");
  c = apply_response(twice, "<<<<<<< SEARCH\nint a = 1;  \n=======\nint a = 2;\n>>>>>>> REPLACE\n", true);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.error.find("matches 2 places when whitespace is ignored"), std::string::npos) << c.error;
  // Only inside the block: the loosely matching tail outside it is never edited.
  c = apply_response(parent, "<<<<<<< SEARCH\n  int tail() { return 1; }\n=======\nint tail() { return 2; }\n>>>>>>> REPLACE\n", true);
  EXPECT_FALSE(c.ok);
}

TEST(EvolveDiff, FullRewrite) {
  const std::string parent = program("int a = 1;\n");
  ChildCode c = apply_response(parent, "Here:\n```cpp\n" + program("int a = 7;\n") + "```\nDone.", false);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_TRUE(c.full_rewrite);
  EXPECT_EQ(c.code, program("int a = 7;\n"));
  // Accepted in diff mode too when there is no diff.
  c = apply_response(parent, "```cpp\n" + program("int a = 8;\n") + "```\n", true);
  EXPECT_TRUE(c.ok && c.full_rewrite);
}

TEST(EvolveOffline, ProgramWithoutKnobsIsRefusedUpFront) {
  const std::string dir = temp_dir("noknobs");
  gqa::write_file_atomic(dir + "/p.cpp", program("int a = 1;\n"), "test");
  RunOptions o;
  o.initial_program = dir + "/p.cpp";
  o.output_dir = dir + "/run";
  o.print_progress = false;
  int evaluations = 0;
  try {
    run_evolution(small_config(), o, [&](const std::string& c, const std::string& p, int64_t i) {
      ++evaluations;
      return fake_evaluate(c, p, i);
    });
    FAIL() << "no error";
  } catch (const gqa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("EVOLVE-KNOB"), std::string::npos) << e.what();
  }
  EXPECT_EQ(evaluations, 0);
  std::filesystem::remove_all(dir);
}

TEST(EvolveOffline, ParallelWorkersCommitEveryIteration) {
  const std::string dir = temp_dir("parallel");
  EvolveConfig c = small_config();
  c.workers = 3;
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir;
  o.print_progress = false;
  std::mutex m;
  std::set<int> workers_seen;
  const RunSummary s = run_evolution(c, o, [&](const std::string& code, const std::string& p, int64_t it) {
    {
      std::lock_guard<std::mutex> l(m);
      workers_seen.insert(current_worker());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return fake_evaluate(code, p, it);
  });
  EXPECT_EQ(s.iterations, 25);
  Database db(dir + "/evolve.db");
  EXPECT_EQ(db.attempts().size(), 26u);
  std::set<int64_t> iterations;
  for (const Attempt& a : db.attempts()) iterations.insert(a.iteration);
  EXPECT_EQ(iterations.size(), 26u);  // 0..25, each once
  EXPECT_TRUE(workers_seen.count(-1));  // the initial program, on the calling thread
  EXPECT_GE(workers_seen.size(), 3u);
  std::filesystem::remove_all(dir);
}
