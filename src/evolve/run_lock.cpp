// flock on DIR/evolve.lock. O_CLOEXEC: evaluator children (exec'd workers) must not inherit the lock and
// keep a dead run's folder locked.
#include "evolve/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "evolve/database.h"

namespace gqa::evolve {

namespace {

std::string lock_path(const std::string& dir) { return (std::filesystem::path(dir) / "evolve.lock").string(); }

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

struct Holder {
  long pid = 0;
  std::string host, since;
};

// The file's one line: "pid HOST SINCE".
std::optional<Holder> read_holder(const std::string& path) {
  std::ifstream in(path);
  Holder h;
  if (!(in >> h.pid >> h.host >> h.since) || h.pid <= 0) return std::nullopt;
  return h;
}

std::string describe(const Holder& h) { return fmt::format("pid {} on host {} since {}", h.pid, h.host, h.since); }

}  // namespace

RunLock::RunLock(const std::string& dir) {
  const std::string path = lock_path(dir);
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("evolve", "{}: cannot open the run folder's lock: {}", path, std::strerror(errno));
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) fail("evolve", "{}: cannot lock: {}", path, std::strerror(err));
    const auto h = read_holder(path);
    fail("evolve",
         "{} is in use by another gqa-evolve ({}); only one process may write a run folder: wait for it to end or "
         "stop it, then --resume (`gqa-evolve report {}` reads a running run)",
         dir, h ? describe(*h) : "its pid is not recorded yet", dir);
  }
  const std::string line = fmt::format("{} {} {}\n", static_cast<long>(getpid()), host_name(), utc_timestamp());
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()))
    fail("evolve", "{}: cannot write: {}", path, std::strerror(errno));
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  if (ftruncate(fd_, 0) != 0) {  // no holder named once it ends (a kill leaves the line; holder() checks the pid)
  }
  close(fd_);  // closing the only descriptor releases the flock
}

std::optional<std::string> RunLock::holder(const std::string& dir) {
  const auto h = read_holder(lock_path(dir));
  if (!h) return std::nullopt;
  if (h->host != host_name()) return describe(*h) + " (another host: not checked)";
  if (kill(static_cast<pid_t>(h->pid), 0) != 0 && errno == ESRCH) return std::nullopt;
  return describe(*h);
}

}  // namespace gqa::evolve
