// fork + exec with pipes drained by poll(); the deadline is enforced from the parent, so nothing the child
// does (spin, sleep, ignore signals, fork grandchildren into its group) outlives it.
#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/error.h"

extern char** environ;

namespace gqa {

namespace {

void append_capped(std::string& s, const char* p, size_t n, size_t cap) {
  s.append(p, n);
  if (s.size() > cap + cap / 4) {  // keep the head and the tail: errors sit at both ends
    const size_t head = cap / 2;
    s = s.substr(0, head) + "\n[... output cut ...]\n" + s.substr(s.size() - (cap - head));
  }
}

}  // namespace

std::string ProcessResult::describe() const {
  if (timed_out) return fmt::format("timed out after {:.1f} s (killed)", seconds);
  if (signal) return fmt::format("killed by signal {} ({})", signal, strsignal(signal));
  return fmt::format("exit code {}", exit_code);
}

std::string self_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) fail("process", "/proc/self/exe: cannot resolve this executable's path: {}", ec.message());
  return p.string();
}

ProcessResult run_process(const ProcessOptions& o) {
  if (o.argv.empty()) fail("process", "no program given to run");
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    bool replaced = false;
    for (const auto& [k, v] : o.env) replaced |= s.compare(0, k.size() + 1, k + "=") == 0;
    if (!replaced) env_strings.push_back(std::move(s));
  }
  for (const auto& [k, v] : o.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const bool has_slash = o.argv[0].find('/') != std::string::npos;

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    fail("process", "{}: cannot create pipes: {}", o.argv[0], std::strerror(errno));
  // Small stdin data goes into a pipe before fork, so no writer has to run alongside the child.
  int in_pipe[2] = {-1, -1};
  if (!o.stdin_data.empty()) {
    if (o.stdin_data.size() > 65536) fail("process", "{}: stdin data of {} bytes is over 64 KiB", o.argv[0], o.stdin_data.size());
    if (pipe2(in_pipe, O_CLOEXEC) != 0) fail("process", "{}: cannot create a pipe: {}", o.argv[0], std::strerror(errno));
    if (write(in_pipe[1], o.stdin_data.data(), o.stdin_data.size()) != static_cast<ssize_t>(o.stdin_data.size()))
      fail("process", "{}: cannot write stdin data: {}", o.argv[0], std::strerror(errno));
    close(in_pipe[1]);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) fail("process", "{}: fork failed: {}", o.argv[0], std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // an evaluator that dies takes its workers along
    if (getppid() != parent) _exit(126);
    if (o.address_space_limit_bytes) {
      struct rlimit rl{o.address_space_limit_bytes, o.address_space_limit_bytes};
      setrlimit(RLIMIT_AS, &rl);
    }
    struct rlimit core{0, 0};  // crashing candidates must not litter the disk
    setrlimit(RLIMIT_CORE, &core);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    if (in_pipe[0] >= 0) {
      dup2(in_pipe[0], 0);
    } else {
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
    }
    if (has_slash)
      execve(argv[0], argv.data(), envp.data());
    else
      execvpe(argv[0], argv.data(), envp.data());
    const char* msg = "exec failed: ";
    ssize_t ignored = write(2, msg, std::strlen(msg));
    ignored = write(2, std::strerror(errno), std::strlen(std::strerror(errno)));
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before any kill
  if (in_pipe[0] >= 0) close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);

  ProcessResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  const auto deadline = t0 + std::chrono::duration<double>(o.timeout_seconds);
  while (open_fds > 0) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    const int wait_ms = static_cast<int>(std::chrono::duration<double, std::milli>(deadline - now).count()) + 1;
    const int n = poll(fds, 2, wait_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        append_capped(i == 0 ? r.out : r.err, buf, static_cast<size_t>(got), o.max_captured_bytes);
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  // Both pipes closed does not mean the child exited (it may have closed them itself): wait with the
  // same deadline, polling, then kill the whole group.
  int status = 0;
  pid_t done = 0;
  while (!r.timed_out) {
    done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      r.timed_out = true;
      break;
    }
    usleep(2000);
  }
  if (r.timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else {
    kill(-pid, SIGKILL);  // grandchildren left in its group
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.timed_out) {
    r.signal = SIGKILL;
  } else if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

}  // namespace gqa
