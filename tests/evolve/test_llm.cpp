// The LLM path against OpenAI-compatible servers on loopback, started here. A scripted one: a good diff, a
// malformed diff, a diff outside the block, a full rewrite, 429 then success, 500s, a response slower than
// the timeout, invalid JSON; the run goes on and records why each failed. One that behaves as OpenAI does
// for reasoning models: refused request fields, reasoning in answers, wrong keys, unknown models.
#include <gtest/gtest.h>

#include "evolve/database.h"
#include "evolve/llm_client.h"
#include "loopback_server.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

namespace {

const char* kGoodDiff = "Bigger blocks.\n<<<<<<< SEARCH\nconstexpr int MAX_D = 256;\n=======\nconstexpr int MAX_D = 256;  // FASTER\n>>>>>>> REPLACE\n";

}  // namespace

TEST(EvolveLlm, ScriptedServerRunGoesOnAndRecordsFailures) {
  const std::string tunable = tunable_code();
  std::string rewrite = tunable;
  rewrite.replace(rewrite.find("constexpr int MAX_GROUP = 16;"), 29, "constexpr int MAX_GROUP = 16;  // rewritten, FASTER too");
  ScriptedServer server({
      answer(kGoodDiff),                                                              // 1: evaluated
      answer("<<<<<<< SEARCH\nconstexpr int MAX_D = 256;\n>>>>>>> REPLACE\n"),        // 2: malformed
      answer("<<<<<<< SEARCH\n#include <cmath>\n=======\n#include <cstdio>\n>>>>>>> REPLACE\n"),  // 3: outside
      answer("Full program:\n```cpp\n" + rewrite + "```\n"),                          // 4: full rewrite
      {429, "{\"error\": \"slow down\"}", 0},                                         // 5: retried...
      answer("<<<<<<< SEARCH\nconstexpr int MAX_ROWS = Q_TILE * MAX_GROUP;\n=======\nconstexpr int MAX_ROWS = MAX_GROUP * Q_TILE;\n>>>>>>> REPLACE\n"),
      {500, "{\"error\": \"boom\"}", 0},                                              // 6: 500 twice
      {500, "{\"error\": \"boom\"}", 0},
      {200, answer(kGoodDiff).body, 4000},                                            // 7: past the timeout twice
      {200, answer(kGoodDiff).body, 4000},
      {200, "{not json", 0},                                                          // 8: invalid JSON (no retry)
      // 9: the parent is now #2 (the best; ties go to the older program): an edit that changes nothing
      answer("<<<<<<< SEARCH\nconstexpr int MAX_D = 256;  // FASTER\n=======\nconstexpr int MAX_D = 256;  // FASTER\n>>>>>>> REPLACE\n"),
  });
  const std::string dir = temp_dir("llm");
  EvolveConfig c = parse_config(fmt::format("max_iterations: 9\nworkers: 1\nrandom_seed: 1\n"
                                            "llm:\n  api_base: http://127.0.0.1:{}/v1\n  models: [{{name: m1}}]\n"
                                            "  timeout_seconds: 2\n  retries: 1\n  retry_backoff_seconds: 0.05\n"
                                            "database: {{num_islands: 1, exploration_ratio: 0, exploitation_ratio: 0}}\n",
                                            server.port()),
                                "llm.yaml");
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir;
  o.print_progress = false;
  const RunSummary s = run_evolution(c, o, fake_evaluate);
  EXPECT_EQ(s.iterations, 9);
  EXPECT_GT(s.best_score, s.initial_score + 0.9);  // the good diff's FASTER

  Database db(dir + "/evolve.db");
  const auto attempts = db.attempts();
  ASSERT_EQ(attempts.size(), 10u);
  auto at = [&](int it) { return attempts.at(static_cast<size_t>(it)); };
  EXPECT_EQ(at(1).outcome, Outcome::Evaluated);
  EXPECT_EQ(at(2).outcome, Outcome::DiffFailed);
  EXPECT_NE(at(2).reason.find("malformed diff"), std::string::npos) << at(2).reason;
  EXPECT_EQ(at(3).outcome, Outcome::DiffFailed);
  EXPECT_NE(at(3).reason.find("outside the EVOLVE-BLOCK"), std::string::npos) << at(3).reason;
  EXPECT_EQ(at(4).outcome, Outcome::Evaluated);
  EXPECT_NE(db.program(at(4).program_id)->mutation.find("full rewrite"), std::string::npos);
  EXPECT_EQ(at(5).outcome, Outcome::Evaluated);  // after the 429
  EXPECT_EQ(at(6).outcome, Outcome::LlmError);
  EXPECT_NE(at(6).reason.find("HTTP 500"), std::string::npos) << at(6).reason;
  EXPECT_NE(at(6).reason.find("after 2 requests"), std::string::npos) << at(6).reason;
  EXPECT_EQ(at(7).outcome, Outcome::LlmError);
  EXPECT_NE(at(7).reason.find("no complete response within 2 s"), std::string::npos) << at(7).reason;
  EXPECT_EQ(at(8).outcome, Outcome::LlmError);
  EXPECT_NE(at(8).reason.find("not valid JSON"), std::string::npos) << at(8).reason;
  EXPECT_EQ(at(9).outcome, Outcome::Duplicate);
  EXPECT_EQ(server.left(), 0u);

  // Failure reasons reach later prompts; the request is a proper chat completion.
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 12u);
  const std::string last = reqs.back();
  EXPECT_NE(last.find("POST /v1/chat/completions"), std::string::npos);
  const auto body = nlohmann::json::parse(last.substr(last.find("\r\n\r\n") + 4));
  EXPECT_EQ(body["model"], "m1");
  const std::string prompt = body["messages"][1]["content"];
  EXPECT_NE(prompt.find("not valid JSON"), std::string::npos);
  EXPECT_NE(prompt.find("EVOLVE-BLOCK-START"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(EvolveLlm, UnreachableAndApiKey) {
  ScriptedServer server({answer("hi")});
  LlmConfig c;
  LlmModel m;
  m.name = "m";
  m.api_base = server.base();
  m.api_key_env = "GQA_TEST_LLM_KEY";
  c.models = {m};
  unsetenv("GQA_TEST_LLM_KEY");
  EXPECT_THROW(LlmClient{c}, gqa::Error);
  setenv("GQA_TEST_LLM_KEY", "sk-secret-123", 1);
  LlmClient client(c);
  LlmReply r = client.complete(0, "sys", "user");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.content, "hi");
  EXPECT_NE(server.requests().at(0).find("Authorization: Bearer sk-secret-123"), std::string::npos);
  // Nothing listens on port 1: a clear error that names the endpoint and never the key.
  c.models[0].api_base = "http://127.0.0.1:1/v1";
  c.retries = 1;
  c.retry_backoff_seconds = 0.01;
  r = LlmClient(c).complete(0, "sys", "user");
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.fatal);
  EXPECT_NE(r.error.find("cannot reach http://127.0.0.1:1/v1/chat/completions"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("sk-secret"), std::string::npos);
  EXPECT_EQ(r.requests, 2);
  unsetenv("GQA_TEST_LLM_KEY");
}

namespace {

const char* kKey = "sk-proj-test-key-0123456789";

nlohmann::json openai_error(const std::string& message, const std::string& type, const nlohmann::json& param,
                            const std::string& code) {
  return {{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}};
}

// What OpenAI's chat completions endpoint answers for a reasoning model (GPT-5 family, o-series), with
// error messages worded as OpenAI words them: 401 for a wrong key (the message
// quotes the key, here in full to check that it is cut out), 404 for an unknown model, 400 for
// `max_tokens` and for any temperature but 1. Answers come from `answers` in turn, each with `usage`.
class OpenAiServer : public LoopbackServer {
 public:
  struct Answer {
    nlohmann::json message;
    std::string finish_reason = "stop";
  };
  explicit OpenAiServer(std::vector<Answer> answers) : OpenAiServer(std::make_shared<State>(), std::move(answers)) {}

 private:
  struct State {
    std::mutex m;
    std::vector<Answer> answers;
    size_t next = 0;
  };
  OpenAiServer(std::shared_ptr<State> st, std::vector<Answer> answers)
      : LoopbackServer([st](const std::string& req) { return respond(*st, req); }) {
    std::lock_guard<std::mutex> l(st->m);
    st->answers = std::move(answers);
  }
  static Scripted respond(State& st, const std::string& req) {
    const auto bad = [](int status, const nlohmann::json& body) { return Scripted{status, body.dump(), 0}; };
    const size_t auth = req.find("Authorization: Bearer ");
    const std::string key = auth == std::string::npos ? "" : req.substr(auth + 22, req.find("\r\n", auth) - auth - 22);
    if (key != kKey)
      return bad(401, openai_error(fmt::format("Incorrect API key provided: {}. You can find your API key at "
                                               "https://platform.openai.com/account/api-keys.", key),
                                   "invalid_request_error", nullptr, "invalid_api_key"));
    const auto body = nlohmann::json::parse(req.substr(req.find("\r\n\r\n") + 4));
    const std::string model = body.at("model");
    if (model != "gpt-5-mini")
      return bad(404, openai_error(fmt::format("The model `{}` does not exist or you do not have access to it.", model),
                                   "invalid_request_error", nullptr, "model_not_found"));
    if (body.contains("max_tokens"))
      return bad(400, openai_error("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                   "'max_completion_tokens' instead.", "invalid_request_error", "max_tokens",
                                   "unsupported_parameter"));
    if (body.contains("temperature") && body["temperature"] != 1)
      return bad(400, openai_error(fmt::format("Unsupported value: 'temperature' does not support {} with this model. "
                                               "Only the default (1) value is supported.", body["temperature"].dump()),
                                   "invalid_request_error", "temperature", "unsupported_value"));
    std::lock_guard<std::mutex> l(st.m);
    const Answer& a = st.answers.at(st.next++ % st.answers.size());
    nlohmann::json msg = a.message;
    msg["role"] = "assistant";
    nlohmann::json usage = {{"prompt_tokens", 1000},
                            {"completion_tokens", 300},
                            {"total_tokens", 1300},
                            {"completion_tokens_details", {{"reasoning_tokens", 200}}}};
    return {200, nlohmann::json{{"id", "chatcmpl-1"}, {"object", "chat.completion"}, {"model", model},
                                {"choices", {{{"index", 0}, {"message", msg}, {"finish_reason", a.finish_reason}}}},
                                {"usage", usage}}.dump(), 0};
  }
};

OpenAiServer::Answer says(const std::string& content, const std::string& finish_reason = "stop",
                          const std::string& reasoning = "") {
  nlohmann::json m = {{"content", content}};
  if (!reasoning.empty()) m["reasoning_content"] = reasoning;
  return {m, finish_reason};
}

// The example config as a user points it at a hosted model: only api_base, the key and the model change.
EvolveConfig example_for(const std::string& base, const std::vector<std::pair<std::string, double>>& models) {
  EvolveConfig c = load_config(std::string(GQA_EXAMPLES_DIR) + "/config.yaml");
  LlmModel proto = c.llm.models.at(0);
  proto.api_base = base;
  proto.api_key_env = "GQA_TEST_OPENAI_KEY";
  c.llm.models.clear();
  for (auto& [name, weight] : models) {
    LlmModel m = proto;
    m.name = name;
    m.weight = weight;
    c.llm.models.push_back(m);
  }
  setenv("GQA_TEST_OPENAI_KEY", kKey, 1);
  return c;
}

RunOptions options(const std::string& dir, int iterations) {
  RunOptions o;
  o.initial_program = tunable_path();
  o.output_dir = dir;
  o.print_progress = false;
  o.iterations = iterations;
  return o;
}

std::string run_error(const EvolveConfig& c, const RunOptions& o) {
  try {
    run_evolution(c, o, fake_evaluate);
  } catch (const gqa::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// The example config against OpenAI's behaviours: the refused max_tokens and temperature are changed once
// and the run goes on; answers with reasoning (inline <think>, reasoning_content, a fence tagged c++) are
// read, a truncated answer is a recorded failure that says so, and the tokens are counted.
TEST(EvolveLlm, OpenAiReasoningModelRunsUnchanged) {
  const std::string tunable = tunable_code();
  std::string rewrite = tunable;
  rewrite.replace(rewrite.find("constexpr int MAX_GROUP = 16;"), 29, "constexpr int MAX_GROUP = 16;  // rewritten, FASTER");
  OpenAiServer server({
      says(std::string("<think>Maybe\n<<<<<<< SEARCH\nnot in the program\n</think>") + kGoodDiff),
      says("The whole program:\n```c++\n" + rewrite + "```\n", "stop", "Let me think."),
      says("<think>Still thinking about the tiles", "length"),
      says("```diff\n<<<<<<< SEARCH\nconstexpr int MAX_ROWS = Q_TILE * MAX_GROUP;\n=======\n"
           "constexpr int MAX_ROWS = MAX_GROUP * Q_TILE;\n>>>>>>> REPLACE\n```\n"),
  });
  const EvolveConfig c = example_for(server.base(), {{"gpt-5-mini", 1}});
  ASSERT_EQ(c.llm.models[0].temperature, 0.7);  // the example sets one, as local models want
  const std::string dir = temp_dir("openai");
  const RunSummary s = run_evolution(c, options(dir, 4), fake_evaluate);
  EXPECT_EQ(s.iterations, 4);
  EXPECT_GT(s.best_score, s.initial_score + 0.9);

  Database db(dir + "/evolve.db");
  const auto attempts = db.attempts();
  ASSERT_EQ(attempts.size(), 5u);
  EXPECT_EQ(attempts[1].outcome, Outcome::Evaluated) << attempts[1].reason;
  EXPECT_EQ(attempts[2].outcome, Outcome::Evaluated) << attempts[2].reason;
  EXPECT_NE(db.program(attempts[2].program_id)->mutation.find("full rewrite"), std::string::npos);
  EXPECT_EQ(attempts[3].outcome, Outcome::LlmError);
  EXPECT_NE(attempts[3].reason.find("cut off at max_tokens 4096 (finish_reason \"length\", 200 of the tokens were reasoning)"),
            std::string::npos) << attempts[3].reason;
  EXPECT_EQ(attempts[4].outcome, Outcome::Evaluated) << attempts[4].reason;

  // Refused twice (max_tokens, then temperature), then the request OpenAI takes, for every later call.
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 6u);
  auto body = [&](size_t i) { return nlohmann::json::parse(reqs.at(i).substr(reqs.at(i).find("\r\n\r\n") + 4)); };
  EXPECT_TRUE(body(0).contains("max_tokens") && body(0).contains("temperature"));
  EXPECT_TRUE(body(1).contains("max_completion_tokens") && body(1).contains("temperature"));
  for (size_t i = 2; i < reqs.size(); ++i) {
    EXPECT_EQ(body(i)["max_completion_tokens"], 4096);
    EXPECT_FALSE(body(i).contains("max_tokens") || body(i).contains("temperature")) << body(i).dump();
  }
  const std::string log = gqa::read_file(dir + "/evolve.log", "test");
  EXPECT_NE(log.find("the server wants 'max_completion_tokens' instead of 'max_tokens'"), std::string::npos) << log;
  EXPECT_NE(log.find("the server refuses temperature 0.7"), std::string::npos) << log;
  EXPECT_NE(log.find("tokens: 1000 prompt, 300 completion (200 reasoning)"), std::string::npos) << log;
  EXPECT_NE(log.find("gpt-5-mini: 4 calls (1 failed), "), std::string::npos) << log;
  EXPECT_NE(log.find(" per call), 4000 prompt + 1200 completion tokens, cost not priced"), std::string::npos) << log;
  EXPECT_EQ(db.load_state()->at("ensemble").at("completion_tokens"), nlohmann::json({1200}));
  std::filesystem::remove_all(dir);
}

// A wrong key stops a long run after max_fatal_errors answers with one clear error, without the key.
TEST(EvolveLlm, WrongKeyStopsTheRun) {
  OpenAiServer server({says(kGoodDiff)});
  EvolveConfig c = example_for(server.base(), {{"gpt-5-mini", 1}});
  setenv("GQA_TEST_OPENAI_KEY", "sk-wrong-key-98765", 1);
  const std::string dir = temp_dir("wrongkey");
  const std::string error = run_error(c, options(dir, 20));
  EXPECT_NE(error.find(fmt::format("[llm] model 'gpt-5-mini' at {}/chat/completions: HTTP 401 2 times in a row "
                                   "(Incorrect API key provided: <key>.", server.base())), std::string::npos) << error;
  EXPECT_NE(error.find("check the key in $GQA_TEST_OPENAI_KEY"), std::string::npos) << error;
  EXPECT_NE(error.find("no model is left"), std::string::npos) << error;
  EXPECT_EQ(error.find("sk-wrong"), std::string::npos) << error;
  EXPECT_EQ(server.requests().size(), 2u);  // no retries of a 401
  Database db(dir + "/evolve.db");
  ASSERT_EQ(db.attempts().size(), 3u);  // the initial program and the two refused iterations, resumable
  EXPECT_EQ(db.attempts()[2].outcome, Outcome::LlmError);
  EXPECT_EQ(db.attempts()[2].reason.find("sk-wrong"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// A model name the server does not know: dropped while another model answers, the end of the run alone.
TEST(EvolveLlm, UnknownModelIsDroppedOrStopsTheRun) {
  OpenAiServer server({says(kGoodDiff), says("<<<<<<< SEARCH\nconstexpr int MAX_ROWS = Q_TILE * MAX_GROUP;\n=======\n"
                                             "constexpr int MAX_ROWS = MAX_GROUP * Q_TILE;\n>>>>>>> REPLACE\n")});
  EvolveConfig c = example_for(server.base(), {{"gpt-5-mini", 1}, {"gpt-5-minii", 20}});
  c.llm.models[0].max_tokens_field = "max_completion_tokens";
  c.llm.models[0].temperature.reset();
  const std::string dir = temp_dir("typo");
  const RunSummary s = run_evolution(c, options(dir, 6), fake_evaluate);
  EXPECT_EQ(s.iterations, 6);
  Database db(dir + "/evolve.db");
  int typo = 0, good = 0;
  for (const Attempt& a : db.attempts()) {
    if (a.mutator == "gpt-5-minii") {
      ++typo;
      EXPECT_NE(a.reason.find("HTTP 404: The model `gpt-5-minii` does not exist"), std::string::npos) << a.reason;
    }
    good += a.mutator == "gpt-5-mini";
  }
  EXPECT_EQ(typo, 2);
  EXPECT_EQ(good, 4);
  const std::string log = gqa::read_file(dir + "/evolve.log", "test");
  EXPECT_NE(log.find("dropping model 'gpt-5-minii' at " + server.base() + "/chat/completions: HTTP 404 2 times in a row"),
            std::string::npos) << log;
  EXPECT_NE(log.find("check the model name and api_base"), std::string::npos) << log;
  std::filesystem::remove_all(dir);

  c = example_for(server.base(), {{"gpt-5-minii", 1}});
  const std::string error = run_error(c, options(dir, 10));
  EXPECT_NE(error.find("[llm] model 'gpt-5-minii' at " + server.base() + "/chat/completions: HTTP 404 2 times in a row"),
            std::string::npos) << error;
  std::filesystem::remove_all(dir);
}

// Every exchange is kept with its iteration: the prompt (with the ABI contract), the raw answer (reasoning
// included), usage, latency, retries and cost; a SEARCH part that matches only with whitespace ignored is
// applied and recorded; totals per model reach the log and the report; the key is stored nowhere.
TEST(EvolveLlm, ExchangesAreStored) {
  OpenAiServer server({
      says(std::string("<think>Maybe this</think>") + kGoodDiff),
      says("Reorder.\n<<<<<<< SEARCH\n    constexpr int MAX_ROWS = Q_TILE * MAX_GROUP;   \n=======\n"
           "constexpr int MAX_ROWS = MAX_GROUP * Q_TILE;\n>>>>>>> REPLACE\n", "stop", "Let me think."),
      says("no diff here"),
  });
  EvolveConfig c = example_for(server.base(), {{"gpt-5-mini", 1}});
  c.llm.models[0].input_price_per_mtok = 2;
  c.llm.models[0].output_price_per_mtok = 10;
  const std::string dir = temp_dir("exchanges");
  const RunSummary s = run_evolution(c, options(dir, 3), fake_evaluate);
  ASSERT_EQ(s.iterations, 3);

  Database db(dir + "/evolve.db", Database::Mode::ReadOnly);
  const auto calls = db.llm_calls();
  const auto attempts = db.attempts();
  ASSERT_EQ(calls.size(), 3u);
  const std::string initial = db.program(1)->code;
  for (size_t i = 0; i < calls.size(); ++i) {
    const LlmCall& call = calls[i];
    EXPECT_EQ(call.iteration, attempts.at(i + 1).iteration);
    EXPECT_EQ(call.model, "gpt-5-mini");
    EXPECT_EQ(call.url, server.base() + "/chat/completions");
    EXPECT_NE(call.system.find("typedef struct gqa_attention_args"), std::string::npos) << call.system.substr(0, 2000);
    EXPECT_NE(call.system.find("The evaluator's rules"), std::string::npos);
    EXPECT_NE(call.user.find("EVOLVE-BLOCK-START"), std::string::npos);
    EXPECT_EQ(call.status, 200);
    EXPECT_EQ(call.prompt_tokens, 1000);
    EXPECT_EQ(call.completion_tokens, 300);
    EXPECT_EQ(call.reasoning_tokens, 200);
    EXPECT_GT(call.latency_seconds, 0);
    ASSERT_TRUE(call.cost.has_value());
    EXPECT_DOUBLE_EQ(*call.cost, (1000 * 2.0 + 300 * 10.0) / 1e6);
  }
  EXPECT_NE(calls[0].user.find(initial), std::string::npos);  // the parent's code, as sent
  EXPECT_EQ(calls[0].retries, 2);  // max_tokens, then temperature, refused once each
  EXPECT_EQ(calls[1].retries, 0);
  EXPECT_EQ(calls[0].answer, std::string("<think>Maybe this</think>") + kGoodDiff);  // raw, reasoning kept
  EXPECT_TRUE(calls[0].improved);
  EXPECT_EQ(calls[1].reasoning, "Let me think.");
  EXPECT_EQ(calls[1].whitespace_matched, 1);
  EXPECT_EQ(attempts[2].outcome, Outcome::Evaluated) << attempts[2].reason;
  EXPECT_NE(db.program(attempts[2].program_id)->mutation.find("1 matched with whitespace ignored"), std::string::npos);
  EXPECT_EQ(calls[2].answer, "no diff here");
  EXPECT_EQ(attempts[3].outcome, Outcome::DiffFailed);
  EXPECT_FALSE(calls[2].improved);

  const std::string totals = "gpt-5-mini: 3 calls (0 failed), 1 improvements (0.33 per call), 3000 prompt + 900 completion tokens, cost 0.0150";
  EXPECT_NE(gqa::read_file(dir + "/evolve.log", "test").find(totals), std::string::npos);
  const std::string md = gqa::read_file(dir + "/report.md", "test");
  EXPECT_NE(md.find("| gpt-5-mini | 3 | 0 | 1 | 0.33 | 3000 | 900 | 600 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0.0150 |"), std::string::npos) << md;
  // The key went only into the Authorization header: not into the database, its log, the log or the report.
  for (const char* f : {"/evolve.db", "/evolve.db-wal", "/evolve.log", "/report.md"})
    if (std::filesystem::exists(dir + f)) EXPECT_EQ(gqa::read_file(dir + f, "test").find(kKey), std::string::npos) << f;
  std::filesystem::remove_all(dir);
}

TEST(EvolveLlm, EnsembleBandit) {
  LlmConfig c;
  c.models.resize(2);
  c.models[0].name = "a";
  c.models[1].name = "b";
  ModelEnsemble e(c);
  for (int i = 0; i < 20; ++i) e.record(0, false), e.record(1, true);
  gqa::Rng rng(2);
  int b = 0;
  for (int i = 0; i < 1000; ++i) b += e.choose(rng) == 1;
  EXPECT_GT(b, 900);  // b improved 21/22 vs a 1/22
  c.bandit = false;
  ModelEnsemble plain(c);
  plain.from_json(e.to_json());
  b = 0;
  for (int i = 0; i < 1000; ++i) b += plain.choose(rng) == 1;
  EXPECT_NEAR(b, 500, 80);
}
