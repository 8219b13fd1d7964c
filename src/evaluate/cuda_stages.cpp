// The CUDA target's candidate process (host entries): it serves the relay's requests (channel.h) on device
// copies of the arena's buffers and runs the end-to-end stage. Every call of the candidate is captured into a
// CUDA graph (global capture mode: a program that allocates, synchronises or strays off its stream is not
// capturable and fails) and run by replaying it. Outputs and workspaces are NaN-poisoned on the device, its
// guard bands checked after every call, and any CUDA error after the candidate ran (sticky or not) is the
// candidate's failure and ends the stage. The benchmark times CUDA events around graph replays with the L2
// flushed before each, the engine's own stock kernels interleaved. What decides lives in the relay
// (correctness.cpp, microbench_cuda.cpp): the outputs and the device's inputs are copied back into the arena
// after every call, and the relay compares them with its own copies and references.
#include "evaluate/cuda_stages.h"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_engine.h"
#include "engine/cuda/ops.h"
#include "engine/cuda/stock_attention_abi.h"
#include "evaluate/channel.h"
#include "evaluate/device_problem.h"
#include "evaluate/l2_flush.h"
#include "evaluate/sandbox.h"

namespace gqa::eval {

namespace {

// A CUDA failure attributed to the candidate (it ran; the context may now be unusable).
struct CandidateCudaError : Error {
  using Error::Error;
};

std::string cuda_text(cudaError_t e) { return fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e)); }

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("evaluate", "CUDA: {}: {}", what, cuda_text(e));
}

// After the candidate ran: any error, including a sticky one from its kernels, is its failure.
void ck_candidate(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw CandidateCudaError(fmt::format("CUDA error {}: {}", what, cuda_text(e)));
}

class GraphExec {
 public:
  GraphExec() = default;
  explicit GraphExec(cudaGraphExec_t e) : e_(e) {}
  ~GraphExec() {
    if (e_) cudaGraphExecDestroy(e_);
  }
  GraphExec(GraphExec&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  GraphExec& operator=(GraphExec&& o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  cudaGraphExec_t get() const { return e_; }

 private:
  cudaGraphExec_t e_ = nullptr;
};

// Captures one call of `fn` on `a` (whose stream is `st`). Returns the instantiated graph, or throws
// CandidateCudaError when the call is not capturable; rc is the call's return code.
template <class Call>
GraphExec capture(Call&& call, cudaStream_t st, int& rc, const char* who) {
  cudaGetLastError();
  ck(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal), "begin graph capture");
  rc = call();
  cudaGraph_t g = nullptr;
  const cudaError_t end = cudaStreamEndCapture(st, &g);
  const cudaError_t last = cudaGetLastError();
  if (end != cudaSuccess || last != cudaSuccess) {
    if (g) cudaGraphDestroy(g);
    throw CandidateCudaError(fmt::format("{} is not safe in CUDA graph capture: {}", who,
                                         cuda_text(end != cudaSuccess ? end : last)));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = rc == GQA_OK ? cudaGraphInstantiate(&exec, g, 0) : cudaSuccess;
  cudaGraphDestroy(g);
  if (inst != cudaSuccess) throw CandidateCudaError(fmt::format("{}'s graph cannot be instantiated: {}", who, cuda_text(inst)));
  return GraphExec(exec);
}

void copy_text(char* dst, size_t size, const std::string& text) {
  const size_t n = std::min(text.size(), size - 1);
  std::memcpy(dst, text.data(), n);
  dst[n] = '\0';
}

}  // namespace

// engine: opened by the caller (before the sandbox), or null to open it here. cuda_end_to_end.cpp.
StageResult run_end_to_end_cuda(gqa_attention_fn candidate, const WorkerSettings& set, std::unique_ptr<Engine> engine);

namespace {
// The CUDA runtime the program loaded with it (the evaluator compiles programs with -cudart shared; imports.cpp),
// initialised by one call through it: whatever its start-up opens is opened before the seccomp filter. A
// program without one has nothing to initialise.
int find_cudart(dl_phdr_info* info, size_t, void* out) {
  if (info->dlpi_name && std::strstr(info->dlpi_name, "/libcudart.so")) {
    *static_cast<std::string*>(out) = info->dlpi_name;
    return 1;
  }
  return 0;
}
void initialise_program_runtime() {
  std::string path;
  dl_iterate_phdr(find_cudart, &path);
  if (path.empty()) return;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!lib) return;
  using FreeFn = int (*)(void*);
  if (auto* free_fn = reinterpret_cast<FreeFn>(dlsym(lib, "cudaFree")); free_fn && free_fn(nullptr) != 0)
    fail("evaluate", "worker: the program's CUDA runtime ({}) failed to initialise", path);
  dlclose(lib);
}
}  // namespace

