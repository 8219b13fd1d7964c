// SQLite storage for the run. Statements are prepared per call (a few per iteration, whose cost is nothing
// next to an evaluation); every failure becomes a gqa::Error naming the database file.
#include "evolve/database.h"

#include <sqlite3.h>

#include <chrono>
#include <ctime>

#include "common/error.h"
#include "programs/sha256.h"

namespace gqa::evolve {

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

namespace {

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) fail("database", "{}: {}: {}", path, sql, sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v)); }
  Stmt& bind(int i, const std::string& v) { return check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT)); }
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("database", "{}: {}", path_, sqlite3_errmsg(db_));
  }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double f64(int c) const { return sqlite3_column_double(st_, c); }
  bool is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    const unsigned char* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, c)) : std::string();
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) fail("database", "{}: bind: {}", path_, sqlite3_errmsg(db_));
    return *this;
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* st_ = nullptr;
};

nlohmann::json parse_or_empty(const std::string& s) {
  if (s.empty()) return nlohmann::json::object();
  return nlohmann::json::parse(s, nullptr, false);
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

constexpr const char* kProgramColumns =
    "id, parent_id, island, generation, iteration, code, code_hash, metrics, artifacts, combined_score, correct, "
    "features, mutation, created_at";

Program read_program(const Stmt& s) {
  Program p;
  p.id = s.i64(0);
  p.parent_id = s.i64(1);
  p.island = static_cast<int>(s.i64(2));
  p.generation = static_cast<int>(s.i64(3));
  p.iteration = s.i64(4);
  p.code = s.text(5);
  p.code_hash = s.text(6);
  p.metrics = parse_or_empty(s.text(7));
  p.artifacts = parse_or_empty(s.text(8));
  p.combined_score = s.f64(9);
  p.correct = s.i64(10) != 0;
  p.features = parse_or_empty(s.text(11));
  p.mutation = s.text(12);
  p.created_at = s.text(13);
  return p;
}

constexpr const char* kCallColumns =
    "iteration, model, url, system, user, answer, reasoning, status, error, prompt_tokens, completion_tokens, "
    "reasoning_tokens, latency_seconds, retries, cost, whitespace_matched, improved, created_at";

void insert_call(sqlite3* db, const std::string& path, const LlmCall& c, const std::string& now) {
  Stmt s(db, path, fmt::format("INSERT INTO llm_calls ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kCallColumns).c_str());
  s.bind(1, c.iteration).bind(2, c.model).bind(3, c.url).bind(4, c.system).bind(5, c.user).bind(6, c.answer);
  s.bind(7, c.reasoning).bind(8, int64_t{c.status}).bind(9, c.error).bind(10, c.prompt_tokens);
  s.bind(11, c.completion_tokens).bind(12, c.reasoning_tokens).bind(13, c.latency_seconds).bind(14, int64_t{c.retries});
  if (c.cost) s.bind(15, *c.cost);  // unbound: NULL (no prices in the config)
  s.bind(16, int64_t{c.whitespace_matched}).bind(17, int64_t{c.improved}).bind(18, now);
  s.step();
}

}  // namespace

std::string code_hash(const std::string& code) { return sha256_hex(code); }

Database::Database(const std::string& path, Mode mode) : path_(path) {
  const int flags = (mode == Mode::ReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    fail("database", "{}: cannot open: {}", path, msg);
  }
  sqlite3_busy_timeout(db_, 10000);  // readers (tests, a second look at a live run) may hold it briefly
  if (mode == Mode::ReadOnly) return;
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec(
        "CREATE TABLE IF NOT EXISTS programs (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, island INTEGER NOT "
        "NULL, generation INTEGER NOT NULL, iteration INTEGER NOT NULL, code TEXT NOT NULL, code_hash TEXT NOT NULL "
        "UNIQUE, metrics TEXT NOT NULL, artifacts TEXT NOT NULL, combined_score REAL NOT NULL, correct INTEGER NOT "
        "NULL, features TEXT NOT NULL, mutation TEXT NOT NULL, created_at TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, iteration INTEGER NOT NULL, island INTEGER NOT "
        "NULL, parent_id INTEGER NOT NULL, mutator TEXT NOT NULL, outcome TEXT NOT NULL, stage TEXT NOT NULL, reason "
        "TEXT NOT NULL, program_id INTEGER NOT NULL, seconds REAL NOT NULL, created_at TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS run_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS llm_calls (id INTEGER PRIMARY KEY, iteration INTEGER NOT NULL, model TEXT NOT "
        "NULL, url TEXT NOT NULL, system TEXT NOT NULL, user TEXT NOT NULL, answer TEXT NOT NULL, reasoning TEXT NOT "
        "NULL, status INTEGER NOT NULL, error TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens "
        "INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, latency_seconds REAL NOT NULL, retries INTEGER NOT "
        "NULL, cost REAL, whitespace_matched INTEGER NOT NULL, improved INTEGER NOT NULL, created_at TEXT NOT NULL);");
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

Database::~Database() { sqlite3_close(db_); }

void Database::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    fail("database", "{}: {}", path_, msg);
  }
}

void Database::commit(Program* program, Attempt attempt, const nlohmann::json& state, const LlmCall* call) {
  exec("BEGIN IMMEDIATE");
  try {
    const std::string now = utc_timestamp();
    if (program) {
      Stmt s(db_, path_,
             "INSERT INTO programs (parent_id, island, generation, iteration, code, code_hash, metrics, artifacts, "
             "combined_score, correct, features, mutation, created_at, id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      s.bind(1, program->parent_id).bind(2, int64_t{program->island}).bind(3, int64_t{program->generation});
      s.bind(4, program->iteration).bind(5, program->code).bind(6, program->code_hash).bind(7, dump(program->metrics));
      s.bind(8, dump(program->artifacts)).bind(9, program->combined_score).bind(10, int64_t{program->correct});
      s.bind(11, dump(program->features)).bind(12, program->mutation).bind(13, now);
      if (program->id > 0) s.bind(14, program->id);  // unbound: NULL, so SQLite picks the next rowid
      s.step();
      program->id = sqlite3_last_insert_rowid(db_);
      program->created_at = now;
      attempt.program_id = program->id;
    }
    Stmt a(db_, path_,
           "INSERT INTO attempts (iteration, island, parent_id, mutator, outcome, stage, reason, program_id, seconds, "
           "created_at) VALUES (?,?,?,?,?,?,?,?,?,?)");
    a.bind(1, attempt.iteration).bind(2, int64_t{attempt.island}).bind(3, attempt.parent_id).bind(4, attempt.mutator);
    a.bind(5, std::string(to_string(attempt.outcome))).bind(6, attempt.stage).bind(7, attempt.reason).bind(8, attempt.program_id);
    a.bind(9, attempt.seconds).bind(10, now);
    a.step();
    if (call) insert_call(db_, path_, *call, now);
    Stmt st(db_, path_, "INSERT INTO run_state (key, value) VALUES ('state', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    st.bind(1, dump(state));
    st.step();
    exec("COMMIT");
  } catch (...) {
    try {
      exec("ROLLBACK");
    } catch (...) {
    }
    throw;
  }
}

std::optional<nlohmann::json> Database::load_state() const {
  Stmt s(db_, path_, "SELECT value FROM run_state WHERE key = 'state'");
  if (!s.step()) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(s.text(0), nullptr, false);
  if (j.is_discarded()) fail("database", "{}: the run state is not valid JSON", path_);
  return j;
}

std::vector<Program> Database::programs() const {
  Stmt s(db_, path_, fmt::format("SELECT {} FROM programs ORDER BY id", kProgramColumns).c_str());
  std::vector<Program> out;
  while (s.step()) out.push_back(read_program(s));
  return out;
}

std::optional<Program> Database::program(int64_t id) const {
  Stmt s(db_, path_, fmt::format("SELECT {} FROM programs WHERE id = ?", kProgramColumns).c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_program(s);
}

std::vector<Attempt> Database::attempts() const {
  Stmt s(db_, path_,
         "SELECT iteration, island, parent_id, mutator, outcome, stage, reason, program_id, seconds, created_at FROM "
         "attempts ORDER BY id");
  std::vector<Attempt> out;
  while (s.step()) {
    Attempt a;
    a.iteration = s.i64(0);
    a.island = static_cast<int>(s.i64(1));
    a.parent_id = s.i64(2);
    a.mutator = s.text(3);
    a.outcome = parse_outcome(s.text(4));
    a.stage = s.text(5);
    a.reason = s.text(6);
    a.program_id = s.i64(7);
    a.seconds = s.f64(8);
    a.created_at = s.text(9);
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<LlmCall> Database::llm_calls() const {
  std::vector<LlmCall> out;
  if (!has_table("llm_calls")) return out;  // a run made before exchanges were kept, opened read-only
  Stmt s(db_, path_, fmt::format("SELECT {} FROM llm_calls ORDER BY id", kCallColumns).c_str());
  while (s.step()) {
    const std::optional<double> cost = s.is_null(14) ? std::nullopt : std::optional<double>(s.f64(14));
    LlmCall c{.iteration = s.i64(0), .model = s.text(1), .url = s.text(2), .system = s.text(3), .user = s.text(4),
              .answer = s.text(5), .reasoning = s.text(6), .status = static_cast<int>(s.i64(7)), .error = s.text(8),
              .prompt_tokens = s.i64(9), .completion_tokens = s.i64(10), .reasoning_tokens = s.i64(11),
              .latency_seconds = s.f64(12), .retries = static_cast<int>(s.i64(13)), .cost = cost,
              .whitespace_matched = static_cast<int>(s.i64(15)), .improved = s.i64(16) != 0, .created_at = s.text(17)};
    out.push_back(std::move(c));
  }
  return out;
}

bool Database::has_table(const char* name) const {
  Stmt s(db_, path_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  s.bind(1, std::string(name));
  return s.step();
}

int64_t Database::count_programs() const {
  Stmt s(db_, path_, "SELECT COUNT(*) FROM programs");
  s.step();
  return s.i64(0);
}

bool Database::has_hash(const std::string& hash) const {
  Stmt s(db_, path_, "SELECT 1 FROM programs WHERE code_hash = ?");
  s.bind(1, hash);
  return s.step();
}

void Database::checkpoint() { exec("PRAGMA wal_checkpoint(TRUNCATE)"); }

}  // namespace gqa::evolve
