// A host problem's device twin for the CUDA target: inputs uploaded into one allocation whose regions are
// separated by canary-filled guard bands, outputs and workspaces poisoned with NaN bytes, and checks after a
// call that no guard band and no input byte changed. The host side keeps the reference and the compare: a
// Problem in this process, or (the worker's candidate process) a problem's buffers in the arena shared with the
// relay, which judges what is copied back there (download_inputs, download_outputs).
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

#include "evaluate/problem.h"

namespace gqa::eval {

class DeviceProblem {
 public:
  // Allocates and uploads everything of `host` (which must outlive this); arguments use `stream`.
  DeviceProblem(Problem& host, cudaStream_t stream);
  // The same for host buffers described by `host` (ABI arguments on host memory); `host_out2` receives the
  // stock kernel's output (download_outputs), or null.
  DeviceProblem(const gqa_attention_args& host, gqa_bf16* host_out2, cudaStream_t stream);
  ~DeviceProblem();
  DeviceProblem(const DeviceProblem&) = delete;
  DeviceProblem& operator=(const DeviceProblem&) = delete;

  // After host.fill(): all inputs again. After host.refill_queries(): q only.
  void upload_inputs();
  void upload_queries();
  // Outputs and workspaces (both pairs) filled with 0xFF bytes: bf16 NaN, float NaN. Enqueued on the stream.
  void poison();
  // The candidate's arguments (device pointers), and the stock kernel's: same inputs, own out and workspace.
  const gqa_attention_args& args() const { return args_; }
  const gqa_attention_args& second_args() const { return args2_; }
  // Synchronous. "" when every guard band still holds its canary bytes and q, k, v and the lengths equal the
  // host's; otherwise what changed.
  std::string check_integrity();
  // Synchronous. "" when every guard band still holds its canary bytes; otherwise which one changed.
  std::string check_guards();
  // Synchronous: q, k, v and the lengths as the device holds them, into the host buffers (the relay compares
  // them with its own copies).
  void download_inputs();
  // Synchronous: the candidate's output into the host Problem's output buffer (for Problem::compare()).
  void download_output();
  // Synchronous: both outputs (candidate's and stock's) into the host Problem (for compare_with_second()).
  void download_outputs();

 private:
  struct Region {
    size_t off = 0, bytes = 0;
  };
  char* ptr(const Region& r) const { return base_ + r.off; }
  gqa_attention_args host_;       // host pointers
  Problem* problem_ = nullptr;    // when made from a Problem (its second output is made on demand)
  gqa_bf16* host_out2_ = nullptr;
  cudaStream_t stream_;
  char* base_ = nullptr;
  size_t total_ = 0;
  Region q_, k_, v_, cu_, kvl_, out_, ws_, out2_, ws2_;
  std::vector<std::pair<Region, std::string>> guards_;
  gqa_attention_args args_{}, args2_{};
};

}  // namespace gqa::eval
