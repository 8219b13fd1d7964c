// Headless Chromium driven over the DevTools protocol through a pipe (--remote-debugging-pipe: the browser
// reads commands from fd 3 and writes replies and events to fd 4, each a JSON text ended by a NUL byte), so
// a test can load a page, see its console errors and exceptions, take a screenshot and click like a person.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gqa::evolve::testing {

// The browser on PATH (Debian's package: chromium), or "" when there is none.
inline std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t at = 0; at <= dirs.size();) {
    const size_t end = dirs.find(':', at) == std::string::npos ? dirs.size() : dirs.find(':', at);
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
      const std::string p = dirs.substr(at, end - at) + "/" + name;
      if (access(p.c_str(), X_OK) == 0) return p;
    }
    at = end + 1;
  }
  return "";
}

class CdpBrowser {
 public:
  // Starts `binary` headless with a fresh profile in profile_dir; its output goes to profile_dir/chromium.log.
  CdpBrowser(const std::string& binary, const std::string& profile_dir, int width, int height) {
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0) throw std::runtime_error("pipe");
    std::filesystem::create_directories(profile_dir);
    const std::string log = profile_dir + "/chromium.log";
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(out, 1);
      dup2(out, 2);
      dup2(to[0], 3);
      dup2(from[1], 4);
      for (int fd = 5; fd < 1024; ++fd) close(fd);
      const std::string profile = "--user-data-dir=" + profile_dir, size = fmt::format("--window-size={},{}", width, height);
      execl(binary.c_str(), binary.c_str(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--remote-debugging-pipe", profile.c_str(), size.c_str(), "about:blank", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to[0]);
    close(from[1]);
    out_ = to[1];
    in_ = from[0];
  }
  ~CdpBrowser() {
    try {
      call("Browser.close", {}, "", 5);
    } catch (const std::exception&) {
    }
    close(out_);
    close(in_);
    for (int i = 0; i < 50; ++i) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) != 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  CdpBrowser(const CdpBrowser&) = delete;
  CdpBrowser& operator=(const CdpBrowser&) = delete;

  // Sends one command (to a page session when session is set) and returns its result; throws on an error
  // reply or when no reply comes within `seconds`. Events read meanwhile are kept for events().
  nlohmann::json call(const std::string& method, const nlohmann::json& params = nlohmann::json::object(),
                      const std::string& session = "", double seconds = 30) {
    const int id = next_id_++;
    nlohmann::json msg = {{"id", id}, {"method", method}, {"params", params}};
    if (!session.empty()) msg["sessionId"] = session;
    const std::string text = msg.dump() + '\0';
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = write(out_, text.data() + done, text.size() - done);
      if (n <= 0) throw std::runtime_error("the browser closed its pipe (" + method + ")");
      done += static_cast<size_t>(n);
    }
    const auto deadline = after(seconds);
    while (true) {
      nlohmann::json m = read_message(deadline, method);
      if (m.contains("id") && m["id"] == id) {
        if (m.contains("error")) throw std::runtime_error(method + ": " + m["error"].dump());
        return m.value("result", nlohmann::json::object());
      }
      if (m.contains("method")) events_.push_back(std::move(m));
    }
  }

  // Reads events until one named `method` arrives (true) or `seconds` pass (false).
  bool wait_for_event(const std::string& method, double seconds) {
    for (const auto& e : events_)
      if (e["method"] == method) return true;
    const auto deadline = after(seconds);
    try {
      while (true) {
        nlohmann::json m = read_message(deadline, method);
        const bool hit = m.value("method", "") == method;
        if (m.contains("method")) events_.push_back(std::move(m));
        if (hit) return true;
      }
    } catch (const std::runtime_error&) {
      return false;
    }
  }

  const std::vector<nlohmann::json>& events() const { return events_; }

 private:
  static std::chrono::steady_clock::time_point after(double seconds) {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }
  nlohmann::json read_message(std::chrono::steady_clock::time_point deadline, const std::string& waiting_for) {
    while (true) {
      const size_t nul = buffer_.find('\0');
      if (nul != std::string::npos) {
        nlohmann::json m = nlohmann::json::parse(buffer_.substr(0, nul));
        buffer_.erase(0, nul + 1);
        return m;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) throw std::runtime_error("no answer from the browser for " + waiting_for);
      pollfd p{in_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[65536];
      const ssize_t n = read(in_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("the browser ended (waiting for " + waiting_for + ")");
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  int next_id_ = 1;
  std::string buffer_;
  std::vector<nlohmann::json> events_;
};

}  // namespace gqa::evolve::testing
