// Worker process: a relay that never loads the candidate, alone knows the nonce and judges, and a child that
// loads the program, enters the sandbox and calls it. For host entries (both targets) the relay makes every
// input, checks every output and writes the correctness and benchmark records itself; the child only calls
// kernels when asked (channel.h: on the CPU target on the arena's pages, on the CUDA target on device copies
// of them, copied back) and runs the end-to-end stage. A device entry (CUDA, ABI v2) is still judged in the
// child, which appends each stage's result to memory shared with the relay.
#include "evaluate/worker.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "engine/cpu/attention_bf16.h"
#include "evaluate/channel.h"
#include "evaluate/cuda_device_stages.h"
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

// Room for the largest buffers of one correctness case or one benchmark shape (~0.3 GiB today: the CUDA
// target's decode_b1_kv32768, two sets of 128 MiB of K/V), reserved (MAP_NORESERVE): only the pages used are
// ever backed.
constexpr size_t kArenaBytes = size_t{2} << 30;

nlohmann::json stage_record(const char* name, const StageResult& r) {
  return {{"stage", name}, {"passed", r.passed}, {"failure", r.failure}, {"metrics", r.metrics}, {"artifacts", r.artifacts}};
}

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
  void stage(const char* name, const StageResult& r) const { send(stage_record(name, r)); }

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

// Makes the arena's pages as the relay asks: everything used so far read-write again, then each range.
void apply_protections(const Control& c) {
  if (c.reset_bytes && mprotect(reinterpret_cast<void*>(c.reset_begin), c.reset_bytes, PROT_READ | PROT_WRITE) != 0)
    throw Error(fmt::format("worker: mprotect of the arena failed: {}", std::strerror(errno)));
  const int n = std::min(c.num_protections, Control::kMaxProtections);
  for (int i = 0; i < n; ++i)
    if (mprotect(reinterpret_cast<void*>(c.prot[i].begin), c.prot[i].bytes, c.prot[i].prot) != 0)
      throw Error(fmt::format("worker: mprotect of an arena buffer failed: {}", std::strerror(errno)));
}

void set_failure(Control& c, const std::string& text) {
  const size_t n = std::min(text.size(), sizeof c.failure - 1);
  std::memcpy(c.failure, text.data(), n);
  c.failure[n] = '\0';
}

