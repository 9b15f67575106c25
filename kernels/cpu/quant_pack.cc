// Repacking of GGML quantized blocks and of float weights into the 16-row
// layouts of cpu_kernels.h. Runs once per weight at load; plain scalar code.
// Also DropSecondLevel, the one-level activations' pass over what
// QuantizeRows wrote.
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu {
namespace {

int64_t QsBytes(DType dtype) {
  return dtype == DType::kQ8_0 ? 8 * 64 : 4 * 64;
}
int64_t ScaleBytes(DType dtype) {
  return dtype == DType::kQ4_1 ? 2 * kPackRows * 2 : kPackRows * 2;
}

}  // namespace

int64_t PackedQuantBytes(DType dtype, int64_t rows, int64_t cols) {
  const int64_t groups = (rows + kPackRows - 1) / kPackRows;
  return groups * (cols / kQuantBlockSize) *
         (QsBytes(dtype) + ScaleBytes(dtype));
}

PackedQuant PackQuant(DType dtype, int64_t rows, int64_t cols, const void* src,
                      bool unsigned_q8, uint8_t* dst) {
  PackedQuant packed;
  packed.dtype = dtype;
  packed.rows = rows;
  packed.cols = cols;
  packed.num_groups = (rows + kPackRows - 1) / kPackRows;
  packed.num_blocks = cols / kQuantBlockSize;
  packed.qs_bytes = QsBytes(dtype);
  packed.block_bytes = packed.qs_bytes + ScaleBytes(dtype);
  packed.unsigned_q8 = unsigned_q8 && dtype == DType::kQ8_0;
  packed.data = dst;
  std::memset(dst, 0, PackedQuantBytes(dtype, rows, cols));

  const int64_t row_bytes = RowBytes(dtype, cols);
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t g = 0; g < packed.num_groups; ++g) {
    for (int64_t b = 0; b < packed.num_blocks; ++b) {
      uint8_t* out = dst + (g * packed.num_blocks + b) * packed.block_bytes;
      auto* d_out = reinterpret_cast<uint16_t*>(out + packed.qs_bytes);
      uint16_t* m_out = d_out + kPackRows;
      for (int r = 0; r < kPackRows; ++r) {
        const int64_t row = g * kPackRows + r;
        if (row >= rows) break;
        const uint8_t* block = bytes + row * row_bytes + b * DTypeBlockBytes(dtype);
        switch (dtype) {
          case DType::kQ8_0: {
            BlockQ8_0 q;
            std::memcpy(&q, block, sizeof(q));
            d_out[r] = q.d;
            for (int s = 0; s < 8; ++s) {
              for (int j = 0; j < 4; ++j) {
                uint8_t v = static_cast<uint8_t>(q.qs[4 * s + j]);
                if (packed.unsigned_q8) v ^= 0x80;  // q + 128
                out[64 * s + 4 * r + j] = v;
              }
            }
            break;
          }
          case DType::kQ4_0:
          case DType::kQ4_1: {
            const bool has_min = dtype == DType::kQ4_1;
            uint16_t d, m = 0;
            const uint8_t* qs = block + (has_min ? 4 : 2);
            std::memcpy(&d, block, 2);
            if (has_min) std::memcpy(&m, block + 2, 2);
            d_out[r] = d;
            if (has_min) m_out[r] = m;
            for (int s = 0; s < 4; ++s) {
              for (int j = 0; j < 4; ++j) out[64 * s + 4 * r + j] = qs[4 * s + j];
            }
            break;
          }
          default:
            break;
        }
      }
    }
  }
  return packed;
}

int64_t PackedFloatBytes(DType dtype, int64_t rows, int64_t cols) {
  const int64_t groups = (rows + kPackRows - 1) / kPackRows;
  return groups * cols * kPackRows * (dtype == DType::kF32 ? 4 : 2);
}

PackedFloat PackFloat(DType dtype, int64_t rows, int64_t cols, const void* src,
                      uint8_t* dst) {
  PackedFloat packed;
  packed.dtype = dtype;
  packed.rows = rows;
  packed.cols = cols;
  packed.num_groups = (rows + kPackRows - 1) / kPackRows;
  packed.data = dst;
  const int64_t element = dtype == DType::kF32 ? 4 : 2;
  std::memset(dst, 0, PackedFloatBytes(dtype, rows, cols));
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t g = row / kPackRows, i = row % kPackRows;
    const uint8_t* in = bytes + row * cols * element;
    uint8_t* out = dst + (g * cols * kPackRows + i) * element;
    for (int64_t k = 0; k < cols; ++k) {
      std::memcpy(out + k * kPackRows * element, in + k * element, element);
    }
  }
  return packed;
}

void DropSecondLevel(int64_t cols, int64_t row_begin, int64_t row_end, int8_t* q,
                     int8_t* r, const float* scale, float* scaled_sum,
                     const int32_t* sum_q, int32_t* sum_r, bool tile_order) {
  const int64_t blocks = cols / kQuantBlockSize;
  for (int64_t row = row_begin; row < row_end; ++row) {
    if (tile_order) {
      for (int64_t b = 0; b < blocks; ++b) {
        std::memset(q + AmxTileOffset(row, b, blocks) + 512, 0, kQuantBlockSize);
      }
    } else {
      std::memset(r + row * cols, 0, static_cast<size_t>(cols));
    }
    for (int64_t b = row * blocks; b < (row + 1) * blocks; ++b) {
      sum_r[b] = 0;
      scaled_sum[b] = scale[b] * static_cast<float>(sum_q[b]);
    }
  }
}

}  // namespace weft::cpu
