// report.html as a person uses it: a small real run (the gqa-evolve binary, the real evaluator with the
// benchmark and end-to-end stages off, an LLM server on the loopback), `gqa-evolve report DIR`, then the page
// opened from the file system in headless Chromium: it loads with no console errors or exceptions, the
// screenshot is not blank, and a click on a program in the lineage tree shows its code, its diff and the
// prompt and answer that made it. Chromium missing is a failure (scripts/setup.sh installs it), not a skip.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "cdp_browser.h"
#include "common/process.h"
#include "evolve/database.h"
#include "loopback_server.h"
#include "png_image.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

namespace {

std::string base64_decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string out;
  int bits = 0, acc = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// An answer as servers send it, with usage.
Scripted answer_with_usage(const std::string& content) {
  return {200, nlohmann::json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}, {"finish_reason", "stop"}}}},
                              {"usage", {{"prompt_tokens", 2400}, {"completion_tokens", 120}}}}.dump(), 0};
}

const char* kKvDiff = "Smaller key blocks fit L1.\n<<<<<<< SEARCH\nconstexpr int KV_BLOCK = 64;           // EVOLVE-KNOB values=16,32,64,128\n"
                      "=======\nconstexpr int KV_BLOCK = 32;           // EVOLVE-KNOB values=16,32,64,128\n>>>>>>> REPLACE\n";

// Runs a JavaScript expression in the page and returns its value.
nlohmann::json eval(CdpBrowser& b, const std::string& session, const std::string& expr) {
  const auto r = b.call("Runtime.evaluate", {{"expression", expr}, {"returnByValue", true}, {"awaitPromise", true}}, session);
  if (r.contains("exceptionDetails")) throw std::runtime_error("page script failed: " + r["exceptionDetails"].dump());
  return r["result"].value("value", nlohmann::json());
}

// A real mouse click in the middle of the element `selector` (scrolled into view first).
void click(CdpBrowser& b, const std::string& session, const std::string& selector) {
  const auto at = eval(b, session, "(function(){var n=document.querySelector('" + selector + "');if(!n)return null;"
                                   "n.scrollIntoView({block:'center'});var r=n.getBoundingClientRect();"
                                   "return {x:r.left+r.width/2,y:r.top+r.height/2};})()");
  ASSERT_TRUE(at.is_object()) << "no element " << selector;
  for (const char* type : {"mousePressed", "mouseReleased"})
    b.call("Input.dispatchMouseEvent", {{"type", type}, {"x", at["x"]}, {"y", at["y"]}, {"button", "left"}, {"clickCount", 1}}, session);
}

std::string text_of(CdpBrowser& b, const std::string& session, const std::string& selector) {
  const auto v = eval(b, session, "(function(){var n=document.querySelector('" + selector + "');return n?n.textContent:null;})()");
  return v.is_string() ? v.get<std::string>() : "<no " + selector + ">";
}

}  // namespace