double timed(Kernel& k, const gqa_attention_args& a, int& rc) {
  const auto t0 = std::chrono::steady_clock::now();
  rc = k(a);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The candidate's process answering the relay: waits for each request, handles it (Nop and Protect here, the
// rest by `handle`), and answers. Returns only by exiting (Op::Done).
template <class Handle>
[[noreturn]] void serve_requests(Control* ctl, Handle&& handle) {
  for (uint32_t seen = 0;;) {
    uint32_t n;
    while ((n = ctl->request.load(std::memory_order_acquire)) == seen) futex_wait(ctl->request, seen, -1);
    seen = n;
    if (ctl->op == Op::Protect) apply_protections(*ctl);
    else if (ctl->op != Op::Nop) handle(*ctl);
    ctl->answered.store(seen, std::memory_order_release);
    futex_wake(ctl->answered);
  }
}

// The CPU target's candidate process: calls kernels when the relay asks, and answers. It decides nothing.
[[noreturn]] void serve_relay(const WorkerRequest& req, Control* ctl, const ChildChannel& ch, LoadedProgram& program) {
  std::unique_ptr<Engine> engine;
  if (req.end_to_end) engine = open_end_to_end_engine(req.settings);
  enter_sandbox(req.settings.threads);
  const ProcessState baseline = ProcessState::current();  // with OpenMP's default at `threads`
  Kernel cand{"program", program.entry(), &baseline};
  Kernel stock{"stock", &cpu::stock_attention, &baseline};
  ch.send({{"stage", "loaded"}});
  serve_requests(ctl, [&](Control& c) {
    switch (c.op) {
      case Op::Call: {
        const gqa_attention_args a = c.args;
        const int rc = cand(a);
        c.rc = rc;
        set_failure(c, rc == GQA_OK ? "" : cand.describe(rc));
        break;
      }
      case Op::Repetition: {
        const gqa_attention_args a = c.args, b = c.args2;
        int rc = GQA_OK, rc_stock = GQA_OK;
        double tc = 0, ts = 0;
        if (c.stock_first) {
          ts = timed(stock, b, rc_stock);
          // Nothing of the stock kernel's result for these inputs is left for the candidate to copy.
          std::memset(b.out, 0xFF, static_cast<size_t>(b.total_q) * b.num_q_heads * b.head_dim * 2);
          std::memset(b.workspace, 0xFF, b.workspace_bytes);
          tc = timed(cand, a, rc);
        } else {
          tc = timed(cand, a, rc);
          ts = timed(stock, b, rc_stock);
        }
        c.rc = rc, c.rc_stock = rc_stock, c.cand_seconds = tc, c.stock_seconds = ts;
        set_failure(c, rc != GQA_OK ? cand.describe(rc) : rc_stock != GQA_OK ? stock.describe(rc_stock) : "");
        break;
      }
      case Op::EndToEnd: {
        E2eExchange x;
        x.tokens.assign(c.tokens, c.tokens + std::clamp(c.num_tokens, 0, Control::kMaxTokens));
        x.logits_out = reinterpret_cast<float*>(c.logits_at);
        x.capacity = c.logits_floats;
        ch.stage("end_to_end", guarded([&] { return run_end_to_end(*engine, cand, stock, req.settings, &x); }));
        break;
      }
      case Op::Done:
        ch.send({{"stage", "done"}, {"program_calls", cand.calls}});
        _exit(0);  // no destructors: nothing of the program's runs after its last call
      default:  // a CUDA request: never asked on this target
        c.rc = -1;
        set_failure(c, "a request the CPU target does not serve");
    }
  });
}

// The CUDA target's candidate process (host entries): answers the relay's CUDA requests through `cuda`
// (cuda_stages.cpp) and runs the end-to-end stage. It decides nothing the relay does not check.
[[noreturn]] void serve_relay_cuda(Control* ctl, const ChildChannel& ch, CudaChild& cuda) {
  ch.send({{"stage", "loaded"}});
  serve_requests(ctl, [&](Control& c) {
    switch (c.op) {
      case Op::EndToEnd:
        ch.stage("end_to_end", guarded([&] { return cuda.end_to_end(); }));
        break;
      case Op::Done:
        ch.send({{"stage", "done"}, {"program_calls", cuda.calls()}});
        _exit(0);  // no destructors: nothing of the program's runs after its last call
      default:
        cuda.serve(c);
    }
  });
}

[[noreturn]] void run_child(const WorkerRequest& req, SharedResults* area, Control* ctl) {
  ChildChannel ch(area);
  try {
    if (!req.lto_path.empty()) {  // a device entry: its stages on the GPU, judged in this process like the CUDA ones
      const std::string lto = read_file(req.lto_path, "worker");
      ch.send({{"stage", "loaded"}});
      StageResult c = guarded([&] { return run_device_correctness(lto, req.settings); });
      const bool passed = c.passed;
      ch.stage("correctness", c);
      if (passed && req.end_to_end) ch.stage("end_to_end", guarded([&] {
        return run_device_end_to_end(lto, req.settings, DeviceE2eSettings{});
      }));
      ch.send({{"stage", "done"}});
      _exit(0);
    }
    auto program = LoadedProgram::open(req.so_path);
    if (req.settings.target == Target::Cuda) {
      auto cuda = CudaChild::open(program->entry(), req);  // the sandbox (if asked) is entered here
      serve_relay_cuda(ctl, ch, *cuda);
    }
    serve_relay(req, ctl, ch, *program);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    _exit(1);
  }
}

template <class T>
T* shared_map(const char* what) {
  void* m = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail("evaluate", "worker: cannot map the {}: {}", what, std::strerror(errno));
  return static_cast<T*>(m);
}

// The relay's output: records tagged with the nonce on stdout, the child's forwarded from the record
// area. For a host entry the child may only send the record the relay is waiting for ("loaded", then
// "end_to_end" while that stage runs, then "done"); anything else it wrote is replaced by a record the
// evaluator refuses, so a record forged in the shared area breaks the protocol instead of counting.
class RelayOutput {
 public:
  RelayOutput(std::string nonce, const SharedResults* area) : nonce_(std::move(nonce)), area_(area) {}
  void write_line(std::string_view record) {
    const std::string line = fmt::format("{} {} {}\n", kResultPrefix, nonce_, record);
    for (size_t off = 0; off < line.size();) {
      const ssize_t n = write(1, line.data() + off, line.size() - off);
      if (n <= 0 && errno != EINTR) return;
      if (n > 0) off += static_cast<size_t>(n);
    }
  }
  void emit(const nlohmann::json& j) {
    forward();
    write_line(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  // `expect`: the one stage the child may send now; nullptr: any (a device entry, judged in the child).
  // With `capture`, that record is kept (`captured`) instead of forwarded, for the relay to judge.
  void expect(const char* stage, bool capture = false) {
    expect_ = stage;
    capture_ = capture;
  }
  nlohmann::json captured;  // null until then
  bool filtered = false;
  void forward() {
    const uint64_t end = std::min<uint64_t>(area_->committed.load(std::memory_order_acquire), sizeof(area_->data));
    while (sent_ < end) {
      const char* start = area_->data + sent_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', end - sent_));
      if (!nl) break;
      const std::string_view record(start, nl - start);
      sent_ = static_cast<uint64_t>(nl - area_->data) + 1;
      if (!filtered) {
        write_line(record);
        continue;
      }
      std::string stage;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(record);
        stage = j.at("stage").get<std::string>();
      } catch (const std::exception&) {
      }
      if (expect_ && stage == expect_) {
        expect_ = nullptr;
        // Rebuilt, not copied: nothing else the child put in it (a "speedup_geomean" among the metrics, say)
        // reaches the evaluator.
        nlohmann::json clean = {{"stage", stage}};
        if (stage == "done" && j.value("program_calls", nlohmann::json()).is_number_unsigned())
          clean["program_calls"] = j["program_calls"];
        if (capture_) captured = std::move(j);
        else write_line(clean.dump());
      } else {
        write_line(nlohmann::json{{"stage", "refused_from_candidate"}, {"record", std::string(record.substr(0, 200))}}.dump(
            -1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
  }
  bool waiting() const { return expect_ != nullptr; }

 private:
  std::string nonce_;
  const SharedResults* area_;
  uint64_t sent_ = 0;
  const char* expect_ = nullptr;
  bool capture_ = false;
};

// The child's end-to-end record rebuilt: only the stage's own fields, its e2e_* metrics and the token artifact
// are kept (a "speedup_geomean" among its metrics, say, never reaches the evaluator). The CUDA target's record
// as it is (its gate runs in the child, where its engine runs); on the CPU target judge_end_to_end's start.
nlohmann::json child_end_to_end(const nlohmann::json& child) {
  nlohmann::json j = {{"stage", "end_to_end"}, {"passed", child.value("passed", false) == true},
                      {"metrics", nlohmann::json::object()}, {"artifacts", nlohmann::json::object()}};
  if (child.contains("failure") && child["failure"].is_string()) j["failure"] = child["failure"];
  if (child.contains("metrics") && child["metrics"].is_object())
    for (const auto& [k, v] : child["metrics"].items())
      if (k.rfind("e2e_", 0) == 0) j["metrics"][k] = v;
  if (child.contains("artifacts") && child["artifacts"].contains("e2e_tokens")) j["artifacts"]["e2e_tokens"] = child["artifacts"]["e2e_tokens"];
  j["metrics"]["e2e_gate"] = "child";
  return j;
}

// The end-to-end record of the child, judged again with the relay's gate: the candidate's teacher-forced
// logits (from the arena) against the stock kernel's as the relay computed them.
nlohmann::json judge_end_to_end(const nlohmann::json& child, const E2eReference& ref, const float* logits, size_t floats) {
  nlohmann::json j = child_end_to_end(child);
  std::vector<std::vector<float>> cand;
  size_t at = 0;
  for (const auto& step : ref.logits) {
    if (at + step.size() > floats) break;
    cand.emplace_back(logits + at, logits + at + step.size());
    at += step.size();
  }
  nlohmann::json& m = j["metrics"];
  m["e2e_child_logit_error"] = m.value("e2e_logit_error", nlohmann::json(nullptr));
  m["e2e_gate"] = "relay";
  if (cand.size() != ref.logits.size()) {
    j["passed"] = false;
    j["failure"] = "the end-to-end stage left fewer teacher-forced logits than steps";
    return j;
  }
  const auto [worst, step] = worst_logit_error(ref.logits, cand);
  m["e2e_logit_error"] = worst;
  m["e2e_logit_error_step"] = step;
  if (j.value("passed", false) && !(worst <= kE2eLogitTolerance)) {
    j["passed"] = false;
    j["failure"] = fmt::format("teacher-forced logits differ from the stock kernel's: relative error {:.3g} at step {} "
                               "(bound {:.3g}): the program is wrong inside the engine",
                               worst, step, kE2eLogitTolerance);
  }
  return j;
}

// The stages of a host entry, judged here in the relay: correctness and benchmark, then the end-to-end stage
// and "done" asked of the child.
template <class Alive>
void judge(const WorkerRequest& req, Control& ctl, SharedArena& arena, RelayOutput& out, Alive& alive) {
  ChildLink child(&ctl, [&] { return alive(); });
  const bool cuda = req.settings.target == Target::Cuda;
  StageResult c = guarded([&] { return run_correctness(child, arena, req.settings); });
  if (child.gone()) return;  // the evaluator reports the stage the child did not finish, and how it ended
  out.emit(stage_record("correctness", c));
  if (c.passed && req.bench) {
    StageResult b = guarded([&] {
      return cuda ? run_cuda_microbench(child, arena, req.settings) : run_microbench(child, arena, req.settings);
    });
    if (child.gone()) return;
    out.emit(stage_record("benchmark", b));
    c.passed = b.passed;
  }
  if (c.passed && req.end_to_end && cuda) {
    out.expect("end_to_end", true);
    if (!child.post(Op::EndToEnd)) return;
    out.forward();
    if (out.captured.is_null()) out.emit({{"stage", "end_to_end"}, {"passed", false}, {"failure", "no end-to-end record"}});
    else out.emit(child_end_to_end(out.captured));
  } else if (c.passed && req.end_to_end) {
    // The gate's reference here, then the child's runs: it teacher-forces the candidate with these tokens
    // and leaves its logits in the arena.
    E2eReference ref;
    try {
      ref = end_to_end_reference(req.settings);
    } catch (const std::exception& e) {
      StageResult f;
      f.failure = fmt::format("the stage stopped with an error: {}", e.what());
      out.emit(stage_record("end_to_end", f));
      out.expect("done");
      child.post(Op::Done);
      return;
    }
    omp_pause_resource_all(omp_pause_soft);  // no thread of the relay spinning while the child is timed
    arena.reset();
    const size_t floats = ref.logits.size() * (ref.logits.empty() ? 0 : ref.logits[0].size());
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    float* logits = reinterpret_cast<float*>(arena.take((floats * sizeof(float) + page - 1) / page * page));
    std::fill(logits, logits + floats, std::nanf(""));
    if (!post_protections(child, arena, {})) return;
    out.expect("end_to_end", true);
    if (!child.post(Op::EndToEnd, [&](Control& k) {
          k.num_tokens = static_cast<int32_t>(std::min<size_t>(ref.tokens.size(), Control::kMaxTokens));
          std::copy(ref.tokens.begin(), ref.tokens.begin() + k.num_tokens, k.tokens);
          k.logits_at = reinterpret_cast<uintptr_t>(logits);
          k.logits_floats = floats;
        }))
      return;
    out.forward();
    if (out.captured.is_null()) out.emit({{"stage", "end_to_end"}, {"passed", false}, {"failure", "no end-to-end record"}});
    else out.emit(judge_end_to_end(out.captured, ref, logits, floats));
  }
  out.expect("done");
  child.post(Op::Done);
}

}  // namespace

int run_worker(const WorkerRequest& req) {
  auto* area = new (shared_map<SharedResults>("result area")) SharedResults;
  area->committed.store(0);
  auto* ctl = new (shared_map<Control>("control block")) Control;
  ctl->request.store(0);
  ctl->answered.store(0);
  std::unique_ptr<SharedArena> arena;
  const bool relay_judges = req.lto_path.empty();  // host entries; a device entry's stages judge in the child
  if (relay_judges) arena = std::make_unique<SharedArena>(kArenaBytes);
  std::fflush(stdout);
  const pid_t relay = getpid();
  const pid_t child = fork();
  if (child < 0) fail("evaluate", "worker: fork failed: {}", std::strerror(errno));
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != relay) _exit(1);
    close(0);     // the nonce arrives there, for the relay only
    dup2(2, 1);   // whatever the program prints lands in stderr (an artifact)
    run_child(req, area, ctl);
  }
  // The relay: reads the nonce (after the fork, so it was never in the child's memory), forwards the
  // child's records tagged with it, judges a host entry's stages, and ends with how the child ended.
  char nonce[128] = {};
  size_t got = 0;
  for (ssize_t n; got + 1 < sizeof nonce && (n = read(0, nonce + got, sizeof nonce - 1 - got)) != 0;)
    if (n > 0) got += static_cast<size_t>(n);
    else if (errno != EINTR) break;
  while (got && (nonce[got - 1] == '\n' || nonce[got - 1] == ' ')) nonce[--got] = '\0';
  RelayOutput out(nonce, area);
  int status = 0;
  bool ended = false;
  auto alive = [&] {
    out.forward();
    if (!ended && waitpid(child, &status, WNOHANG) == child) ended = true;
    if (ended) out.forward();
    return !ended;
  };
  if (relay_judges) {
    out.filtered = true;
    out.expect("loaded");
    while (out.waiting() && alive()) poll(nullptr, 0, 2);
    if (!ended) judge(req, *ctl, *arena, out, alive);
  }
  while (alive()) poll(nullptr, 0, 5);
  nlohmann::json end = {{"stage", "worker_end"}};
  if (WIFEXITED(status)) end["exit_code"] = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) end["signal"] = WTERMSIG(status);
  out.emit(end);
  return 0;
}

}  // namespace gqa::eval
