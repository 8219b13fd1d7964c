// Running a child process with a hard wall-clock limit: its own process group (killed whole with SIGKILL
// on timeout, never awaited politely), captured stdout/stderr, optional address-space limit.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace gqa {

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0] is the program (looked up on PATH when it has no '/')
  double timeout_seconds = 60;
  size_t address_space_limit_bytes = 0;  // RLIMIT_AS of the child; 0: unlimited
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) the environment
  size_t max_captured_bytes = 1 << 20;  // per stream; beyond it the middle is dropped, head and tail kept
  std::string stdin_data;  // the child's stdin (at most 64 KiB, written before it starts); empty: /dev/null
};

struct ProcessResult {
  int exit_code = -1;      // when it exited normally
  int signal = 0;          // the signal that ended it (SIGKILL after a timeout)
  bool timed_out = false;
  double seconds = 0;
  std::string out, err;    // captured stdout and stderr
  bool ok() const { return !timed_out && signal == 0 && exit_code == 0; }
  // "exit code 3", "killed by signal 11 (Segmentation fault)", "timed out after 10.0 s".
  std::string describe() const;
};

// Throws gqa::Error ("[process] ...") only when the child cannot be started at all (fork/pipe failure);
// a child that fails to exec reports exit code 127 with the reason on its stderr.
ProcessResult run_process(const ProcessOptions& options);

// This executable's path (/proc/self/exe), for re-executing it as a worker.
std::string self_executable();

}  // namespace gqa