TEST(EvolveReportBrowser, RealRunReportOpensAndClicks) {
  const std::string chromium = find_chromium();
  ASSERT_FALSE(chromium.empty()) << "chromium is not installed: scripts/setup.sh installs it (Debian package chromium)";
  ASSERT_TRUE(std::filesystem::exists(std::string(GQA_ASSETS_DIR) + "/uplot/uPlot.iife.min.js"))
      << GQA_ASSETS_DIR << "/uplot is missing: run scripts/setup.sh";

  ScriptedServer server({answer_with_usage(kKvDiff),
                         answer_with_usage("Tile fewer queries.\n<<<<<<< SEARCH\n   constexpr int Q_TILE = 8;              "
                                           "// EVOLVE-KNOB values=1,2,4,8,16   \n=======\nconstexpr int Q_TILE = 4;              "
                                           "// EVOLVE-KNOB values=1,2,4,8,16\n>>>>>>> REPLACE\n"),
                         answer_with_usage("<<<<<<< SEARCH\nconstexpr int Q_TILE = 8;\n>>>>>>> REPLACE\n")});
  const std::string dir = temp_dir("report-browser");
  const std::string cfg = dir + "/cfg.yaml", out = dir + "/run";
  gqa::write_file_atomic(cfg, fmt::format("max_iterations: 3\nrandom_seed: 3\nworkers: 1\ncheckpoint_interval: 0\n"
                                          "llm:\n  api_base: {}\n  models: [{{name: tiny-coder, input_price_per_mtok: 0.5, output_price_per_mtok: 1.5}}]\n"
                                          "  timeout_seconds: 30\n  retries: 0\n"
                                          "database: {{num_islands: 2, exploration_ratio: 0, exploitation_ratio: 0}}\n"
                                          "evaluator: {{bench: false, end_to_end: false, timeout_seconds: 120, cache_dir: '{}'}}\n",
                                          server.base(), GQA_TEST_CACHE_DIR), "test");
  gqa::ProcessOptions po;
  po.argv = {GQA_BINARY, "evolve", tunable_path(), "--config", cfg, "--output", out, "--quiet", "--assets", GQA_ASSETS_DIR};
  po.timeout_seconds = 600;
  gqa::ProcessResult r = gqa::run_process(po);
  ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
  po.argv = {GQA_BINARY, "report", out, "--assets", GQA_ASSETS_DIR};
  r = gqa::run_process(po);
  ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
  EXPECT_NE(r.out.find("not running"), std::string::npos) << r.out;

  Program first, second;
  std::string second_answer;
  {
    Database db(out + "/evolve.db", Database::Mode::ReadOnly);
    ASSERT_EQ(db.count_programs(), 3);  // the initial program and the two applied diffs
    first = *db.program(1);
    second = *db.program(2);
    ASSERT_EQ(db.llm_calls().size(), 3u);
    second_answer = db.llm_calls().at(0).answer;
    EXPECT_EQ(db.llm_calls().at(1).whitespace_matched, 1);
  }

  CdpBrowser browser(chromium, dir + "/profile", 1280, 1600);
  const std::string target = browser.call("Target.createTarget", {{"url", "about:blank"}})["targetId"];
  const std::string session = browser.call("Target.attachToTarget", {{"targetId", target}, {"flatten", true}})["sessionId"];
  for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable"}) browser.call(domain, {}, session);
  browser.call("Page.navigate", {{"url", "file://" + std::filesystem::absolute(out + "/report.html").string()}}, session);
  ASSERT_TRUE(browser.wait_for_event("Page.loadEventFired", 30)) << "report.html did not load";
  for (int i = 0; i < 50 && eval(browser, session, "document.body.getAttribute('data-ready')") != "1"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(eval(browser, session, "document.body.getAttribute('data-ready')"), "1") << "the page script did not finish";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the chart draws on the next frame
  EXPECT_EQ(eval(browser, session, "document.querySelectorAll('#score-chart canvas').length"), 1) << "no chart";
  EXPECT_EQ(eval(browser, session, "document.querySelectorAll('.node').length"), 3);

  // A drawn page: a sizeable share of pixels away from the background, in many colours.
  const std::string png = base64_decode(browser.call("Page.captureScreenshot", {{"format", "png"}}, session)["data"]);
  gqa::write_file_atomic(dir + "/screenshot.png", png, "test");
  const Image img = decode_png(png);
  ASSERT_GE(img.width, 800u);
  size_t ink = 0;
  std::set<uint32_t> colours;
  for (size_t i = 0; i < img.rgba.size(); i += 4) {
    const uint8_t* p = &img.rgba[i];
    if (std::abs(p[0] - 250) + std::abs(p[1] - 251) + std::abs(p[2] - 252) > 60) ++ink;
    colours.insert((uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2]);
  }
  const double share = static_cast<double>(ink) / (img.width * img.height);
  EXPECT_GT(share, 0.03) << "the screenshot is (nearly) blank: " << dir << "/screenshot.png";
  EXPECT_GT(colours.size(), 50u);

  // The page opens on the best program (#1: with the benchmark off every correct program scores 1). A click on
  // the LLM's child shows its code, its diff against #1, the prompt and the answer; a click back on #1 its code.
  EXPECT_EQ(text_of(browser, session, "#details h3"), "Program #1 (best)");
  click(browser, session, ".node[data-program=\"2\"] circle");
  EXPECT_EQ(text_of(browser, session, "#details h3"), "Program #2");
  EXPECT_EQ(text_of(browser, session, "#program-code"), second.code);
  const std::string diff = text_of(browser, session, "#program-diff");
  EXPECT_NE(diff.find("- constexpr int KV_BLOCK = 64;"), std::string::npos) << diff;
  EXPECT_NE(diff.find("+ constexpr int KV_BLOCK = 32;"), std::string::npos) << diff;
  EXPECT_NE(text_of(browser, session, "#program-prompt").find("# Current program (#1"), std::string::npos);
  EXPECT_EQ(text_of(browser, session, "#program-answer"), second_answer);
  click(browser, session, ".node[data-program=\"1\"] circle");
  EXPECT_EQ(text_of(browser, session, "#details h3"), "Program #1 (best)");
  EXPECT_EQ(text_of(browser, session, "#program-code"), first.code);
  EXPECT_NE(text_of(browser, session, "#llm").find("tiny-coder"), std::string::npos);

  std::vector<std::string> problems;
  for (const auto& e : browser.events()) {
    const std::string m = e["method"];
    if (m == "Runtime.exceptionThrown") problems.push_back(e["params"].dump());
    if (m == "Runtime.consoleAPICalled" && (e["params"]["type"] == "error" || e["params"]["type"] == "assert"))
      problems.push_back(e["params"].dump());
    if (m == "Log.entryAdded" && e["params"]["entry"]["level"] == "error") problems.push_back(e["params"].dump());
  }
  EXPECT_TRUE(problems.empty()) << "console errors:\n" << nlohmann::json(problems).dump(2);
  EXPECT_EQ(eval(browser, session, "document.getElementById('page-errors').hidden"), true);
  std::filesystem::remove_all(dir);
}
