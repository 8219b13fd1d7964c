// Device buffers of one problem: a single allocation laid out as guard | q | guard | k | guard | v | ... so that
// a write just past (or before) any buffer lands in a canary band that is checked after the call; writes far
// away hit unmapped memory and become a CUDA error, which fails the candidate.
#include "evaluate/device_problem.h"

#include <cstring>
#include <vector>

#include "common/error.h"

namespace gqa::eval {

namespace {

constexpr size_t kGuardBytes = 64 << 10;
constexpr int kCanary = 0xA5;

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("evaluate", "CUDA: {}: {}", what, cudaGetErrorString(e));
}

size_t round256(size_t b) { return (b + 255) / 256 * 256; }

}  // namespace

DeviceProblem::DeviceProblem(Problem& host, cudaStream_t stream) : DeviceProblem(host.args(), nullptr, stream) {
  problem_ = &host;
}

DeviceProblem::DeviceProblem(const gqa_attention_args& host, gqa_bf16* host_out2, cudaStream_t stream)
    : host_(host), host_out2_(host_out2), stream_(stream) {
  const gqa_attention_args& h = host;
  const size_t S = static_cast<size_t>(h.num_seqs);
  const size_t rows = static_cast<size_t>(h.total_q) * h.num_q_heads * h.head_dim;
  size_t off = 0;
  // Each region is preceded by a guard band and followed by its slack up to a 256-byte boundary (canary too).
  auto region = [&](size_t bytes, const char* name) {
    guards_.push_back({{off, kGuardBytes}, fmt::format("before {}", name)});
    off += kGuardBytes;
    Region r{off, bytes};
    off += round256(bytes);
    guards_.push_back({{r.off + bytes, round256(bytes) - bytes}, fmt::format("just after {}", name)});
    return r;
  };
  q_ = region(rows * 2, "q");
  k_ = region(S * static_cast<size_t>(h.k_stride_seq) * 2, "k");
  v_ = region(S * static_cast<size_t>(h.v_stride_seq) * 2, "v");
  cu_ = region((S + 1) * 4, "cu_q_lens");
  kvl_ = region(S * 4, "kv_lens");
  out_ = region(rows * 2, "the output");
  ws_ = region(h.workspace_bytes, "the workspace");
  out2_ = region(rows * 2, "the stock kernel's output");
  ws2_ = region(h.workspace_bytes, "the stock kernel's workspace");
  guards_.push_back({{off, kGuardBytes}, "after everything"});
  off += kGuardBytes;
  total_ = off;
  ck(cudaMalloc(reinterpret_cast<void**>(&base_), total_), "cudaMalloc of a problem's buffers");
  ck(cudaMemset(base_, kCanary, total_), "cudaMemset of guard bands");

  args_ = h;
  args_.q = reinterpret_cast<const gqa_bf16*>(ptr(q_));
  args_.k = reinterpret_cast<const gqa_bf16*>(ptr(k_));
  args_.v = reinterpret_cast<const gqa_bf16*>(ptr(v_));
  args_.cu_q_lens = reinterpret_cast<const int32_t*>(ptr(cu_));
  args_.kv_lens = reinterpret_cast<const int32_t*>(ptr(kvl_));
  args_.out = reinterpret_cast<gqa_bf16*>(ptr(out_));
  args_.workspace = ptr(ws_);
  args_.stream = stream_;
  args_.num_threads = 0;
  args2_ = args_;
  args2_.out = reinterpret_cast<gqa_bf16*>(ptr(out2_));
  args2_.workspace = ptr(ws2_);
  upload_inputs();
}

DeviceProblem::~DeviceProblem() {
  if (base_) cudaFree(base_);  // may fail after a sticky error; nothing to do about it
}

