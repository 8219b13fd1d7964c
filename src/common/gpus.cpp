// Counting GPUs through nvidia-smi rather than the CUDA runtime: the evolution controller needs the count
// in builds without CUDA, and a broken driver must mean "no GPU", not an error.
#include "common/gpus.h"

#include "common/error.h"
#include "common/process.h"

namespace gqa {

int count_gpus() {
  try {
    ProcessOptions po;
    po.argv = {"nvidia-smi", "-L"};
    po.timeout_seconds = 30;
    ProcessResult r = run_process(po);
    if (!r.ok()) return 0;
    int n = 0;
    for (size_t p = 0; (p = r.out.find("GPU ", p)) != std::string::npos; ++p) ++n;
    return n;
  } catch (const Error&) {
    return 0;
  }
}

}  // namespace gqa
