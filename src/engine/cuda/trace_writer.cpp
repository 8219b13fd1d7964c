// The persistent step's trace as CSV (trace_writer.h).
#include "engine/cuda/trace_writer.h"

#include <cstdio>
#include <vector>

#include "common/error.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/ops.h"

namespace gqa::cuda {

namespace {
constexpr int kFields = 6;  // start, ready, filled, computed, end, data wait (PersistentDecodeArgs::trace)
size_t slots(int layers) { return static_cast<size_t>(layers) * kPersistentPhases + 1; }
}  // namespace

size_t trace_words(int sms, int layers) { return static_cast<size_t>(sms) * slots(layers) * kFields; }

void write_trace(const std::string& path, const unsigned long long* device_trace, int sms, int layers) {
  std::vector<unsigned long long> t(trace_words(sms, layers));
  GQA_CUDA_CHECK(cudaMemcpy(t.data(), device_trace, t.size() * sizeof(t[0]), cudaMemcpyDeviceToHost));
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) fail("cuda", "--trace: cannot write '{}'", path);
  std::fprintf(f, "block,slot,start_ns,ready_ns,filled_ns,computed_ns,end_ns,data_wait_ns\n");
  const size_t n = slots(layers);
  for (int b = 0; b < sms; ++b)
    for (size_t s = 0; s < n; ++s) {
      const unsigned long long* e = &t[(b * n + s) * kFields];
      std::fprintf(f, "%d,%zu,%llu,%llu,%llu,%llu,%llu,%llu\n", b, s, e[0], e[1], e[2], e[3], e[4], e[5]);
    }
  if (std::fclose(f) != 0) fail("cuda", "--trace: writing '{}' failed", path);
}

}  // namespace gqa::cuda
