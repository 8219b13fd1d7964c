// The population: a MAP-Elites grid per island (one elite per feature cell), an elite archive across
// islands, ring migration, and parent / inspiration sampling. Its whole state is JSON saved with every
// commit; program details live in the database and are indexed here by id.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "common/rng.h"
#include "evolve/config.h"
#include "evolve/database.h"

namespace gqa::evolve {

class Population {
 public:
  explicit Population(const DatabaseConfig& config);

  // Raw feature values and cell of a new program (measured against the current archive), widening the
  // feature ranges that bins are cut from. Call once per program before it is committed.
  nlohmann::json features_of(const Program& p);
  // Registers a committed program; a correct one competes for its cell on `p.island` (all islands when
  // `all_islands`, as for the initial program) and for the archive.
  void add(const Program& p, bool all_islands = false);
  // Registers a program known from the database without placing it (resume: the grids come from state).
  void index(const Program& p);

  // Parent by exploration (any elite of the island) / exploitation (any of the archive) / elite (the
  // island's best elite_selection_ratio); 0 when nothing is placed yet.
  int64_t select_parent(int island, Rng& rng) const;
  // The island's best programs, then random others (from any island's grid) for diversity; never the parent.
  std::vector<int64_t> inspirations(int island, int64_t parent, int num_top, int num_diverse, Rng& rng) const;
  // Ring migration: each island's best migration_rate (at least one) compete for their cells on the next.
  void migrate();

  int64_t best_id() const { return archive_.empty() ? 0 : archive_.front(); }
  double score(int64_t id) const;
  const std::vector<int64_t>& archive() const { return archive_; }
  // Elites of an island, best first.
  std::vector<int64_t> island_elites(int island) const;
  size_t num_islands() const { return islands_.size(); }

  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& j);

 private:
  struct Member {
    double score = 0;
    bool correct = false;
    std::string cell;
    std::vector<std::string> block_lines;  // sorted EVOLVE-BLOCK lines, for the diversity distance
  };
  void place(int island, int64_t id);
  bool better(int64_t a, int64_t b) const;  // higher score; ties: the older program

  DatabaseConfig config_;
  std::map<int64_t, Member> members_;
  std::vector<std::map<std::string, int64_t>> islands_;  // cell → program id
  std::vector<int64_t> archive_;                         // best first
  std::vector<std::pair<double, double>> ranges_;        // per feature: min, max of raw values seen
  bool have_ranges_ = false;
};

}  // namespace gqa::evolve
