// The page is a fixed shell (report_page.js/.css, compiled in by report_page.cpp.in) around one JSON
// object; all drawing happens in the browser from that object.
#include "evolve/report_html.h"

#include <filesystem>

#include "common/error.h"
#include "evolve/program_text.h"

namespace gqa::evolve {

// report_page.cpp (generated from report_page.js and report_page.css).
std::string_view report_page_script();
std::string_view report_page_style();

namespace {

std::string read_asset(const std::filesystem::path& p) {
  if (!std::filesystem::is_regular_file(p))
    fail("report", "{} is missing: run scripts/setup.sh (it fetches the chart library uPlot from npm and checks it), "
         "or pass --assets DIR", p.string());
  return read_file(p.string(), "report");
}

// Text placed inside a <script> or <style> element must not close it early.
std::string inline_safe(std::string s) {
  for (size_t at = 0; (at = s.find("</", at)) != std::string::npos; at += 3) s.replace(at, 2, "<\\/");
  return s;
}

nlohmann::json primitives(const nlohmann::json& j) {
  nlohmann::json m = nlohmann::json::object();
  if (j.is_object())
    for (auto& [k, v] : j.items())
      if (v.is_primitive()) m[k] = v;
  return m;
}

}  // namespace

ChartAssets load_chart_assets(const std::string& assets_dir) {
  const std::filesystem::path dir = std::filesystem::path(assets_dir) / "uplot";
  ChartAssets a;
  a.script = read_asset(dir / "uPlot.iife.min.js");
  a.style = read_asset(dir / "uPlot.min.css");
  return a;
}

nlohmann::json report_data(const RunRecord& run, const std::string& status) {
  nlohmann::json programs = nlohmann::json::array();
  for (const Program& p : run.programs) {
    nlohmann::json artifacts = nlohmann::json::object();
    for (auto& [k, v] : p.artifacts.items()) artifacts[k] = v.is_string() ? v.get<std::string>() : v.dump(2);
    programs.push_back({{"id", p.id},
                        {"parent", p.parent_id},
                        {"island", p.island},
                        {"generation", p.generation},
                        {"iteration", p.iteration},
                        {"score", p.combined_score},
                        {"correct", p.correct},
                        {"mutation", p.mutation},
                        {"knobs", knob_summary(p.code)},
                        {"created_at", p.created_at},
                        {"cell", p.features.is_object() ? p.features.value("cell", nlohmann::json::array()) : nlohmann::json::array()},
                        {"code", p.code},
                        {"metrics", primitives(p.metrics)},
                        {"artifacts", artifacts}});
  }
  nlohmann::json attempts = nlohmann::json::array();
  for (const Attempt& a : run.attempts)
    attempts.push_back({{"iteration", a.iteration}, {"island", a.island}, {"parent", a.parent_id}, {"mutator", a.mutator},
                        {"outcome", std::string(to_string(a.outcome))}, {"stage", a.stage}, {"reason", a.reason},
                        {"program", a.program_id}, {"seconds", a.seconds}, {"created_at", a.created_at}});
  nlohmann::json calls = nlohmann::json::array();
  for (const LlmCall& c : run.llm_calls)
    calls.push_back({{"iteration", c.iteration}, {"model", c.model}, {"url", c.url}, {"system", c.system}, {"user", c.user},
                     {"answer", c.answer}, {"reasoning", c.reasoning}, {"status", c.status}, {"error", c.error},
                     {"prompt_tokens", c.prompt_tokens}, {"completion_tokens", c.completion_tokens},
                     {"reasoning_tokens", c.reasoning_tokens}, {"latency_seconds", c.latency_seconds},
                     {"retries", c.retries}, {"cost", c.cost ? nlohmann::json(*c.cost) : nlohmann::json(nullptr)},
                     {"whitespace_matched", c.whitespace_matched}, {"improved", c.improved}});
  nlohmann::json totals = nlohmann::json::array();
  for (const ModelTotals& t : model_totals(run.llm_calls))
    totals.push_back({{"name", t.name}, {"calls", t.calls}, {"failed", t.failed}, {"improvements", t.improvements},
                      {"improvements_per_call", t.improvements_per_call()}, {"prompt_tokens", t.prompt_tokens},
                      {"completion_tokens", t.completion_tokens}, {"reasoning_tokens", t.reasoning_tokens},
                      {"mean_latency_seconds", t.calls ? t.latency_seconds / t.calls : 0.0}, {"retries", t.retries},
                      {"cost", t.cost ? nlohmann::json(*t.cost) : nlohmann::json(nullptr)}});
  nlohmann::json islands = nlohmann::json::array();
  for (size_t i = 0; i < run.num_islands(); ++i) islands.push_back(run.state["population"]["islands"][i]);
  const nlohmann::json db = run.state.value("database", nlohmann::json::object());
  return {{"dir", run.dir},
          {"status", status},
          {"generated_at", utc_timestamp()},
          {"target", std::string(target_name(run.target))},
          {"completed", run.state.value("completed", int64_t{0})},
          {"max_iterations", run.state.value("max_iterations", int64_t{0})},
          {"elapsed_seconds", run.state.value("elapsed_seconds", 0.0)},
          {"best_id", run.best_id},
          {"failures", run.state.value("failures", nlohmann::json::object())},
          {"feature_dimensions", db.value("feature_dimensions", nlohmann::json::array())},
          {"feature_bins", db.value("feature_bins", 0)},
          {"islands", islands},
          {"ensemble", run.state.value("ensemble", nlohmann::json::object())},
          {"model_totals", totals},
          {"programs", programs},
          {"attempts", attempts},
          {"llm_calls", calls}};
}

std::string html_report(const RunRecord& run, const std::string& status, const ChartAssets& assets) {
  const std::string data = report_data(run, status).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string s;
  s.reserve(data.size() + assets.script.size() + 64 * 1024);
  s += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  s += fmt::format("<title>gqa-evolve run: {}</title>\n", run.dir);
  s += "<style>\n" + inline_safe(assets.style) + "\n</style>\n<style>\n" + inline_safe(std::string(report_page_style())) + "\n</style>\n";
  s += "</head>\n<body>\n<div id=\"app\"><p>Loading...</p></div>\n";
  s += "<script type=\"application/json\" id=\"run-data\">" + inline_safe(data) + "</script>\n";
  s += "<script>\n" + inline_safe(assets.script) + "\n</script>\n";
  s += "<script>\n" + inline_safe(std::string(report_page_script())) + "\n</script>\n</body>\n</html>\n";
  return s;
}

}  // namespace gqa::evolve