namespace {

class CudaChildImpl final : public CudaChild {
 public:
  CudaChildImpl(gqa_attention_fn program, const WorkerRequest& req) : cand_("program", program), req_(req) {
    // With the sandbox, every module loads when its runtime starts (not at a kernel's first launch, which would
    // run under the filter).
    if (req.settings.cuda_sandbox) setenv("CUDA_MODULE_LOADING", "EAGER", 1);
    ck(cudaSetDevice(0), "cudaSetDevice");
    cuda::configure_kernels();  // shared-memory opt-ins of the stock kernels: not allowed during capture
    // A blocking stream: a program that launches on the legacy default stream while it is being captured
    // then breaks the capture (cudaErrorStreamCaptureImplicit) instead of running outside the graph.
    ck(cudaStreamCreate(&st_), "cudaStreamCreate");
    if (req.settings.cuda_sandbox) {  // what opens files first: the end-to-end engine (its model), the runtimes
      if (req.end_to_end) e2e_ = open_cuda_engine(req.settings.model_dir);
      initialise_program_runtime();
      enter_cuda_sandbox();
    }
  }

  void serve(Control& c) override {
    c.rc = GQA_OK, c.rc_stock = GQA_OK, c.fatal = 0;
    c.failure[0] = c.integrity[0] = '\0';
    c.cand_seconds = c.stock_seconds = c.stock_abi_seconds = 0;
    if (broken_) return fatal(c, "the CUDA context is unusable after an earlier error of the program");
    try {
      switch (c.op) {
        case Op::CudaCall: return call(c);
        case Op::CudaBenchSetup: return bench_setup(c);
        case Op::CudaRepetition: return repetition(c);
        default: return fatal(c, "the worker asked for a CPU request on the CUDA target");
      }
    } catch (const CandidateCudaError& e) {
      fatal(c, e.what());
    } catch (const Error& e) {  // a sticky error from the candidate surfaces in our next CUDA call
      fatal(c, fmt::format("CUDA failure after the program ran: {}", e.what()));
    }
  }

  StageResult end_to_end() override { return run_end_to_end_cuda(cand_.fn, req_.settings, std::move(e2e_)); }
  uint64_t calls() const override { return cand_.calls; }

 private:
  // One buffer set of a benchmark shape on the device, and the three graphs timed.
  struct BenchSet {
    std::unique_ptr<DeviceProblem> dev;
    GraphExec cand, stock, stock_abi;
  };

  void fatal(Control& c, const std::string& text) {
    c.fatal = 1;
    broken_ = true;
    copy_text(c.failure, sizeof c.failure, text);
  }

  void call(Control& c) {
    DeviceProblem d(c.args, nullptr, st_);
    int rc = GQA_OK;
    GraphExec g = capture([&] { return cand_(d.args()); }, st_, rc, "the program");
    c.rc = rc;
    if (rc != GQA_OK) return copy_text(c.failure, sizeof c.failure, cand_.describe(rc));
    // Work a program did outside the graph (on another stream, at capture time) is finished, then overwritten
    // by the poison: only what the graph computes counts.
    ck_candidate(cudaDeviceSynchronize(), "after capturing the program");
    d.poison();
    ck_candidate(cudaGraphLaunch(g.get(), st_), "launching the program's graph");
    ck_candidate(cudaStreamSynchronize(st_), "in the program's kernels");
    copy_text(c.integrity, sizeof c.integrity, d.check_guards());
    d.download_output();
    d.download_inputs();
  }

