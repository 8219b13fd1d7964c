// Peak resident memory per benchmark run: Linux lets a process reset its high-water mark
// (/proc/self/clear_refs), so each run reports its own peak rather than the process's lifetime peak.
#pragma once
#include <cstddef>

namespace gqa::bench {

// Resets the resident-set high-water mark. Returns false where the kernel does not allow it; peaks read
// afterwards are then the process's lifetime peak.
bool reset_peak_rss();
// VmHWM of /proc/self/status in bytes (getrusage's lifetime peak where /proc is missing).
size_t read_peak_rss();

}  // namespace gqa::bench
