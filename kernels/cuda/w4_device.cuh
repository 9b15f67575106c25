// Device-side reads of W4 weights (kernels/dtype.h): per row, cols / 2
// bytes of nibbles (each 32-element group's 16 bytes packed as in Q4_0),
// then cols / 32 (f16 d, f16 m) pairs. Include from .cu files.
#ifndef WEFT_KERNELS_CUDA_W4_DEVICE_CUH_
#define WEFT_KERNELS_CUDA_W4_DEVICE_CUH_

#include <cuda_fp16.h>

#include <cstdint>

namespace weft::cuda {

// Bytes of one W4 row of `cols` elements (cols a multiple of 32).
__host__ __device__ inline int64_t W4RowBytes(int64_t cols) {
  return cols / 2 + cols / 8;
}

// Element c of the W4 row at `row`: d * nibble + m, rounded after the
// multiply and after the add as the CPU reference (built without FMA
// contraction) does, so the values are bit-identical.
__device__ inline float W4Element(const uint8_t* row, int64_t cols,
                                  int64_t c) {
  const int64_t group = c / 32;
  const int j = static_cast<int>(c % 32);
  const uint8_t byte = row[group * 16 + (j & 15)];
  const int nibble = j < 16 ? (byte & 15) : (byte >> 4);
  const uint8_t* s = row + cols / 2 + group * 4;
  const uint16_t d = static_cast<uint16_t>(s[0] | (s[1] << 8));
  const uint16_t m = static_cast<uint16_t>(s[2] | (s[3] << 8));
  return __fadd_rn(__fmul_rn(__half2float(__ushort_as_half(d)),
                             static_cast<float>(nibble)),
                   __half2float(__ushort_as_half(m)));
}

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_W4_DEVICE_CUH_
