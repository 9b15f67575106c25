// Repacking of GGUF Q4_0/Q4_1 matrices into W4 (kernels/dtype.h), the
// layout of the CUDA backend's W4A16 kernels: per row, all nibbles, then all
// (d, m) scale pairs, so a warp reads a row's nibbles and its scales as two
// contiguous runs with 8-byte loads (GGML blocks are 18 or 20 bytes, which
// no vector load fits). Host code: the backend repacks on the host at
// upload and copies the result; this file is the tested definition.
#ifndef WEFT_KERNELS_W4_PACK_H_
#define WEFT_KERNELS_W4_PACK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/dtype.h"

namespace weft {

// Whether `dtype` can be repacked into W4 (Q4_0 and Q4_1) without loss.
inline bool CanRepackToW4(DType dtype) {
  return dtype == DType::kQ4_0 || dtype == DType::kQ4_1;
}

// dst (rows × RowBytes(kW4, cols) bytes) = src (rows × cols of `dtype`,
// GGML blocks) repacked; every element dequantizes to exactly the value
// DequantizeRow gives for the source. InvalidArgument for another dtype, a
// cols that is not a multiple of 32, or a Q4_0 scale whose -8d does not fit
// an f16.
absl::Status RepackToW4(DType dtype, const void* src, int64_t rows,
                        int64_t cols, uint8_t* dst);

// dst (rows × RowBytes(kW4, cols) bytes) = src (rows × cols of F32, F16 or
// BF16) quantized to 4 bits, round to nearest, per 32-element group with
// its own scale and minimum as GGML's Q4_1 reference quantizer does
// (d = (max − min) / 15 and m = min, both stored as f16, q = round((x − m)
// / d) clamped to 0..15): every element comes back within d/2 plus the f16
// rounding of d and m. For --weight_dtype int4 on float checkpoints
// (synthetic models): lossy, for throughput. InvalidArgument for another
// dtype, a cols that is not a multiple of 32, a value that is not finite,
// or a group whose minimum or scale overflows f16.
absl::Status QuantizeToW4(DType dtype, const void* src, int64_t rows,
                          int64_t cols, uint8_t* dst);

}  // namespace weft

#endif  // WEFT_KERNELS_W4_PACK_H_
