// A loopback HTTP server for the LLM tests: an OpenAI-compatible endpoint on 127.0.0.1 (a free port),
// answering each request with what `respond` makes of it; ScriptedServer answers from a list in order.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gqa::evolve::testing {

struct Scripted {
  int status = 200;
  std::string body;
  int delay_ms = 0;
};

// A loopback HTTP server: one response per connection, made by `respond` from the whole request; each
// connection is served on its own thread so a slow answer does not hold up the next request.
class LoopbackServer {
 public:
  using Respond = std::function<Scripted(const std::string& request)>;
  explicit LoopbackServer(Respond respond) : respond_(std::move(respond)) {
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
  ~LoopbackServer() {
    stop_ = true;
    thread_.join();
    for (auto& t : handlers_) t.join();
    close(fd_);
  }
  int port() const { return port_; }
  std::string base() const { return fmt::format("http://127.0.0.1:{}/v1", port_); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(m_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      handlers_.emplace_back([this, c] { handle(c); });
    }
  }
  void handle(int c) {
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
    const Scripted s = respond_(req);
    for (int waited = 0; waited < s.delay_ms && !stop_; waited += 10) usleep(10000);
    const std::string resp = fmt::format("HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                                         "Connection: close\r\n\r\n{}", s.status, s.body.size(), s.body);
    send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    close(c);
  }
  Respond respond_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::vector<std::string> requests_;
  std::thread thread_;
  std::vector<std::thread> handlers_;
};

// Scripted answers, one per request in order; a 500 once the script is used up. The script is shared with
// the server's threads, which may outlive this object's own members while they are joined.
class ScriptedServer : public LoopbackServer {
  struct Script {
    std::mutex m;
    std::deque<Scripted> q;
  };

 public:
  explicit ScriptedServer(std::deque<Scripted> script) : ScriptedServer(std::make_shared<Script>(), std::move(script)) {}
  size_t left() {
    std::lock_guard<std::mutex> l(script_->m);
    return script_->q.size();
  }

 private:
  ScriptedServer(std::shared_ptr<Script> s, std::deque<Scripted> q)
      : LoopbackServer([s](const std::string&) -> Scripted {
          std::lock_guard<std::mutex> l(s->m);
          if (s->q.empty()) return {500, "{\"error\": \"script exhausted\"}", 0};
          Scripted next = s->q.front();
          s->q.pop_front();
          return next;
        }),
        script_(std::move(s)) {
    std::lock_guard<std::mutex> l(script_->m);
    script_->q = std::move(q);
  }
  std::shared_ptr<Script> script_;
};

inline Scripted answer(const std::string& content) {
  return {200, nlohmann::json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}}}.dump(), 0};
}

}  // namespace gqa::evolve::testing
