#include "kernels/w4_pack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace weft {

absl::Status RepackToW4(DType dtype, const void* src, int64_t rows,
                        int64_t cols, uint8_t* dst) {
  if (!CanRepackToW4(dtype) || cols <= 0 || cols % kQuantBlockSize != 0 ||
      rows < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RepackToW4: cannot repack ", rows, "x", cols, " ", DTypeName(dtype)));
  }
  const int64_t groups = cols / kQuantBlockSize;
  const int64_t src_row_bytes = RowBytes(dtype, cols);
  const int64_t dst_row_bytes = RowBytes(DType::kW4, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* in = static_cast<const uint8_t*>(src) + r * src_row_bytes;
    uint8_t* nibbles = dst + r * dst_row_bytes;
    uint8_t* scales = nibbles + cols / 2;
    for (int64_t g = 0; g < groups; ++g) {
      uint16_t pair[2];
      const uint8_t* qs;
      if (dtype == DType::kQ4_1) {
        BlockQ4_1 block;
        std::memcpy(&block, in + g * sizeof(BlockQ4_1), sizeof(block));
        pair[0] = block.d;
        pair[1] = block.m;
        qs = in + g * sizeof(BlockQ4_1) + offsetof(BlockQ4_1, qs);
      } else {
        BlockQ4_0 block;
        std::memcpy(&block, in + g * sizeof(BlockQ4_0), sizeof(block));
        // x = d (q - 8) = d q + (-8 d): -8d is exact in f16 unless it
        // overflows, and d q + (-8d) then rounds to the exact d (q - 8).
        const float min = -8.0f * HalfToFloat(block.d);
        if (!std::isfinite(min) || std::fabs(min) > 65504.0f) {
          return absl::InvalidArgumentError(absl::StrCat(
              "RepackToW4: a Q4_0 scale in row ", r, " is too large for W4"));
        }
        pair[0] = block.d;
        pair[1] = FloatToHalf(min);
        qs = in + g * sizeof(BlockQ4_0) + offsetof(BlockQ4_0, qs);
      }
      std::memcpy(nibbles + g * (kQuantBlockSize / 2), qs,
                  kQuantBlockSize / 2);
      std::memcpy(scales + g * sizeof(pair), pair, sizeof(pair));
    }
  }
  return absl::OkStatus();
}

absl::Status QuantizeToW4(DType dtype, const void* src, int64_t rows,
                          int64_t cols, uint8_t* dst) {
  if ((dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) ||
      cols <= 0 || cols % kQuantBlockSize != 0 || rows < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QuantizeToW4: cannot quantize ", rows, "x", cols, " ",
        DTypeName(dtype)));
  }
  const int64_t src_row_bytes = RowBytes(dtype, cols);
  const int64_t dst_row_bytes = RowBytes(DType::kW4, cols);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(dtype, static_cast<const uint8_t*>(src) + r * src_row_bytes,
                  row.data(), cols);
    uint8_t* nibbles = dst + r * dst_row_bytes;
    uint8_t* scales = nibbles + cols / 2;
    for (int64_t g = 0; g < cols / kQuantBlockSize; ++g) {
      const float* x = row.data() + g * kQuantBlockSize;
      float lo = x[0], hi = x[0];
      bool finite = true;
      for (int j = 0; j < kQuantBlockSize; ++j) {
        finite = finite && std::isfinite(x[j]);
        lo = std::min(lo, x[j]);
        hi = std::max(hi, x[j]);
      }
      const uint16_t pair[2] = {FloatToHalf((hi - lo) / 15.0f),
                                FloatToHalf(lo)};
      const float d = HalfToFloat(pair[0]), m = HalfToFloat(pair[1]);
      // An infinite d or m would dequantize to inf or NaN (inf · 0).
      if (!finite || !std::isfinite(d) || !std::isfinite(m)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "QuantizeToW4: row ", r, ", columns ", g * kQuantBlockSize, "..",
            (g + 1) * kQuantBlockSize - 1,
            ": a value is not finite or the group's range does not fit f16"));
      }
      auto q = [&](float v) {
        if (d == 0) return 0;
        return static_cast<int>(
            std::clamp(std::lround((v - m) / d), 0L, 15L));
      };
      uint8_t* qs = nibbles + g * (kQuantBlockSize / 2);
      for (int j = 0; j < kQuantBlockSize / 2; ++j) {
        qs[j] = static_cast<uint8_t>(q(x[j]) | q(x[j + 16]) << 4);
      }
      std::memcpy(scales + g * sizeof(pair), pair, sizeof(pair));
    }
  }
  return absl::OkStatus();
}

}  // namespace weft
