// The run's program database: SQLite in WAL mode holding every evaluated program, every attempt (including
// those that produced no program, with the reason) and the run state, each iteration committed in one
// transaction, so a kill at any moment loses nothing that was committed.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evolve/outcome.h"

struct sqlite3;

namespace gqa::evolve {

struct Program {
  int64_t id = 0;         // from 1; 0: assigned on insert
  int64_t parent_id = 0;  // 0: none (the initial program)
  int island = 0;
  int generation = 0;
  int64_t iteration = 0;
  std::string code, code_hash;
  nlohmann::json metrics = nlohmann::json::object(), artifacts = nlohmann::json::object();
  double combined_score = 0;
  bool correct = false;
  nlohmann::json features = nlohmann::json::array();  // the MAP-Elites cell (bin per dimension)
  std::string mutation;   // how it was made: "initial", "offline: KV_BLOCK 64->128", "llm gpt-x diff"...
  std::string created_at;
};

// One LLM exchange: what was asked, what came back, what it cost. Committed with its iteration's attempt
// (same iteration number). The API key is never part of it (errors and answers have it cut out).
struct LlmCall {
  int64_t iteration = 0;
  std::string model, url;
  std::string system, user;        // the prompt
  std::string answer;              // message content as the server sent it (inline <think> reasoning included)
  std::string reasoning;           // a separate reasoning_content / reasoning field
  int status = 0;                  // HTTP status of the last response (0: none came)
  std::string error;               // why the call failed, "" when it succeeded
  int64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;  // the response's `usage`
  double latency_seconds = 0;      // from the first request to the last response, retries included
  int retries = 0;                 // requests after the first (retries and request changes the server asked for)
  std::optional<double> cost;      // with prices in the config: tokens × price per million
  int whitespace_matched = 0;      // SEARCH parts applied ignoring trailing whitespace and indentation
  bool improved = false;           // a correct child that beats its parent
  std::string created_at;
};

// One iteration's outcome: Evaluated (a program was committed) or why none was. Stored by its name
// (to_string); reading an unknown name is an error.
struct Attempt {
  int64_t iteration = 0;
  int island = 0;
  int64_t parent_id = 0;
  std::string mutator;     // "offline" or the model's name
  Outcome outcome = Outcome::Evaluated;
  std::string stage;       // the evaluator's failed stage for an evaluated program that failed
  std::string reason;
  int64_t program_id = 0;
  double seconds = 0;
  std::string created_at;
};

std::string code_hash(const std::string& code);
// The time stamps of the database (created_at), also used where the reports and the run lock say when:
// UTC, "2026-12-06T13:43:05.123Z".
std::string utc_timestamp();

class Database {
 public:
  enum class Mode { ReadWrite, ReadOnly };
  // ReadWrite creates the file and its tables; ReadOnly (a report of a run that may be running) changes
  // nothing, not even the journal mode, and fails when the file does not exist.
  explicit Database(const std::string& path, Mode mode = Mode::ReadWrite);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // One transaction: the program (when given; a zero id and created_at are filled in), the attempt (its
  // program_id set to the new program's id), the LLM exchange (when given) and the run state. Throws on a
  // duplicate code hash.
  void commit(Program* program, Attempt attempt, const nlohmann::json& state, const LlmCall* call = nullptr);
  std::optional<nlohmann::json> load_state() const;

  std::vector<Program> programs() const;  // by id
  std::optional<Program> program(int64_t id) const;
  std::vector<Attempt> attempts() const;  // by iteration order of commit
  std::vector<LlmCall> llm_calls() const;  // in commit order
  int64_t count_programs() const;
  bool has_hash(const std::string& hash) const;
  // Folds the WAL into the main file (done at checkpoints and at the end).
  void checkpoint();
  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql) const;
  bool has_table(const char* name) const;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace gqa::evolve
