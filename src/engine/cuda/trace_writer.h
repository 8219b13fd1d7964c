// The persistent step's trace (CudaEngineOptions::trace_file): per block and phase, the %globaltimer values the
// kernel recorded during the last step, written as CSV for scripts/persistent_trace.py.
#pragma once
#include <cstddef>
#include <string>

namespace gqa::cuda {

// Words of the device trace buffer for `sms` blocks and `layers` layers.
size_t trace_words(int sms, int layers);
// Copies the device buffer back (synchronously) and writes `path`; throws naming the file when it cannot.
void write_trace(const std::string& path, const unsigned long long* device_trace, int sms, int layers);

}  // namespace gqa::cuda
