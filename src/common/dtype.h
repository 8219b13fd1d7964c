// Element types of model tensors (bf16, f16, f32) and exact conversions between them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace gqa {

enum class DType { BF16, F16, F32 };

size_t dtype_size(DType t);
// Name as written in safetensors headers: "BF16", "F16", "F32".
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view safetensors_name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of type `from` at src to float.
void convert_to_f32(DType from, const void* src, float* dst, size_t n);

}  // namespace gqa
