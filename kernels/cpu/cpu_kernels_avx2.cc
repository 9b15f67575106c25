// AVX2 + FMA + F16C kernels: the baseline every x86-64 server has. Holds
// the activation quantizer, the float-weight matmuls used where AVX-512 is
// missing and the vectorized small ops (RMSNorm, SiLU·mul), which are
// memory- or latency-bound and gain little from wider vectors. Quantized
// matmuls: quant_matmul_avx2.h; attention: attention_avx2.cc.
// Compiled with -mavx2 -mfma -mf16c: helpers have internal linkage (see
// cpu_kernels_avx512.cc for why).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::avx2 {
namespace {

// --- Float-weight matmul ---------------------------------------------------

template <DType kType>
inline __m256 LoadWeights8(const uint8_t* row, int64_t k) {
  if constexpr (kType == DType::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else if constexpr (kType == DType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(row + 2 * k)));
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <DType kType>
inline float LoadWeight1(const uint8_t* row, int64_t k) {
  if constexpr (kType == DType::kF32) {
    float v;
    std::memcpy(&v, row + 4 * k, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    if constexpr (kType == DType::kF16) return _cvtsh_ss(h);
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  }
}

template <DType kType, int WT, int MT>
void FloatTile(const uint8_t* w, int64_t row_bytes, int64_t cols, int64_t r0,
               const float* x, int64_t x_stride, int64_t m0, const float* bias,
               OutputRows y) {
  __m256 acc[WT][MT];
  for (int i = 0; i < WT; ++i) {
    for (int t = 0; t < MT; ++t) acc[i][t] = _mm256_setzero_ps();
  }
  const int64_t main = cols - cols % 8;
  constexpr int64_t kElement = kType == DType::kF32 ? 4 : 2;
  for (int64_t k = 0; k < main; k += 8) {
    if constexpr (MT == 1) {
      // A decode streams the tile's WT rows: fetch the same place of the
      // next tile's rows (one tile ahead), once per 64-byte line.
      if ((k * kElement) % 64 == 0) {
        for (int i = 0; i < WT; ++i) {
          _mm_prefetch(reinterpret_cast<const char*>(w + (r0 + WT + i) * row_bytes +
                                                     k * kElement),
                       _MM_HINT_T0);
        }
      }
    }
    __m256 xv[MT];
    for (int t = 0; t < MT; ++t) xv[t] = _mm256_loadu_ps(x + (m0 + t) * x_stride + k);
    for (int i = 0; i < WT; ++i) {
      const __m256 wv = LoadWeights8<kType>(w + (r0 + i) * row_bytes, k);
      for (int t = 0; t < MT; ++t) acc[i][t] = _mm256_fmadd_ps(wv, xv[t], acc[i][t]);
    }
  }
  for (int i = 0; i < WT; ++i) {
    const float b = bias != nullptr ? bias[r0 + i] : 0.0f;
    for (int t = 0; t < MT; ++t) {
      float sum = HorizontalSum(acc[i][t]);
      for (int64_t k = main; k < cols; ++k) {
        sum += LoadWeight1<kType>(w + (r0 + i) * row_bytes, k) *
               x[(m0 + t) * x_stride + k];
      }
      y.data[(m0 + t) * y.stride + r0 + i] = sum + b;
    }
  }
}

template <DType kType>
void FloatMatMulTyped(const void* w, int64_t cols, int64_t row_begin,
                      int64_t row_end, const float* x, int64_t x_rows,
                      int64_t x_stride, const float* bias, OutputRows y) {
  const auto* bytes = static_cast<const uint8_t*>(w);
  const int64_t row_bytes = cols * (kType == DType::kF32 ? 4 : 2);
  for (int64_t m0 = 0; m0 < x_rows; m0 += 2) {
    const bool pair = m0 + 2 <= x_rows;
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
      if (pair) {
        FloatTile<kType, 4, 2>(bytes, row_bytes, cols, r, x, x_stride, m0, bias, y);
      } else {
        FloatTile<kType, 4, 1>(bytes, row_bytes, cols, r, x, x_stride, m0, bias, y);
      }
    }
    for (; r < row_end; ++r) {
      if (pair) {
        FloatTile<kType, 1, 2>(bytes, row_bytes, cols, r, x, x_stride, m0, bias, y);
      } else {
        FloatTile<kType, 1, 1>(bytes, row_bytes, cols, r, x, x_stride, m0, bias, y);
      }
    }
  }
}

// --- Packed float-weight matmul -------------------------------------------

// 8 packed weights (half a column of a group) as fp32.
template <DType kType>
inline __m256 LoadPacked8(const uint8_t* p) {
  if constexpr (kType == DType::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (kType == DType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// avx512::PackedFloatTile in 256-bit halves: GT groups × MT activation rows,
// per column GT × 2 weight vectors times MT broadcast activations; every
// output lane is one fp32 multiply-add chain over the columns in order, as
// in the AVX-512 kernel, so the two give the same bits.
template <DType kType, int GT, int MT>
void PackedFloatTile(const PackedFloat& w, const float* x, int64_t x_stride,
                     int64_t g0, int64_t m0, const float* bias, OutputRows y) {
  constexpr int64_t kElement = kType == DType::kF32 ? 4 : 2;
  const int64_t cols = w.cols;
  const int64_t group_bytes = cols * kPackRows * kElement;
  const uint8_t* base = w.data + g0 * group_bytes;
  const float* xr[MT];
  for (int t = 0; t < MT; ++t) xr[t] = x + (m0 + t) * x_stride;
  __m256 acc[GT][2][MT];
  for (int gi = 0; gi < GT; ++gi) {
    for (int t = 0; t < MT; ++t) acc[gi][0][t] = acc[gi][1][t] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < cols; ++k) {
    if constexpr (MT == 1) {
      if ((k * kPackRows * kElement) % 64 == 0) {  // decode: fetch ahead
        for (int gi = 0; gi < GT; ++gi) {
          _mm_prefetch(reinterpret_cast<const char*>(base + gi * group_bytes +
                                                     k * kPackRows * kElement +
                                                     w.prefetch_bytes),
                       _MM_HINT_T0);
        }
      }
    }
    for (int gi = 0; gi < GT; ++gi) {
      const uint8_t* column = base + gi * group_bytes + k * kPackRows * kElement;
      for (int h = 0; h < 2; ++h) {
        const __m256 wv = LoadPacked8<kType>(column + 8 * kElement * h);
        for (int t = 0; t < MT; ++t) {
          acc[gi][h][t] = _mm256_fmadd_ps(wv, _mm256_broadcast_ss(xr[t] + k), acc[gi][h][t]);
        }
      }
    }
  }
  // Unrolled, so that every acc index is a constant (a loop here made GCC
  // keep the accumulators on the stack, a store per column).
#pragma GCC unroll 8
  for (int gi = 0; gi < GT; ++gi) {
#pragma GCC unroll 8
    for (int t = 0; t < MT; ++t) {
      StoreGroupRow(y, m0 + t, g0 + gi, w.rows, bias, acc[gi][0][t], acc[gi][1][t]);
    }
  }
}

// Rows of a tile: 4 × 2 accumulators, 4 broadcasts and the weights fit the
// 16 registers (at 6 rows GCC kept the accumulators on the stack).
constexpr int kFloatTileRows = 4;
// Activation rows per pass over a thread's weight groups (as AVX-512's).
constexpr int64_t kFloatRowBlock = 48;

template <DType kType>
void PackedFloatMatMulTyped(const PackedFloat& w, const float* x,
                            int64_t x_rows, int64_t x_stride,
                            int64_t group_begin, int64_t group_end,
                            const float* bias, OutputRows y) {
  if (x_rows == 1) {
    constexpr int64_t kGroups = FloatDecodeTileGroups(1);
    int64_t g = group_begin;
    for (; g + kGroups <= group_end; g += kGroups) {
      PackedFloatTile<kType, kGroups, 1>(w, x, x_stride, g, 0, bias, y);
    }
    for (; g + 2 <= group_end; g += 2) {
      PackedFloatTile<kType, 2, 1>(w, x, x_stride, g, 0, bias, y);
    }
    for (; g < group_end; ++g) PackedFloatTile<kType, 1, 1>(w, x, x_stride, g, 0, bias, y);
    return;
  }
  for (int64_t mb = 0; mb < x_rows; mb += kFloatRowBlock) {
    const int64_t me = MinI64(mb + kFloatRowBlock, x_rows);
    for (int64_t g = group_begin; g < group_end; ++g) {
      for (int64_t m0 = mb; m0 < me; m0 += kFloatTileRows) {
        switch (MinI64(kFloatTileRows, me - m0)) {
#define WEFT_CASE(n)                                                         \
  case n:                                                                    \
    PackedFloatTile<kType, 1, n>(w, x, x_stride, g, m0, bias, y);            \
    break;
          WEFT_CASE(1) WEFT_CASE(2) WEFT_CASE(3) WEFT_CASE(4)
#undef WEFT_CASE
        }
      }
    }
  }
}

}  // namespace

void QuantizeRows(const float* x, int64_t x_stride, int64_t cols,
                  int64_t row_begin, int64_t row_end, int8_t* q, int8_t* r,
                  float* scale, float* scaled_sum, int32_t* sum_q,
                  int32_t* sum_r, float* fine_scale, bool tile_order) {
  const int64_t nb = cols / kQuantBlockSize;
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 second = _mm256_set1_ps(kSecondLevel);
  const int rounding = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  // packs interleave 128-bit lanes; a cross-lane permute restores order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto pack = [&](const __m256i* v, int8_t* dst) {
    const __m256i a = _mm256_packs_epi32(v[0], v[1]);
    const __m256i b = _mm256_packs_epi32(v[2], v[3]);
    const __m256i bytes =
        _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), bytes);
  };
  auto lane_sum = [](__m256i v) {
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
    int32_t total = 0;
    for (int32_t lane : lanes) total += lane;
    return total;
  };
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float* values = x + row * x_stride;
    for (int64_t b = 0; b < nb; ++b) {
      const float* v = values + b * kQuantBlockSize;
      __m256 in[4];
      __m256 amax = _mm256_setzero_ps();
      for (int i = 0; i < 4; ++i) {
        in[i] = _mm256_loadu_ps(v + 8 * i);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, in[i]));
      }
      const float max_abs = HorizontalMax(amax);
      const float d = max_abs / 127.0f;
      const __m256 inv = _mm256_set1_ps(max_abs > 0 ? 127.0f / max_abs : 0.0f);
      __m256i q32[4], r32[4];
      __m256i q_total = _mm256_setzero_si256(), r_total = _mm256_setzero_si256();
      for (int i = 0; i < 4; ++i) {
        const __m256 scaled = _mm256_mul_ps(in[i], inv);
        const __m256 first = _mm256_round_ps(scaled, rounding);
        const __m256 rest = _mm256_round_ps(
            _mm256_mul_ps(_mm256_sub_ps(scaled, first), second), rounding);
        q32[i] = _mm256_cvtps_epi32(first);
        r32[i] = _mm256_cvtps_epi32(rest);
        q_total = _mm256_add_epi32(q_total, q32[i]);
        r_total = _mm256_add_epi32(r_total, r32[i]);
      }
      if (tile_order) {
        int8_t* tile = q + AmxTileOffset(row, b, nb);
        pack(q32, tile);
        pack(r32, tile + 512);
      } else {
        const int64_t offset = row * cols + b * kQuantBlockSize;
        pack(q32, q + offset);
        pack(r32, r + offset);
      }
      const int64_t meta = row * nb + b;
      scale[meta] = d;
      fine_scale[meta] = d * (1.0f / kSecondLevel);
      sum_q[meta] = lane_sum(q_total);
      sum_r[meta] = lane_sum(r_total);
      scaled_sum[meta] =
          d * (static_cast<float>(sum_q[meta]) +
               static_cast<float>(sum_r[meta]) / kSecondLevel);
    }
  }
}

