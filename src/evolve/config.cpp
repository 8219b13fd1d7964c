// YAML → EvolveConfig with strict validation: every key is read by name, so anything left over is an
// unknown key, and every value is type- and range-checked with the full key path in the message.
#include "evolve/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "evolve/prompt_template.h"
#include "model/make_model.h"

namespace gqa::evolve {

namespace {

// One YAML mapping being read; remembers which keys were consumed so leftovers can be reported.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& file) : node_(node), path_(std::move(path)), file_(file) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) bad("", "must be a mapping");
  }

  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail("config", "{}: {} {}", file_, key.empty() ? (path_.empty() ? "top level" : path_) : key_path(key), what);
  }

  // The value under `key`, or an undefined node when it is absent or null (`key:` with no value).
  YAML::Node take(const std::string& key) {
    seen_.insert(key);
    if (!node_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& map = node_;
    YAML::Node n = map[key];
    if (!n || n.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    return n;
  }

  void get(const std::string& key, int& out, int lo, int hi) {
    YAML::Node n = take(key);
    if (!n) return;
    long long v;
    if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v)) bad(key, fmt::format("must be an integer, got '{}'", scalar(n)));
    if (v < lo || v > hi) bad(key, range_msg(lo, hi, std::to_string(v)));
    out = static_cast<int>(v);
  }
  void get(const std::string& key, uint64_t& out) {
    YAML::Node n = take(key);
    if (!n) return;
    unsigned long long v;
    if (!n.IsScalar() || !YAML::convert<unsigned long long>::decode(n, v))
      bad(key, fmt::format("must be a non-negative integer, got '{}'", scalar(n)));
    out = v;
  }
  void get(const std::string& key, double& out, double lo, double hi) {
    YAML::Node n = take(key);
    if (!n) return;
    double v;
    if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v))
      bad(key, fmt::format("must be a number, got '{}'", scalar(n)));
    if (v < lo || v > hi) bad(key, range_msg(lo, hi, fmt::format("{}", v)));
    out = v;
  }
  void get(const std::string& key, bool& out) {
    YAML::Node n = take(key);
    if (!n) return;
    bool v;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) bad(key, fmt::format("must be true or false, got '{}'", scalar(n)));
    out = v;
  }
  void get(const std::string& key, std::string& out) {
    YAML::Node n = take(key);
    if (!n) return;
    if (!n.IsScalar()) bad(key, "must be a string");
    out = n.Scalar();
  }
  void get(const std::string& key, std::vector<std::string>& out) {
    YAML::Node n = take(key);
    if (!n) return;
    if (!n.IsSequence()) bad(key, "must be a list of strings");
    out.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar()) bad(fmt::format("{}[{}]", key, i), "must be a string");
      out.push_back(n[i].Scalar());
    }
  }
  Section child(const std::string& key) { return Section(take(key), key_path(key), file_); }

  // Unknown keys are errors: configuration that silently does nothing is a bug.
  void done() const {
    if (!node_ || !node_.IsMap()) return;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      if (!seen_.count(k)) bad(k, "is not a known key");
    }
  }

 private:
  static std::string scalar(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : n.IsSequence() ? "<list>" : "<mapping>"; }
  static std::string range_msg(double lo, double hi, const std::string& got) {
    const double big = 1e15;
    if (hi >= big) return fmt::format("must be >= {}, got {}", lo, got);
    return fmt::format("must be in [{}, {}], got {}", lo, hi, got);
  }
  YAML::Node node_;
  std::string path_;
  const std::string& file_;
  std::set<std::string> seen_;
};

constexpr int kBig = 1 << 30;
constexpr double kHuge = 1e18;

// YAML → JSON for extra_body: plain scalars become true/false, integers or numbers when they read as such,
// quoted scalars stay strings.
nlohmann::json to_json(const YAML::Node& n) {
  if (!n || n.IsNull()) return nullptr;
  if (n.IsSequence()) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : n) a.push_back(to_json(e));
    return a;
  }
  if (n.IsMap()) {
    nlohmann::json o = nlohmann::json::object();
    for (auto it = n.begin(); it != n.end(); ++it) o[it->first.as<std::string>()] = to_json(it->second);
    return o;
  }
  const std::string& v = n.Scalar();
  if (n.Tag() == "!") return v;
  if (v == "true" || v == "false") return v == "true";
  long long i;
  if (YAML::convert<long long>::decode(n, i)) return i;
  double d;
  if (YAML::convert<double>::decode(n, d) && std::isfinite(d)) return d;
  return v;
}