  void bench_setup(Control& c) {
    sets_.clear();
    if (!flush_) {
      bandwidth_ = cuda::measure_read_bandwidth(size_t{1} << 30, 10);
      int dev = 0, l2 = 0;
      ck(cudaGetDevice(&dev), "cudaGetDevice");
      ck(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "L2 size");
      cudaDeviceProp prop{};
      ck(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
      device_ = fmt::format("{}: {} SMs, L2 {} MB", prop.name, prop.multiProcessorCount, l2 >> 20);
      flush_bytes_ = std::max<size_t>(size_t{4} * static_cast<size_t>(l2), size_t{256} << 20);
      ck(cudaMalloc(&flush_, flush_bytes_), "cudaMalloc of the L2 flush buffer");
      ck(cudaMemset(flush_, 1, flush_bytes_), "fill the L2 flush buffer");
      for (auto& e : ev_) ck(cudaEventCreate(&e), "cudaEventCreate");
    }
    c.read_bandwidth = bandwidth_;
    copy_text(c.device, sizeof c.device, device_);
    const int n = std::clamp(c.num_sets, 0, Control::kMaxSets);
    int rc = GQA_OK, rc_stock = GQA_OK;
    for (int i = 0; i < n; ++i) {
      BenchSet b;
      b.dev = std::make_unique<DeviceProblem>(c.sets[i], reinterpret_cast<gqa_bf16*>(c.out2[i]), st_);
      b.dev->poison();
      b.stock = capture([&] { return cuda::stock_attention_engine_kernels(&b.dev->second_args()); }, st_, rc_stock, "stock");
      if (rc_stock == GQA_OK)
        b.stock_abi = capture([&] { return cuda::stock_attention_abi(&b.dev->second_args()); }, st_, rc_stock, "stock");
      if (rc_stock != GQA_OK) {
        c.rc_stock = rc_stock;
        return;
      }
      b.cand = capture([&] { return cand_(b.dev->args()); }, st_, rc, "the program");
      if (rc != GQA_OK) {
        c.rc = rc;
        return copy_text(c.failure, sizeof c.failure, cand_.describe(rc));
      }
      sets_.push_back(std::move(b));
    }
    ck_candidate(cudaDeviceSynchronize(), "after capturing the program");
    for (int w = 0; w < 2; ++w)  // warm-up: instruction caches, graph uploads, clocks
      for (BenchSet& b : sets_) {
        prepare(b);
        for (const GraphExec* g : {&b.stock, &b.stock_abi, &b.cand}) ck_candidate(cudaGraphLaunch(g->get(), st_), "warm-up");
        ck_candidate(cudaStreamSynchronize(st_), "in the warm-up replays");
      }
  }

  void prepare(BenchSet& b) {  // the engine's float q, positions and counters for the stock kernels
    b.dev->poison();
    if (cuda::stock_attention_prepare(&b.dev->second_args()) != GQA_OK) fail("evaluate", "stock prepare failed");
  }

  void repetition(Control& c) {
    if (c.set < 0 || c.set >= static_cast<int>(sets_.size())) return fatal(c, "no such benchmark buffer set");
    BenchSet& b = sets_[static_cast<size_t>(c.set)];
    b.dev->upload_queries();  // the relay drew new ones: nothing remembered from an earlier call is the answer
    prepare(b);
    // Order rotates so that none of the three always follows the same neighbour.
    const GraphExec* order[3] = {&b.stock, &b.cand, &b.stock_abi};
    std::rotate(order, order + ((c.rotation % 3) + 3) % 3, order + 3);
    for (int i = 0; i < 3; ++i) {
      flush_l2(flush_, flush_bytes_, st_);
      ck(cudaEventRecord(ev_[2 * i], st_), "cudaEventRecord");
      ck_candidate(cudaGraphLaunch(order[i]->get(), st_), "replaying a graph");
      ck(cudaEventRecord(ev_[2 * i + 1], st_), "cudaEventRecord");
    }
    ck_candidate(cudaStreamSynchronize(st_), "in the timed replays");
    for (int i = 0; i < 3; ++i) {
      float ms = 0;
      ck(cudaEventElapsedTime(&ms, ev_[2 * i], ev_[2 * i + 1]), "cudaEventElapsedTime");
      (order[i] == &b.cand ? c.cand_seconds : order[i] == &b.stock ? c.stock_seconds : c.stock_abi_seconds) = ms * 1e-3;
    }
    copy_text(c.integrity, sizeof c.integrity, b.dev->check_guards());
    b.dev->download_outputs();
    b.dev->download_inputs();
  }

  Kernel cand_;
  WorkerRequest req_;
  cudaStream_t st_ = nullptr;
  std::unique_ptr<Engine> e2e_;
  bool broken_ = false;
  std::vector<BenchSet> sets_;
  void* flush_ = nullptr;
  size_t flush_bytes_ = 0;
  cudaEvent_t ev_[6] = {};
  double bandwidth_ = 0;
  std::string device_;
};

}  // namespace

std::unique_ptr<CudaChild> CudaChild::open(gqa_attention_fn program, const WorkerRequest& req) {
  return std::make_unique<CudaChildImpl>(program, req);
}

}  // namespace gqa::eval