void FloatMatMul(DType dtype, const void* w, int64_t cols, int64_t row_begin,
                 int64_t row_end, const float* x, int64_t x_rows,
                 int64_t x_stride, const float* bias, OutputRows y) {
  switch (dtype) {
    case DType::kF32:
      return FloatMatMulTyped<DType::kF32>(w, cols, row_begin, row_end, x,
                                           x_rows, x_stride, bias, y);
    case DType::kF16:
      return FloatMatMulTyped<DType::kF16>(w, cols, row_begin, row_end, x,
                                           x_rows, x_stride, bias, y);
    case DType::kBF16:
      return FloatMatMulTyped<DType::kBF16>(w, cols, row_begin, row_end, x,
                                            x_rows, x_stride, bias, y);
    default:
      return;
  }
}

void PackedFloatMatMul(const PackedFloat& w, const float* x, int64_t x_rows,
                       int64_t x_stride, int64_t group_begin,
                       int64_t group_end, const float* bias, OutputRows y) {
  switch (w.dtype) {
    case DType::kF32:
      return PackedFloatMatMulTyped<DType::kF32>(w, x, x_rows, x_stride,
                                                 group_begin, group_end, bias, y);
    case DType::kF16:
      return PackedFloatMatMulTyped<DType::kF16>(w, x, x_rows, x_stride,
                                                 group_begin, group_end, bias, y);
    case DType::kBF16:
      return PackedFloatMatMulTyped<DType::kBF16>(w, x, x_rows, x_stride,
                                                  group_begin, group_end, bias, y);
    default:
      return;
  }
}

// --- Small ops -------------------------------------------------------------

void RmsNormRow(const float* x, const float* weight, int64_t n, float eps,
                float* out) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  float sum_squares = HorizontalSum(acc);
  for (; i < n; ++i) sum_squares += x[i] * x[i];
  const float inv_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(n) + eps);
  const __m256 scale = _mm256_set1_ps(inv_rms);
  for (i = 0; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), scale),
                                            _mm256_loadu_ps(weight + i)));
  }
  for (; i < n; ++i) out[i] = x[i] * inv_rms * weight[i];
}

void AddRmsNormRow(float* residual, const float* x, const float* weight,
                   int64_t n, float eps, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(residual + i, _mm256_add_ps(_mm256_loadu_ps(residual + i),
                                                 _mm256_loadu_ps(x + i)));
  }
  for (; i < n; ++i) residual[i] += x[i];
  RmsNormRow(residual, weight, n, eps, out);
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = Exp(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void FloatsToHalves(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = FloatToHalf(src[i]);
}

}  // namespace weft::cpu::avx2
