// Element types of weights and activations, and the block layouts of the
// quantized ones. The layouts are GGML's, byte for byte, so GGUF tensor data
// is used as it lies in the file (mmapped), never repacked on the CPU.
//
//   F32   4 bytes/element.
//   F16   2 bytes/element, IEEE binary16.
//   BF16  2 bytes/element, the upper half of an IEEE binary32.
//   Q8_0  blocks of 32 elements, 34 bytes: f16 scale d, int8 q[32];
//         x[i] = d * q[i].
//   Q4_0  blocks of 32 elements, 18 bytes: f16 scale d, uint8 qs[16];
//         element j < 16 is the low nibble of qs[j], element j + 16 its high
//         nibble; x = d * (nibble - 8).
//   Q4_1  blocks of 32 elements, 20 bytes: f16 scale d, f16 minimum m,
//         uint8 qs[16] packed as in Q4_0; x = d * nibble + m.
//   W4    the CUDA backend's repacking of Q4_0/Q4_1 for its W4A16 kernels
//         (never in a file; kernels/w4_pack.h). 32-element groups, 20 bytes
//         per group as Q4_1, but laid out per row: the row's cols / 2 bytes
//         of nibbles first (each group's 16 bytes packed as in Q4_0), then
//         its cols / 32 scale pairs (f16 d, f16 m); x = d * nibble + m
//         (Q4_0 becomes m = -8d). Row-contiguous, so a row is RowBytes long
//         as for every type, but DequantizeRow must be given whole rows.
//
// A row of a quantized matrix is a whole number of blocks, so a matrix's row
// length must be a multiple of 32 for those types.
#ifndef WEFT_KERNELS_DTYPE_H_
#define WEFT_KERNELS_DTYPE_H_

#include <cstdint>
#include <cstring>
#include "absl/strings/string_view.h"

namespace weft {

enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kW4 };

inline constexpr int kQuantBlockSize = 32;

struct BlockQ8_0 {
  uint16_t d;  // f16 bits
  int8_t qs[kQuantBlockSize];
};
struct BlockQ4_0 {
  uint16_t d;  // f16 bits
  uint8_t qs[kQuantBlockSize / 2];
};
struct BlockQ4_1 {
  uint16_t d;  // f16 bits
  uint16_t m;  // f16 bits
  uint8_t qs[kQuantBlockSize / 2];
};
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);

absl::string_view DTypeName(DType dtype);

// Elements per block: 1 for plain types, 32 for quantized ones.
int64_t DTypeBlockElements(DType dtype);
// Bytes per block.
int64_t DTypeBlockBytes(DType dtype);
inline bool IsQuantized(DType dtype) { return DTypeBlockElements(dtype) > 1; }

// Bytes of a row of `num_elements`; requires num_elements to be a multiple of
// DTypeBlockElements(dtype).
inline int64_t RowBytes(DType dtype, int64_t num_elements) {
  return num_elements / DTypeBlockElements(dtype) * DTypeBlockBytes(dtype);
}

float HalfToFloat(uint16_t bits);
uint16_t FloatToHalf(float value);  // round to nearest even
inline float Bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
uint16_t FloatToBf16(float value);  // round to nearest even, NaN kept NaN

// Reference dequantization of `num_elements` consecutive elements (a multiple
// of DTypeBlockElements) starting at `src` into fp32 `dst`. For W4, `src`
// is the start of a row and num_elements that row's length.
void DequantizeRow(DType dtype, const void* src, float* dst,
                   int64_t num_elements);

}  // namespace weft

#endif  // WEFT_KERNELS_DTYPE_H_
