// Evicting the GPU's L2 cache between timed calls, so that neither kernel of a back-to-back pair finds the
// other's K/V there (on an H200 the L2 holds 60 MB: a whole 2K-context cache).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace gqa::eval {

// Enqueues a streaming read of `bytes` at `buf` (a device buffer a few times the L2). Reads rather than a
// memset: the L2 is left holding clean lines, so the timed kernel that follows pays no write-backs.
void flush_l2(const void* buf, size_t bytes, cudaStream_t stream);

}  // namespace gqa::eval
