// CUDA error reporting and the RAII owners declared in cuda_check.h.
#include "engine/cuda/cuda_check.h"

#include <atomic>
#include <cstring>

#include "common/error.h"

namespace gqa::cuda {

namespace {
std::atomic<size_t> g_in_use{0}, g_peak{0};

const char* basename(const char* path) {
  const char* s = std::strrchr(path, '/');
  return s ? s + 1 : path;
}

void count_alloc(size_t bytes) {
  size_t now = g_in_use.fetch_add(bytes) + bytes;
  size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

void fail_cuda(const char* expr, cudaError_t err, const char* file, int line) {
  fail("cuda", "{}:{}: {}: {} ({})", basename(file), line, expr, cudaGetErrorString(err), cudaGetErrorName(err));
}

void fail_cublas(const char* expr, cublasStatus_t st, const char* file, int line) {
  fail("cuda", "{}:{}: {}: cuBLAS status {} ({})", basename(file), line, expr, static_cast<int>(st),
       cublasGetStatusString(st));
}

void fail_unsupported(const char* what) { fail("cuda", "{}", what); }

size_t device_bytes_in_use() { return g_in_use.load(); }
size_t device_bytes_peak() { return g_peak.load(); }
void reset_device_bytes_peak() { g_peak.store(g_in_use.load()); }

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("cuda", "cudaMalloc of {:.1f} MiB failed: {} ({:.1f} MiB free of {:.1f} MiB)", bytes / 1048576.0,
         cudaGetErrorString(err), free_b / 1048576.0, total_b / 1048576.0);
  }
  count_alloc(bytes);
}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() {
  if (ptr_) {
    cudaFree(ptr_);  // errors here are sticky faults reported by the next checked call
    g_in_use.fetch_sub(bytes_);
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes) GQA_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
}
PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Stream::Stream() { GQA_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}

Event::Event(bool timing) {
  GQA_CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}

Graph::~Graph() {
  if (exec_) cudaGraphExecDestroy(exec_);
}
Graph& Graph::operator=(Graph&& o) noexcept {
  if (this != &o) {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = std::exchange(o.exec_, nullptr);
  }
  return *this;
}
void Graph::begin_capture(cudaStream_t stream) {
  GQA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
}
void Graph::abort_capture(cudaStream_t stream) noexcept {
  cudaGraph_t g = nullptr;
  cudaStreamEndCapture(stream, &g);
  if (g) cudaGraphDestroy(g);
  cudaGetLastError();
}
Graph Graph::end_capture(cudaStream_t stream) {
  cudaGraph_t g = nullptr;
  GQA_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
  Graph out;
  cudaError_t err = cudaGraphInstantiate(&out.exec_, g, 0);
  cudaGraphDestroy(g);
  if (err != cudaSuccess) fail_cuda("cudaGraphInstantiate", err, __FILE__, __LINE__);
  return out;
}
void Graph::launch(cudaStream_t stream) const { GQA_CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }

CublasHandle::CublasHandle() { GQA_CUBLAS_CHECK(cublasCreate(&h_)); }
CublasHandle::~CublasHandle() {
  if (h_) cublasDestroy(h_);
}

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace gqa::cuda
