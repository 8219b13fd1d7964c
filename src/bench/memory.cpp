// Per-run peak RSS through /proc (see memory.h).
#include "bench/memory.h"

#include <cstdio>
#include <cstring>

#include "engine/generate.h"

namespace gqa::bench {

bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;  // 5: reset the peak RSS (Linux >= 4.0)
  return std::fclose(f) == 0 && ok;
}

size_t read_peak_rss() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return peak_rss_bytes();
  char line[256];
  size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) {
      std::sscanf(line + 6, "%zu", &kib);
      break;
    }
  std::fclose(f);
  return kib ? kib * 1024 : peak_rss_bytes();
}

}  // namespace gqa::bench
