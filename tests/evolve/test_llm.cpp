// The LLM path against an OpenAI-compatible server on loopback, started here, serving scripted answers:
// a good diff, a malformed diff, a diff outside the block, a full rewrite, 429 then success, 500s, a
// response slower than the timeout, invalid JSON. The run goes on and records why each failed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "evolve/database.h"
#include "evolve/llm_client.h"
#include "test_helpers.h"

using namespace gqa::evolve;
using namespace gqa::evolve::testing;

namespace {

struct Scripted {
  int status = 200;
  std::string body;
  int delay_ms = 0;
};

// One response per connection, in order; each connection is served on its own thread so a slow answer
// does not hold up the next request.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::deque<Scripted> script) : script_(std::move(script)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;  // a free port
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 16) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    for (auto& t : handlers_) t.join();
    close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(m_);
    return requests_;
  }
  size_t left() {
    std::lock_guard<std::mutex> l(m_);
    return script_.size();
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      Scripted s{500, "{\"error\": \"script exhausted\"}", 0};
      {
        std::lock_guard<std::mutex> l(m_);
        if (!script_.empty()) s = script_.front(), script_.pop_front();
      }
      handlers_.emplace_back([this, c, s] { handle(c, s); });
    }
  }
  void handle(int c, const Scripted& s) {
    std::string req;
    char buf[4096];
    size_t need = std::string::npos;
    while (need == std::string::npos || req.size() < need) {
      const ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
      const size_t hdr = req.find("\r\n\r\n");
      if (hdr != std::string::npos && need == std::string::npos) {
        const size_t cl = req.find("Content-Length: ");
        need = hdr + 4 + (cl != std::string::npos && cl < hdr ? std::stoul(req.substr(cl + 16)) : 0);
      }
    }
    {
      std::lock_guard<std::mutex> l(m_);
      requests_.push_back(req);
    }
    for (int waited = 0; waited < s.delay_ms && !stop_; waited += 10) usleep(10000);
    const std::string resp = fmt::format("HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                                         "Connection: close\r\n\r\n{}", s.status, s.body.size(), s.body);
    send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    close(c);
  }
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::deque<Scripted> script_;
  std::vector<std::string> requests_;
  std::thread thread_;
  std::vector<std::thread> handlers_;
};

Scripted answer(const std::string& content) {
  return {200, nlohmann::json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}}}.dump(), 0};
}

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
  const int port = server.port();
  LlmConfig c;
  c.models = {{"m", 1}};
  c.api_base = fmt::format("http://127.0.0.1:{}/v1/", port);
  c.api_key_env = "GQA_TEST_LLM_KEY";
  unsetenv("GQA_TEST_LLM_KEY");
  EXPECT_THROW(LlmClient{c}, gqa::Error);
  setenv("GQA_TEST_LLM_KEY", "sk-secret-123", 1);
  LlmClient client(c);
  LlmReply r = client.complete("m", "sys", "user");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.content, "hi");
  EXPECT_NE(server.requests().at(0).find("Authorization: Bearer sk-secret-123"), std::string::npos);
  // Nothing listens on port 1: a clear error that names the endpoint and never the key.
  c.api_base = "http://127.0.0.1:1/v1";
  c.retries = 1;
  c.retry_backoff_seconds = 0.01;
  r = LlmClient(c).complete("m", "sys", "user");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("cannot reach http://127.0.0.1:1/v1/chat/completions"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find("sk-secret"), std::string::npos);
  EXPECT_EQ(r.requests, 2);
  unsetenv("GQA_TEST_LLM_KEY");
}

TEST(EvolveLlm, EnsembleBandit) {
  LlmConfig c;
  c.models = {{"a", 1}, {"b", 1}};
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
