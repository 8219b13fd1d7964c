// libFuzzer target for the safetensors header parser: any bytes must either parse or throw gqa::Error.
// A header that parses must describe tensors lying inside the input, which is checked by touching each
// tensor's first and last byte (ASan reports any read outside the input). Seeds: fuzz/corpus/fuzz_safetensors/
// (made by fuzz/make_safetensors_corpus.py).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gqa::SafetensorsHeader h;
  try {
    h = gqa::parse_safetensors_header(data, size, "fuzz.safetensors");
  } catch (const gqa::Error&) {
    return 0;
  }
  volatile uint8_t sink = 0;
  uint64_t prev_end = 0;
  for (const gqa::TensorInfo& t : h.tensors) {
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * gqa::dtype_size(t.dtype);
    if (t.end - t.begin != nbytes || h.data_offset + t.end > size) std::abort();
    if (t.begin < prev_end && t.begin != t.end) std::abort();  // overlap slipped through
    if (t.begin != t.end) {
      sink = sink + data[h.data_offset + t.begin] + data[h.data_offset + t.end - 1];
      prev_end = t.end;
    }
  }
  return 0;
}