// The request settings shared by the llm section and its models entries; `into` already holds the values
// to fall back to.
void read_request(Section& s, LlmModel& into) {
  s.get("api_base", into.api_base);
  while (!into.api_base.empty() && into.api_base.back() == '/') into.api_base.pop_back();
  s.get("api_key_env", into.api_key_env);
  if (YAML::Node t = s.take("temperature")) {
    double v;
    if (t.IsScalar() && t.Scalar() == "default") into.temperature.reset();
    else if (!t.IsScalar() || !YAML::convert<double>::decode(t, v) || !std::isfinite(v))
      s.bad("temperature", fmt::format("must be a number or 'default' (not sent), got '{}'", t.IsScalar() ? t.Scalar() : "<node>"));
    else if (v < 0 || v > 2) s.bad("temperature", fmt::format("must be in [0, 2], got {}", v));
    else into.temperature = v;
  }
  s.get("max_tokens", into.max_tokens, 1, kBig);
  s.get("max_tokens_field", into.max_tokens_field);
  if (into.max_tokens_field != "max_tokens" && into.max_tokens_field != "max_completion_tokens")
    s.bad("max_tokens_field", fmt::format("must be max_tokens or max_completion_tokens, got '{}'", into.max_tokens_field));
  double price = 0;
  if (s.take("input_price_per_mtok")) s.get("input_price_per_mtok", price, 0, kHuge), into.input_price_per_mtok = price;
  if (s.take("output_price_per_mtok")) s.get("output_price_per_mtok", price, 0, kHuge), into.output_price_per_mtok = price;
  s.get("reasoning_effort", into.reasoning_effort);
  static const std::set<std::string> efforts = {"", "none", "minimal", "low", "medium", "high", "xhigh"};
  if (!efforts.count(into.reasoning_effort))
    s.bad("reasoning_effort", fmt::format("must be none, minimal, low, medium, high or xhigh, got '{}'", into.reasoning_effort));
  if (YAML::Node e = s.take("extra_body")) {
    if (!e.IsMap()) s.bad("extra_body", "must be a mapping of request fields");
    // The fields the client writes itself have their own keys; streaming answers are not read.
    static const std::set<std::string> own = {"model", "messages", "stream", "temperature", "max_tokens",
                                              "max_completion_tokens", "reasoning_effort"};
    const nlohmann::json fields = to_json(e);
    for (auto& [k, v] : fields.items()) {
      if (own.count(k)) s.bad("extra_body." + k, "is set by the client (use the llm key of that name, if any)");
      into.extra_body[k] = v;
    }
  }
}

void read_llm(Section s, LlmConfig& c, const std::string& file) {
  read_request(s, c.defaults);
  YAML::Node models = s.take("models");
  if (models) {
    if (!models.IsSequence()) s.bad("models", "must be a list of {name, weight, ...}");
    for (size_t i = 0; i < models.size(); ++i) {
      Section m(models[i], s.key_path(fmt::format("models[{}]", i)), file);
      LlmModel model = c.defaults;
      m.get("name", model.name);
      m.get("weight", model.weight, 0, kHuge);
      if (model.name.empty()) m.bad("name", "is required");
      read_request(m, model);
      if (i > 0 && model.api_base.empty() != c.models.front().api_base.empty())
        m.bad("api_base", "must be set for every model or for none (models[0] differs)");
      m.done();
      c.models.push_back(model);
    }
  }
  s.get("timeout_seconds", c.timeout_seconds, 0.05, 86400);
  s.get("retries", c.retries, 0, 100);
  s.get("retry_backoff_seconds", c.retry_backoff_seconds, 0, 3600);
  s.get("max_fatal_errors", c.max_fatal_errors, 1, 1000);
  s.get("bandit", c.bandit);
  s.get("system_message", c.system_message);
  if (!c.defaults.api_base.empty() && c.models.empty()) s.bad("models", "needs at least one model when api_base is set");
  double total = 0;
  for (auto& m : c.models) total += m.weight;
  if (!c.models.empty() && total <= 0) s.bad("models", "weights must not all be 0");
  s.done();
}

// A template file named by `key`: read (relative to the config's folder) and its placeholders checked.
void read_template(Section& s, const std::string& key, const std::string& config_file, std::string& path, std::string& text) {
  s.get(key, path);
  if (path.empty()) return;
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(config_file).parent_path() / p;
  if (!std::filesystem::is_regular_file(p)) s.bad(key, fmt::format("names '{}', which is not a file", p.string()));
  text = read_file(p.string(), "config");
  if (const auto problem = template_problem(text)) s.bad(key, fmt::format("({}): {}", p.string(), *problem));
}

}  // namespace

std::optional<double> LlmModel::cost(int64_t prompt_tokens, int64_t completion_tokens) const {
  if (!priced()) return std::nullopt;
  return (static_cast<double>(prompt_tokens) * input_price_per_mtok.value_or(0) +
          static_cast<double>(completion_tokens) * output_price_per_mtok.value_or(0)) / 1e6;
}

