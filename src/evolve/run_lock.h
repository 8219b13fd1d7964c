// One writer per run folder: DIR/evolve.lock, held with flock(2) for as long as the run lives. The kernel
// releases it when the process ends however it ends (kill -9 included), so a stale file never blocks a
// resume; the file's text only names the holder for the error a second writer gets.
#pragma once
#include <optional>
#include <string>

namespace gqa::evolve {

class RunLock {
 public:
  // Takes the lock or throws "[evolve] DIR is in use by gqa-evolve pid N on host H (since T) ...".
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // Who holds DIR's lock, judged without touching the lock itself (a reader must not disturb a run): the
  // holder recorded in the file when it is a live process on this host ("pid N on host H since T"), else
  // nullopt. A holder on another host cannot be checked and is reported as recorded.
  static std::optional<std::string> holder(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace gqa::evolve
