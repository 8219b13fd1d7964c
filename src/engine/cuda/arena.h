// A typed plan of device buffers carved out of one allocation: reset() lists every activation buffer with
// its element type and count, then allocates once. Each buffer starts on a 256-byte boundary.
#pragma once
#include <functional>
#include <vector>

#include "engine/cuda/cuda_check.h"

namespace gqa::cuda {

class Arena {
 public:
  // `slot` receives the buffer's address at allocate(); `zeroed`: cleared on the stream right after.
  template <class T>
  void add(T*& slot, size_t count, bool zeroed = false) {
    const size_t offset = bytes_;
    bytes_ += (count * sizeof(T) + 255) / 256 * 256;
    entries_.push_back({[&slot, offset](char* base) { slot = reinterpret_cast<T*>(base + offset); }, offset,
                        count * sizeof(T), zeroed});
  }
  size_t bytes() const { return bytes_; }
  // One allocation holding every buffer added; sets the slots and enqueues the clears on `stream`.
  DeviceBuffer allocate(cudaStream_t stream) const {
    DeviceBuffer buf(bytes_);
    char* base = buf.as<char>();
    for (const Entry& e : entries_) {
      e.set(base);
      if (e.zeroed) GQA_CUDA_CHECK(cudaMemsetAsync(base + e.offset, 0, e.bytes, stream));
    }
    return buf;
  }

 private:
  struct Entry {
    std::function<void(char*)> set;
    size_t offset, bytes;
    bool zeroed;
  };
  std::vector<Entry> entries_;
  size_t bytes_ = 0;
};

}  // namespace gqa::cuda
