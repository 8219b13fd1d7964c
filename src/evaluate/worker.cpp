// Worker process: private result channel, program load, then correctness → microbenchmark → end to end,
// each reported as soon as it finishes so that a later crash or hang still leaves the earlier results.
#include "evaluate/worker.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "engine/cpu/attention_bf16.h"
#include "evaluate/cuda_stages.h"
#include "programs/loader.h"

namespace gqa::eval {

namespace {

struct Channel {
  int fd = -1;
  std::string nonce;
  void send(const nlohmann::json& j) const {
    const std::string line = fmt::format("{} {} {}\n", kResultPrefix, nonce, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    size_t off = 0;
    while (off < line.size()) {
      const ssize_t n = write(fd, line.data() + off, line.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }
  void stage(const char* name, const StageResult& r) const {
    send({{"stage", name}, {"passed", r.passed}, {"failure", r.failure}, {"metrics", r.metrics}, {"artifacts", r.artifacts}});
  }
};

}  // namespace

int run_worker(const WorkerRequest& req) {
  Channel ch;
  const char* nonce = std::getenv(kNonceEnv);
  ch.nonce = nonce ? nonce : "";
  unsetenv(kNonceEnv);
  std::fflush(stdout);
  ch.fd = dup(1);
  dup2(2, 1);  // whatever the program prints lands in stderr (an artifact), never in the result channel
  if (ch.fd < 0) fail("evaluate", "worker: cannot duplicate stdout");

  auto program = LoadedProgram::open(req.so_path);
  if (req.settings.target == Target::Cuda) {
    ch.send({{"stage", "loaded"}});
    // Stops at the first failed stage; "done" after a failure is ignored by the evaluator.
    const uint64_t calls = run_cuda_stages(program->entry(), req, [&](const char* name, const StageResult& r) { ch.stage(name, r); });
    ch.send({{"stage", "done"}, {"program_calls", calls}});
    return 0;
  }
  Kernel cand{"program", program->entry()};
  Kernel stock{"stock", &cpu::stock_attention};
  ch.send({{"stage", "loaded"}});

  StageResult c = run_correctness(cand, req.settings);
  ch.stage("correctness", c);
  if (!c.passed) return 0;
  if (req.bench) {
    StageResult b = run_microbench(cand, stock, req.settings);
    ch.stage("benchmark", b);
    if (!b.passed) return 0;
  }
  if (req.end_to_end) {
    StageResult e = run_end_to_end(cand.fn, stock.fn, req.settings);
    ch.stage("end_to_end", e);
    if (!e.passed) return 0;
  }
  ch.send({{"stage", "done"}, {"program_calls", cand.calls}});
  return 0;
}

}  // namespace gqa::eval
