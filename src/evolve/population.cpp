// MAP-Elites bookkeeping. Feature bins are cut from the range of raw values seen so far (saved in the
// state), so a program's cell is fixed when it is committed and a resumed run places programs identically.
#include "evolve/population.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/error.h"
#include "evolve/program_text.h"

namespace gqa::evolve {

namespace {

std::vector<std::string> sorted_block_lines(const std::string& code) {
  std::string block = code;
  try {
    const BlockRange r = find_evolve_block(code);
    block = code.substr(r.begin, r.end - r.begin);
  } catch (const Error&) {
  }
  std::vector<std::string> lines;
  std::istringstream in(block);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

// Share of lines not common to both (multiset symmetric difference over total): 0 same, 1 disjoint.
double line_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.empty() && b.empty()) return 0;
  size_t i = 0, j = 0, common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) {
      ++common, ++i, ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return static_cast<double>(a.size() + b.size() - 2 * common) / static_cast<double>(a.size() + b.size());
}

}  // namespace

Population::Population(const DatabaseConfig& config) : config_(config), islands_(config.num_islands) {}

double Population::score(int64_t id) const {
  auto it = members_.find(id);
  return it == members_.end() ? 0 : it->second.score;
}

bool Population::better(int64_t a, int64_t b) const {
  const double sa = score(a), sb = score(b);
  return sa != sb ? sa > sb : a < b;
}

nlohmann::json Population::features_of(const Program& p) {
  const auto lines = sorted_block_lines(p.code);
  std::vector<double> raw;
  for (const std::string& f : config_.feature_dimensions) {
    if (f == "complexity") {
      size_t bytes = 0;
      for (const auto& l : lines) bytes += l.size() + 1;
      raw.push_back(static_cast<double>(bytes));
    } else if (f == "diversity") {
      double sum = 0;
      int n = 0;
      for (int64_t id : archive_) {
        if (n == config_.diversity_reference_size) break;
        sum += line_distance(lines, members_.at(id).block_lines);
        ++n;
      }
      raw.push_back(n ? sum / n : 0.0);
    } else {  // metric:<name>
      const std::string name = f.substr(7);
      const auto it = p.metrics.find(name);
      raw.push_back(it != p.metrics.end() && it->is_number() ? it->get<double>() : 0.0);
    }
  }
  if (!have_ranges_) {
    ranges_.clear();
    for (double v : raw) ranges_.push_back({v, v});
    have_ranges_ = true;
  }
  std::vector<int> cell;
  for (size_t d = 0; d < raw.size(); ++d) {
    auto& [lo, hi] = ranges_[d];
    lo = std::min(lo, raw[d]);
    hi = std::max(hi, raw[d]);
    int bin = 0;
    if (hi > lo) bin = static_cast<int>(std::floor((raw[d] - lo) / (hi - lo) * config_.feature_bins));
    cell.push_back(std::clamp(bin, 0, config_.feature_bins - 1));
  }
  return {{"values", raw}, {"cell", cell}};
}

void Population::index(const Program& p) {
  Member m;
  m.score = p.combined_score;
  m.correct = p.correct;
  if (p.features.is_object() && p.features.contains("cell")) {
    std::string key;
    for (const auto& b : p.features["cell"]) key += (key.empty() ? "" : ",") + std::to_string(b.get<int>());
    m.cell = key;
  }
  m.block_lines = sorted_block_lines(p.code);
  members_[p.id] = std::move(m);
}

void Population::place(int island, int64_t id) {
  const Member& m = members_.at(id);
  auto& grid = islands_[island];
  auto it = grid.find(m.cell);
  if (it == grid.end() || better(id, it->second)) grid[m.cell] = id;
}