void DeviceProblem::upload_inputs() {
  const gqa_attention_args& h = host_;
  ck(cudaMemcpy(ptr(q_), h.q, q_.bytes, cudaMemcpyHostToDevice), "upload q");
  ck(cudaMemcpy(ptr(k_), h.k, k_.bytes, cudaMemcpyHostToDevice), "upload k");
  ck(cudaMemcpy(ptr(v_), h.v, v_.bytes, cudaMemcpyHostToDevice), "upload v");
  ck(cudaMemcpy(ptr(cu_), h.cu_q_lens, cu_.bytes, cudaMemcpyHostToDevice), "upload cu_q_lens");
  ck(cudaMemcpy(ptr(kvl_), h.kv_lens, kvl_.bytes, cudaMemcpyHostToDevice), "upload kv_lens");
}

void DeviceProblem::upload_queries() {
  ck(cudaMemcpy(ptr(q_), host_.q, q_.bytes, cudaMemcpyHostToDevice), "upload q");
}

void DeviceProblem::poison() {
  for (const Region* r : {&out_, &ws_, &out2_, &ws2_})
    ck(cudaMemsetAsync(ptr(*r), 0xFF, r->bytes, stream_), "poison outputs");
}

std::string DeviceProblem::check_guards() {
  ck(cudaStreamSynchronize(stream_), "synchronise before the integrity check");
  std::vector<unsigned char> buf;
  for (const auto& [g, name] : guards_) {
    if (g.bytes == 0) continue;
    buf.resize(g.bytes);
    ck(cudaMemcpy(buf.data(), base_ + g.off, g.bytes, cudaMemcpyDeviceToHost), "read guard band");
    for (size_t i = 0; i < g.bytes; ++i)
      if (buf[i] != kCanary)
        return fmt::format("wrote outside its buffers: the guard band {} changed (byte {} of it)", name, i);
  }
  return "";
}

void DeviceProblem::download_inputs() {
  ck(cudaStreamSynchronize(stream_), "synchronise before reading the inputs back");
  const gqa_attention_args& h = host_;
  const std::pair<const Region*, const void*> inputs[] = {
      {&q_, h.q}, {&k_, h.k}, {&v_, h.v}, {&cu_, h.cu_q_lens}, {&kvl_, h.kv_lens}};
  for (const auto& [r, dst] : inputs)
    ck(cudaMemcpy(const_cast<void*>(dst), ptr(*r), r->bytes, cudaMemcpyDeviceToHost), "read an input back");
}

std::string DeviceProblem::check_integrity() {
  if (std::string g = check_guards(); !g.empty()) return g;
  std::vector<unsigned char> buf;
  const gqa_attention_args& h = host_;
  const std::pair<const Region*, const void*> inputs[] = {
      {&q_, h.q}, {&k_, h.k}, {&v_, h.v}, {&cu_, h.cu_q_lens}, {&kvl_, h.kv_lens}};
  const char* names[] = {"q", "k", "v", "cu_q_lens", "kv_lens"};
  for (int i = 0; i < 5; ++i) {
    buf.resize(inputs[i].first->bytes);
    ck(cudaMemcpy(buf.data(), ptr(*inputs[i].first), buf.size(), cudaMemcpyDeviceToHost), "read input back");
    if (std::memcmp(buf.data(), inputs[i].second, buf.size()) != 0)
      return fmt::format("wrote into the read-only input {}", names[i]);
  }
  return "";
}

void DeviceProblem::download_output() {
  ck(cudaStreamSynchronize(stream_), "synchronise before reading the output");
  ck(cudaMemcpy(host_.out, ptr(out_), out_.bytes, cudaMemcpyDeviceToHost), "read output");
}

void DeviceProblem::download_outputs() {
  download_output();
  gqa_bf16* out2 = host_out2_ ? host_out2_ : problem_ ? problem_->second_args().out : nullptr;
  if (!out2) fail("evaluate", "DeviceProblem: no host buffer for the stock kernel's output");
  ck(cudaMemcpy(out2, ptr(out2_), out2_.bytes, cudaMemcpyDeviceToHost), "read the stock output");
}

}  // namespace gqa::eval
