// Worker process: a relay that never loads the candidate and alone knows the nonce, and a child that
// loads the program, enters the sandbox and runs correctness → microbenchmark → end to end, appending each
// stage's result to memory shared with the relay as soon as it finishes.
#include "evaluate/worker.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "engine/cpu/attention_bf16.h"
#include "evaluate/cuda_stages.h"
#include "evaluate/sandbox.h"
#include "programs/loader.h"

namespace gqa::eval {

namespace {

// Result records, newline-terminated JSON, appended by the child; `committed` says how far they are
// complete.
struct SharedResults {
  static constexpr size_t kBytes = 8u << 20;
  std::atomic<uint64_t> committed;
  char data[kBytes - 64];
};

class ChildChannel {
 public:
  explicit ChildChannel(SharedResults* area) : area_(area) {}
  void send(const nlohmann::json& j) const {
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    const uint64_t at = area_->committed.load(std::memory_order_relaxed);
    if (at + line.size() > sizeof(area_->data)) return;  // full: the missing stage fails the evaluation
    std::memcpy(area_->data + at, line.data(), line.size());
    area_->committed.store(at + line.size(), std::memory_order_release);
  }
  void stage(const char* name, const StageResult& r) const {
    send({{"stage", name}, {"passed", r.passed}, {"failure", r.failure}, {"metrics", r.metrics}, {"artifacts", r.artifacts}});
  }

 private:
  SharedResults* area_;
};

// A stage that throws (the engine refusing the program's error code, say) is that stage's failure.
template <class F>
StageResult guarded(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    StageResult r;
    r.failure = fmt::format("the stage stopped with an error: {}", e.what());
    return r;
  }
}

[[noreturn]] void run_child(const WorkerRequest& req, SharedResults* area) {
  ChildChannel ch(area);
  try {
    auto program = LoadedProgram::open(req.so_path);
    if (req.settings.target == Target::Cuda) {
      // No seccomp filter on the CUDA target yet: the driver's needs (ioctl, device files, its threads)
      // are not characterised (docs/evaluator.md).
      ch.send({{"stage", "loaded"}});
      const uint64_t calls = run_cuda_stages(program->entry(), req, [&](const char* name, const StageResult& r) { ch.stage(name, r); });
      ch.send({{"stage", "done"}, {"program_calls", calls}});
      _exit(0);
    }
    std::unique_ptr<Engine> engine;
    if (req.end_to_end) engine = open_end_to_end_engine(req.settings);
    enter_sandbox(req.settings.threads);
    const ProcessState baseline = ProcessState::current();  // with OpenMP's default at `threads`
    Kernel cand{"program", program->entry(), &baseline};
    Kernel stock{"stock", &cpu::stock_attention, &baseline};
    ch.send({{"stage", "loaded"}});
    StageResult c = guarded([&] { return run_correctness(cand, req.settings); });
    ch.stage("correctness", c);
    if (c.passed && req.bench) {
      StageResult b = guarded([&] { return run_microbench(cand, stock, req.settings); });
      ch.stage("benchmark", b);
      c.passed = b.passed;
    }
    if (c.passed && req.end_to_end) {
      StageResult e = guarded([&] { return run_end_to_end(*engine, cand, stock, req.settings); });
      ch.stage("end_to_end", e);
    }
    ch.send({{"stage", "done"}, {"program_calls", cand.calls}});
    _exit(0);  // no destructors: nothing of the program's runs after its last call
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    _exit(1);
  }
}

}  // namespace

int run_worker(const WorkerRequest& req) {
  void* m = mmap(nullptr, sizeof(SharedResults), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail("evaluate", "worker: cannot map the result area: {}", std::strerror(errno));
  auto* area = new (m) SharedResults;
  area->committed.store(0);
  std::fflush(stdout);
  const pid_t relay = getpid();
  const pid_t child = fork();
  if (child < 0) fail("evaluate", "worker: fork failed: {}", std::strerror(errno));
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != relay) _exit(1);
    close(0);     // the nonce arrives there, for the relay only
    dup2(2, 1);   // whatever the program prints lands in stderr (an artifact)
    run_child(req, area);
  }
  // The relay: reads the nonce (after the fork, so it was never in the child's memory), forwards each
  // complete record tagged with it, and ends with how the child ended.
  char nonce[128] = {};
  size_t got = 0;
  for (ssize_t n; got + 1 < sizeof nonce && (n = read(0, nonce + got, sizeof nonce - 1 - got)) != 0;)
    if (n > 0) got += static_cast<size_t>(n);
    else if (errno != EINTR) break;
  while (got && (nonce[got - 1] == '\n' || nonce[got - 1] == ' ')) nonce[--got] = '\0';
  uint64_t sent = 0;
  auto forward = [&] {
    const uint64_t end = std::min<uint64_t>(area->committed.load(std::memory_order_acquire), sizeof(area->data));
    while (sent < end) {
      const char* start = area->data + sent;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', end - sent));
      if (!nl) break;
      const std::string line = fmt::format("{} {} {}\n", kResultPrefix, nonce, std::string_view(start, nl - start));
      for (size_t off = 0; off < line.size();) {
        const ssize_t n = write(1, line.data() + off, line.size() - off);
        if (n <= 0 && errno != EINTR) return;
        if (n > 0) off += static_cast<size_t>(n);
      }
      sent = static_cast<uint64_t>(nl - area->data) + 1;
    }
  };
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(child, &status, WNOHANG);
    forward();
    if (done == child) break;
    poll(nullptr, 0, 5);
  }
  nlohmann::json end = {{"stage", "worker_end"}};
  if (WIFEXITED(status)) end["exit_code"] = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) end["signal"] = WTERMSIG(status);
  const std::string line = fmt::format("{} {} {}\n", kResultPrefix, nonce, end.dump());
  if (write(1, line.data(), line.size()) < 0) return 1;
  return 0;
}

}  // namespace gqa::eval
