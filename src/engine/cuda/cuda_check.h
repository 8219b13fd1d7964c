// Checking every CUDA / cuBLAS call (errors become gqa::Error "[cuda] file:line: call: message"), and RAII
// owners of device memory, streams, events and graphs. Includes no project headers, so .cu files can use it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

namespace gqa::cuda {

[[noreturn]] void fail_cuda(const char* expr, cudaError_t err, const char* file, int line);
[[noreturn]] void fail_cublas(const char* expr, cublasStatus_t st, const char* file, int line);
// "[cuda] <what>": for argument checks in launchers (.cu files cannot use gqa::fail's fmt).
[[noreturn]] void fail_unsupported(const char* what);

#define GQA_CUDA_CHECK(expr)                                                                \
  do {                                                                                      \
    cudaError_t gqa_err_ = (expr);                                                          \
    if (gqa_err_ != cudaSuccess) ::gqa::cuda::fail_cuda(#expr, gqa_err_, __FILE__, __LINE__); \
  } while (0)

#define GQA_CUBLAS_CHECK(expr)                                                                       \
  do {                                                                                               \
    cublasStatus_t gqa_st_ = (expr);                                                                 \
    if (gqa_st_ != CUBLAS_STATUS_SUCCESS) ::gqa::cuda::fail_cublas(#expr, gqa_st_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: catches bad launch configurations at the call site (asynchronous faults surface at
// the next synchronising call, which is checked too).
#define GQA_CUDA_CHECK_LAUNCH() GQA_CUDA_CHECK(cudaGetLastError())

// Device memory the engine holds now and at most (every allocation goes through DeviceBuffer), so that
// generate can report peak device memory without counting the CUDA context.
size_t device_bytes_in_use();
size_t device_bytes_peak();
void reset_device_bytes_peak();

// Owns one cudaMalloc allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }
  void release();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Owns page-locked host memory (asynchronous copies out of the decode loop land here).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// An instantiated CUDA graph, captured from the work one callback enqueues on a stream.
class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(Graph&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
  Graph& operator=(Graph&& o) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  template <class Enqueue>
  static Graph capture(cudaStream_t stream, Enqueue&& enqueue) {
    begin_capture(stream);
    try {
      enqueue();
    } catch (...) {
      abort_capture(stream);
      throw;
    }
    return end_capture(stream);
  }
  void launch(cudaStream_t stream) const;
  explicit operator bool() const { return exec_ != nullptr; }

 private:
  static void begin_capture(cudaStream_t stream);
  static void abort_capture(cudaStream_t stream) noexcept;
  static Graph end_capture(cudaStream_t stream);
  cudaGraphExec_t exec_ = nullptr;
};

class CublasHandle {
 public:
  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

// Number of usable CUDA devices; 0 when the driver is missing or reports none (never throws).
int device_count() noexcept;

}  // namespace gqa::cuda