void Population::add(const Program& p, bool all_islands) {
  index(p);
  if (!p.correct) return;
  if (all_islands) {
    for (size_t i = 0; i < islands_.size(); ++i) place(static_cast<int>(i), p.id);
  } else {
    place(p.island, p.id);
  }
  if (std::find(archive_.begin(), archive_.end(), p.id) == archive_.end()) archive_.push_back(p.id);
  std::sort(archive_.begin(), archive_.end(), [&](int64_t a, int64_t b) { return better(a, b); });
  if (archive_.size() > static_cast<size_t>(config_.archive_size)) archive_.resize(config_.archive_size);
}

std::vector<int64_t> Population::island_elites(int island) const {
  std::vector<int64_t> ids;
  for (const auto& [cell, id] : islands_.at(island)) ids.push_back(id);
  std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return better(a, b); });
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

int64_t Population::select_parent(int island, Rng& rng) const {
  const std::vector<int64_t> elites = island_elites(island);
  const double r = rng.uniform();
  if (elites.empty()) return archive_.empty() ? 0 : archive_[rng.below(archive_.size())];
  if (r < config_.exploration_ratio) return elites[rng.below(elites.size())];
  if (r < config_.exploration_ratio + config_.exploitation_ratio && !archive_.empty())
    return archive_[rng.below(archive_.size())];
  const size_t top = std::max<size_t>(1, static_cast<size_t>(std::ceil(config_.elite_selection_ratio * elites.size())));
  return elites[rng.below(std::min(top, elites.size()))];
}

std::vector<int64_t> Population::inspirations(int island, int64_t parent, int num_top, int num_diverse, Rng& rng) const {
  std::vector<int64_t> out;
  for (int64_t id : island_elites(island)) {
    if (static_cast<int>(out.size()) >= num_top) break;
    if (id != parent) out.push_back(id);
  }
  std::vector<int64_t> pool;
  for (const auto& grid : islands_)
    for (const auto& [cell, id] : grid)
      if (id != parent && std::find(out.begin(), out.end(), id) == out.end() &&
          std::find(pool.begin(), pool.end(), id) == pool.end())
        pool.push_back(id);
  std::sort(pool.begin(), pool.end());
  for (int k = 0; k < num_diverse && !pool.empty(); ++k) {
    const size_t i = rng.below(pool.size());
    out.push_back(pool[i]);
    pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return out;
}

void Population::migrate() {
  if (islands_.size() < 2 || config_.migration_rate <= 0) return;
  std::vector<std::vector<int64_t>> emigrants;
  for (size_t i = 0; i < islands_.size(); ++i) {
    std::vector<int64_t> elites = island_elites(static_cast<int>(i));
    const size_t k = std::max<size_t>(1, static_cast<size_t>(std::lround(config_.migration_rate * elites.size())));
    if (elites.size() > k) elites.resize(k);
    emigrants.push_back(elites);
  }
  for (size_t i = 0; i < islands_.size(); ++i)
    for (int64_t id : emigrants[i]) place(static_cast<int>((i + 1) % islands_.size()), id);
}

nlohmann::json Population::to_json() const {
  nlohmann::json islands = nlohmann::json::array();
  for (const auto& grid : islands_) {
    nlohmann::json cells = nlohmann::json::object();
    for (const auto& [cell, id] : grid) cells[cell] = id;
    islands.push_back(cells);
  }
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& [lo, hi] : ranges_) ranges.push_back({lo, hi});
  return {{"islands", islands}, {"archive", archive_}, {"feature_ranges", ranges}};
}

void Population::from_json(const nlohmann::json& j) {
  const auto& islands = j.at("islands");
  if (islands.size() != islands_.size())
    fail("evolve", "the saved run has {} islands but the config says {}", islands.size(), islands_.size());
  for (size_t i = 0; i < islands_.size(); ++i) {
    islands_[i].clear();
    for (const auto& [cell, id] : islands[i].items()) islands_[i][cell] = id.get<int64_t>();
  }
  archive_ = j.at("archive").get<std::vector<int64_t>>();
  ranges_.clear();
  for (const auto& r : j.at("feature_ranges")) ranges_.push_back({r[0].get<double>(), r[1].get<double>()});
  have_ranges_ = !ranges_.empty();
}

}  // namespace gqa::evolve