EvolveConfig parse_config(const std::string& yaml_text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail("config", "{}: not valid YAML: {}", name, e.what());
  }
  EvolveConfig c;
  c.path = name;
  Section top(root, "", name);
  top.get("max_iterations", c.max_iterations, 0, kBig);
  top.get("checkpoint_interval", c.checkpoint_interval, 0, kBig);
  top.get("random_seed", c.random_seed);
  top.get("diff_based_evolution", c.diff_based_evolution);
  top.get("max_code_length", c.max_code_length, 100, kBig);
  top.get("early_stopping_patience", c.early_stopping_patience, 0, kBig);
  top.get("target_score", c.target_score, 0, kHuge);
  std::string target(target_name(c.target));
  top.get("target", target);
  try {
    c.target = parse_target(target);
  } catch (const Error&) {
    top.bad("target", fmt::format("must be cpu or cuda, got '{}'", target));
  }
  top.get("workers", c.workers, 0, 1024);

  read_llm(top.child("llm"), c.llm, name);

  Section p = top.child("prompt");
  p.get("num_top_programs", c.prompt.num_top_programs, 0, 100);
  p.get("num_diverse_programs", c.prompt.num_diverse_programs, 0, 100);
  p.get("include_artifacts", c.prompt.include_artifacts);
  p.get("max_artifact_bytes", c.prompt.max_artifact_bytes, 0, kBig);
  p.get("history", c.prompt.history, 0, 1000);
  read_template(p, "system_template", name, c.prompt.system_template, c.prompt.system_template_text);
  read_template(p, "user_template", name, c.prompt.user_template, c.prompt.user_template_text);
  if (!c.prompt.system_template.empty() && !c.llm.system_message.empty())
    p.bad("system_template", "and llm.system_message are both set: keep one");
  p.done();

  Section d = top.child("database");
  DatabaseConfig& db = c.database;
  d.get("num_islands", db.num_islands, 1, 1024);
  d.get("migration_interval", db.migration_interval, 1, kBig);
  d.get("migration_rate", db.migration_rate, 0, 1);
  d.get("feature_dimensions", db.feature_dimensions);
  if (db.feature_dimensions.empty() || db.feature_dimensions.size() > 4)
    d.bad("feature_dimensions", fmt::format("must list 1 to 4 features, got {}", db.feature_dimensions.size()));
  for (size_t i = 0; i < db.feature_dimensions.size(); ++i) {
    const std::string& f = db.feature_dimensions[i];
    if (f != "complexity" && f != "diversity" && f.rfind("metric:", 0) != 0)
      d.bad(fmt::format("feature_dimensions[{}]", i),
            fmt::format("must be complexity, diversity or metric:<name>, got '{}'", f));
  }
  d.get("feature_bins", db.feature_bins, 1, 1000);
  d.get("archive_size", db.archive_size, 1, kBig);
  d.get("diversity_reference_size", db.diversity_reference_size, 1, 10000);
  d.get("exploration_ratio", db.exploration_ratio, 0, 1);
  d.get("exploitation_ratio", db.exploitation_ratio, 0, 1);
  d.get("elite_selection_ratio", db.elite_selection_ratio, 0, 1);
  if (db.exploration_ratio + db.exploitation_ratio > 1 + 1e-9)
    d.bad("exploitation_ratio", fmt::format("plus exploration_ratio must be <= 1, got {} + {}", db.exploitation_ratio,
                                            db.exploration_ratio));
  d.done();

  Section o = top.child("offline");
  o.get("crossover_rate", c.offline.crossover_rate, 0, 1);
  o.get("jump_rate", c.offline.jump_rate, 0, 1);
  o.get("max_knobs_per_mutation", c.offline.max_knobs_per_mutation, 1, 1000);
  o.get("max_attempts", c.offline.max_attempts, 1, kBig);
  o.done();

  Section e = top.child("evaluator");
  EvaluatorConfig& ev = c.evaluator;
  e.get("timeout_seconds", ev.timeout_seconds, 1, 86400);
  e.get("bench", ev.bench);
  e.get("bench_seconds", ev.bench_seconds, 0, 3600);
  e.get("min_reps", ev.min_reps, 1, kBig);
  e.get("end_to_end", ev.end_to_end);
  e.get("threads", ev.threads, 0, 4096);
  e.get("memory_limit_gb", ev.memory_limit_gb, 0.25, 1e6);
  e.get("cache_dir", ev.cache_dir);
  e.get("cuda_arch", ev.cuda_arch);
  e.get("seed", ev.seed);
  std::string shapes_of;
  e.get("shapes_of", shapes_of);
  if (!shapes_of.empty()) {
    const auto presets = preset_names();
    if (!std::filesystem::is_directory(shapes_of) && std::find(presets.begin(), presets.end(), shapes_of) == presets.end())
      e.bad("shapes_of", fmt::format("must be a model directory or a preset ({}), got '{}'", fmt::join(presets, ", "),
                                     shapes_of));
    ev.heads = eval::head_geometry_of(shapes_of);  // a model directory's config.json errors name that file
  }
  e.done();

  top.done();
  return c;
}

EvolveConfig load_config(const std::string& path) { return parse_config(read_file(path, "config"), path); }

}  // namespace gqa::evolve
