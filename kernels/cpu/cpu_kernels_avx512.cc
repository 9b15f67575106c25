// AVX-512 (F/BW/VL/DQ/VNNI) matmul kernels; see cpu_kernels.h for the
// packed layout. Compiled with -mavx512* flags: every helper here has
// internal linkage so no inline function compiled for AVX-512 can be
// merged into code that runs on an AVX2-only processor.
//
// QuantMatMul tiles GT weight groups (16 output columns each) × MT
// activation rows; each (group, block) of weights is loaded and unpacked
// once per tile and used for MT rows and both activation levels:
//   M = 1: GT = 4 (decode: independent accumulator chains), M = 2: GT = 2,
//   otherwise GT = 1 with tiles of 4 rows (prefill, batched decode), the
//   activations in the tile order (TileOrderQuantTile).
// FloatMatMul (F32/F16/BF16 weights in place) tiles WT weight rows × MT
// activation rows of fp32 multiply-adds with one horizontal sum per output.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx512_common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::avx512 {
namespace {

// Where QuantizeRows puts block j's vector among the 16 inputs of
// Reduce16 so that lane j of the result is block j's.
constexpr int ReductionSlot(int j) { return 4 * (j % 4) + j / 4; }

// Reduces each of 16 vectors over its lanes with `op` (associative and
// commutative), all at once: lane 4i + j of the result is the reduction of
// v[4j + i] (four levels of shuffles, 15 ops instead of 16 separate trees).
template <typename Op>
inline __m512 Reduce16(const __m512* v, Op op) {
  __m512 a[8], b[4], c[2];
  for (int k = 0; k < 8; ++k) {  // 256-bit halves: v[2k] low, v[2k + 1] high
    a[k] = op(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
              _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
  }
  for (int k = 0; k < 4; ++k) {  // 128-bit quarters: v[4k .. 4k + 3]
    b[k] = op(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x88),
              _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xDD));
  }
  for (int k = 0; k < 2; ++k) {  // lane pairs: quarter Q of b[2k], b[2k + 1]
    c[k] = op(_mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0x44),
              _mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0xEE));
  }
  return op(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
}

template <DType kType>
constexpr int32_t kOffset = kType == DType::kQ4_0 ? 8
                            : kType == DType::kQ8_0 ? 128
                                                    : 0;

inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm512_set1_epi32(v);
}

// kLevels 1: x.one_level, the second level's products skipped.
template <DType kType, int kLevels, int GT, int MT>
void QuantTile(const PackedQuant& w, const QuantizedRows& x, int64_t g0,
               int64_t m0, const float* bias, OutputRows y) {
  const int64_t nb = w.num_blocks;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[GT][MT];
  for (int gi = 0; gi < GT; ++gi) {
    for (int t = 0; t < MT; ++t) acc[gi][t] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* xq[MT];
    const int8_t* xr[MT];
    // Integer sums per activation level: [group][row], q and r.
    __m512i sq[GT][MT], sr[GT][MT];
    for (int t = 0; t < MT; ++t) {
      const int64_t meta = (m0 + t) * nb + b;
      xq[t] = x.q + (m0 + t) * x.cols + b * kQuantBlockSize;
      xr[t] = x.r + (m0 + t) * x.cols + b * kQuantBlockSize;
      const __m512i init_q = _mm512_set1_epi32(-kOffset<kType> * x.sum_q[meta]);
      const __m512i init_r = _mm512_set1_epi32(-kOffset<kType> * x.sum_r[meta]);
      for (int gi = 0; gi < GT; ++gi) {
        sq[gi][t] = init_q;
        sr[gi][t] = init_r;
      }
    }
    const uint8_t* base[GT];
    for (int gi = 0; gi < GT; ++gi) {
      base[gi] = w.data + ((g0 + gi) * nb + b) * w.block_bytes;
    }
    // A tile streams GT groups at once: fetch each a block's bytes
    // w.prefetch_bytes ahead into L1 (past a group's end: the next
    // group's) and, with the L2 policy (AMD), w.l2_prefetch_bytes ahead
    // into L2.
    for (int gi = 0; gi < GT; ++gi) {
      for (int64_t o = 0; o < w.block_bytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(base[gi] + w.prefetch_bytes + o),
                     _MM_HINT_T0);
        if (w.l2_prefetch_bytes > 0) {
          _mm_prefetch(reinterpret_cast<const char*>(base[gi] + w.l2_prefetch_bytes + o),
                       _MM_HINT_T1);
        }
      }
    }
    if constexpr (kType == DType::kQ8_0) {
      for (int s = 0; s < 8; ++s) {
        for (int gi = 0; gi < GT; ++gi) {
          const __m512i p = _mm512_loadu_si512(base[gi] + 64 * s);
          for (int t = 0; t < MT; ++t) {
            sq[gi][t] = _mm512_dpbusd_epi32(sq[gi][t], p, Broadcast4(xq[t] + 4 * s));
            if constexpr (kLevels == 2) {
              sr[gi][t] = _mm512_dpbusd_epi32(sr[gi][t], p, Broadcast4(xr[t] + 4 * s));
            }
          }
        }
      }
    } else {
      for (int s = 0; s < 4; ++s) {
        for (int gi = 0; gi < GT; ++gi) {
          const __m512i p = _mm512_loadu_si512(base[gi] + 64 * s);
          const __m512i l = _mm512_and_si512(p, low4);
          const __m512i h = _mm512_and_si512(_mm512_srli_epi16(p, 4), low4);
          for (int t = 0; t < MT; ++t) {
            sq[gi][t] = _mm512_dpbusd_epi32(sq[gi][t], l, Broadcast4(xq[t] + 4 * s));
            sq[gi][t] = _mm512_dpbusd_epi32(sq[gi][t], h,
                                            Broadcast4(xq[t] + 16 + 4 * s));
            if constexpr (kLevels == 2) {
              sr[gi][t] = _mm512_dpbusd_epi32(sr[gi][t], l, Broadcast4(xr[t] + 4 * s));
              sr[gi][t] = _mm512_dpbusd_epi32(sr[gi][t], h,
                                              Broadcast4(xr[t] + 16 + 4 * s));
            }
          }
        }
      }
    }
    for (int gi = 0; gi < GT; ++gi) {
      const BlockScales scales = LoadBlockScales<kType>(w, base[gi]);
      for (int t = 0; t < MT; ++t) {
        const int64_t meta = (m0 + t) * nb + b;
        acc[gi][t] = BlockEpilogue<kType == DType::kQ4_1>(
            acc[gi][t], sq[gi][t], sr[gi][t], scales.d, scales.mn,
            x.fine_scale[meta], x.scaled_sum[meta]);
      }
    }
  }
  for (int gi = 0; gi < GT; ++gi) {
    StoreGroupRows(y, m0, MT, g0 + gi, w.rows, bias,
                   [&](int t) { return acc[gi][t]; });
  }
}

// acc + Σ of the 4 products of each 32-bit lane of `weights` (unsigned
// bytes) with the 4 signed bytes at p, broadcast: VPDPBUSD with its
// embedded-broadcast memory operand. GCC does not fold _mm512_set1_epi32
// of a load into it, and a separate VPBROADCASTD per product doubled the
// instructions the batched kernel issues.
inline __m512i DotBroadcast(__m512i acc, __m512i weights, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0"
      : "+v"(acc)
      : "v"(weights), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// QuantTile for MT ≤ 4 rows of activations in the tile order (see
// QuantizedRows): a block's q bytes of the tile's rows are 32 apart and
// their r bytes 512 further, so every product reads its 4 activation bytes
// at a constant offset from one pointer per block. One group per tile:
// batched decodes and prompts. QuantMatMulTyped passes over a group once
// per 4 rows, so only the first pass reads its weights from memory. With
// the L2 policy (w.l2_prefetch_bytes > 0, AMD) that pass fetches the next
// group's into L2 (the same bytes one group ahead), which hides the memory
// latency behind the group's other passes: on Zen 4 (weights out of
// cache, 16 rows × 1536 × 576, one thread) the kernel went from 80 to 90
// GMAC/s (Q4_1) and 77 to 87 (Q8_0), against 95-97 with the weights in
// L2, and the near prefetch into L1 added nothing to it. Without it (Intel,
// where 1 KiB ahead into L1 was measured, 1.18× at B=4 on Sapphire
// Rapids) every pass fetches w.prefetch_bytes ahead into L1.
template <DType kType, int kLevels, int MT>
void TileOrderQuantTile(const PackedQuant& w, const QuantizedRows& x,
                        int64_t g, int64_t m0, const float* bias, OutputRows y) {
  const int64_t nb = w.num_blocks;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[MT];
  for (int t = 0; t < MT; ++t) acc[t] = _mm512_setzero_ps();
  const int8_t* a = x.q + AmxTileOffset(m0, 0, nb);
  const int64_t group_bytes = nb * w.block_bytes;
  const uint8_t* block = w.data + g * group_bytes;
  for (int64_t b = 0; b < nb; ++b, a += 1024, block += w.block_bytes) {
    __m512i sq[MT], sr[MT];
    for (int t = 0; t < MT; ++t) {
      const int64_t meta = (m0 + t) * nb + b;
      sq[t] = _mm512_set1_epi32(-kOffset<kType> * x.sum_q[meta]);
      sr[t] = _mm512_set1_epi32(-kOffset<kType> * x.sum_r[meta]);
    }
    if (w.l2_prefetch_bytes == 0) {
      for (int64_t o = 0; o < w.block_bytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(block + w.prefetch_bytes + o),
                     _MM_HINT_T0);
      }
    } else if (m0 == 0) {
      for (int64_t o = 0; o < w.block_bytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(block + group_bytes + o),
                     _MM_HINT_T1);
      }
    }
    if constexpr (kType == DType::kQ8_0) {
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const __m512i p = _mm512_loadu_si512(block + 64 * s);
#pragma GCC unroll 4
        for (int t = 0; t < MT; ++t) {
          sq[t] = DotBroadcast(sq[t], p, a + 32 * t + 4 * s);
          if constexpr (kLevels == 2) sr[t] = DotBroadcast(sr[t], p, a + 512 + 32 * t + 4 * s);
        }
      }
    } else {
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m512i p = _mm512_loadu_si512(block + 64 * s);
        const __m512i l = _mm512_and_si512(p, low4);
        const __m512i h = _mm512_and_si512(_mm512_srli_epi16(p, 4), low4);
#pragma GCC unroll 4
        for (int t = 0; t < MT; ++t) {
          sq[t] = DotBroadcast(sq[t], l, a + 32 * t + 4 * s);
          sq[t] = DotBroadcast(sq[t], h, a + 32 * t + 16 + 4 * s);
          if constexpr (kLevels == 2) {
            sr[t] = DotBroadcast(sr[t], l, a + 512 + 32 * t + 4 * s);
            sr[t] = DotBroadcast(sr[t], h, a + 512 + 32 * t + 16 + 4 * s);
          }
        }
      }
    }
    const BlockScales scales = LoadBlockScales<kType>(w, block);
#pragma GCC unroll 4
    for (int t = 0; t < MT; ++t) {
      const int64_t meta = (m0 + t) * nb + b;
      acc[t] = BlockEpilogue<kType == DType::kQ4_1>(acc[t], sq[t], sr[t], scales.d,
                                                    scales.mn, x.fine_scale[meta],
                                                    x.scaled_sum[meta]);
    }
  }
  StoreGroupRows(y, m0, MT, g, w.rows, bias, [&](int t) { return acc[t]; });
}

template <DType kType, int kLevels, int GT>
void QuantTileRows(const PackedQuant& w, const QuantizedRows& x, int64_t g0,
                   int64_t m0, int mt, const float* bias, OutputRows y) {
  switch (mt) {
#define WEFT_CASE(n)                                                                \
  case n:                                                                           \
    if constexpr (GT * n <= 4) QuantTile<kType, kLevels, GT, n>(w, x, g0, m0, bias, y); \
    break;
    WEFT_CASE(1) WEFT_CASE(2)
#undef WEFT_CASE
  }
}

// Tiles: two int32 sums (one per activation level) and one float sum per
// (group, row) — GT·MT ≤ 4 keeps them and the unpacked weights in the 32
// vector registers.
template <DType kType, int kLevels>
void QuantMatMulTyped(const PackedQuant& w, const QuantizedRows& x,
                      int64_t group_begin, int64_t group_end,
                      const float* bias, OutputRows y) {
  const int64_t m = x.rows;
  int64_t g = group_begin;
  constexpr int64_t kOneRow = QuantDecodeTileGroups(1);
  constexpr int64_t kTwoRows = QuantDecodeTileGroups(2);
  if (m == 1) {
    for (; g + kOneRow <= group_end; g += kOneRow) {
      QuantTileRows<kType, kLevels, kOneRow>(w, x, g, 0, 1, bias, y);
    }
  }
  if (m <= 2) {
    const int mt = static_cast<int>(m);
    for (; g + kTwoRows <= group_end; g += kTwoRows) {
      QuantTileRows<kType, kLevels, kTwoRows>(w, x, g, 0, mt, bias, y);
    }
    for (; g < group_end; ++g) QuantTileRows<kType, kLevels, 1>(w, x, g, 0, mt, bias, y);
    return;
  }
  // kMinTileOrderRows or more: x in the tile order.
  for (; g < group_end; ++g) {
    for (int64_t m0 = 0; m0 < m; m0 += 4) {
      switch (MinI64(4, m - m0)) {
        case 1: TileOrderQuantTile<kType, kLevels, 1>(w, x, g, m0, bias, y); break;
        case 2: TileOrderQuantTile<kType, kLevels, 2>(w, x, g, m0, bias, y); break;
        case 3: TileOrderQuantTile<kType, kLevels, 3>(w, x, g, m0, bias, y); break;
        default: TileOrderQuantTile<kType, kLevels, 4>(w, x, g, m0, bias, y); break;
      }
    }
  }
}

// 16 weights of row `row` from column `k` as fp32 (masked: the rest zero).
template <DType kType>
inline __m512 LoadWeights(const uint8_t* row, int64_t k, __mmask16 mask) {
  if constexpr (kType == DType::kF32) {
    return _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(row) + k);
  } else if constexpr (kType == DType::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
        mask, reinterpret_cast<const uint16_t*>(row) + k));
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(
        mask, reinterpret_cast<const uint16_t*>(row) + k);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType kType, int WT, int MT>
void FloatTile(const uint8_t* w, int64_t row_bytes, int64_t cols, int64_t r0,
               const float* x, int64_t x_stride, int64_t m0, const float* bias,
               OutputRows y) {
  __m512 acc[WT][MT];
  for (int i = 0; i < WT; ++i) {
    for (int t = 0; t < MT; ++t) acc[i][t] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < cols; k += 16) {
    const int64_t left = cols - k;
    const __mmask16 mask =
        left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    __m512 xv[MT];
    for (int t = 0; t < MT; ++t) {
      xv[t] = _mm512_maskz_loadu_ps(mask, x + (m0 + t) * x_stride + k);
    }
    for (int i = 0; i < WT; ++i) {
      const __m512 wv = LoadWeights<kType>(w + (r0 + i) * row_bytes, k, mask);
      for (int t = 0; t < MT; ++t) acc[i][t] = _mm512_fmadd_ps(wv, xv[t], acc[i][t]);
    }
  }
  for (int i = 0; i < WT; ++i) {
    const float b = bias != nullptr ? bias[r0 + i] : 0.0f;
    for (int t = 0; t < MT; ++t) {
      y.data[(m0 + t) * y.stride + r0 + i] = HorizontalSum(acc[i][t]) + b;
    }
  }
}

template <DType kType, int WT>
void FloatTileRows(const uint8_t* w, int64_t row_bytes, int64_t cols,
                   int64_t r0, const float* x, int64_t x_stride, int64_t m0,
                   int mt, const float* bias, OutputRows y) {
  switch (mt) {
#define WEFT_CASE(n)                                                      \
  case n:                                                                 \
    FloatTile<kType, WT, n>(w, row_bytes, cols, r0, x, x_stride, m0, bias, y); \
    break;
    WEFT_CASE(1) WEFT_CASE(2) WEFT_CASE(3) WEFT_CASE(4)
#undef WEFT_CASE
  }
}

template <DType kType>
void FloatMatMulTyped(const void* w, int64_t cols, int64_t row_begin,
                      int64_t row_end, const float* x, int64_t x_rows,
                      int64_t x_stride, const float* bias, OutputRows y) {
  const auto* bytes = static_cast<const uint8_t*>(w);
  const int64_t row_bytes = cols * (kType == DType::kF32 ? 4 : 2);
  if (x_rows == 1) {
    int64_t r = row_begin;
    for (; r + 8 <= row_end; r += 8) {
      FloatTile<kType, 8, 1>(bytes, row_bytes, cols, r, x, x_stride, 0, bias, y);
    }
    for (; r < row_end; ++r) {
      FloatTile<kType, 1, 1>(bytes, row_bytes, cols, r, x, x_stride, 0, bias, y);
    }
    return;
  }
  for (int64_t m0 = 0; m0 < x_rows; m0 += 4) {
    const int mt = static_cast<int>(MinI64(4, x_rows - m0));
    int64_t r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
      FloatTileRows<kType, 4>(bytes, row_bytes, cols, r, x, x_stride, m0, mt,
                              bias, y);
    }
    for (; r < row_end; ++r) {
      FloatTileRows<kType, 1>(bytes, row_bytes, cols, r, x, x_stride, m0, mt,
                              bias, y);
    }
  }
}

// 16 packed weights (one column of a group) as fp32.
template <DType kType>
inline __m512 LoadPacked16(const uint8_t* p) {
  if constexpr (kType == DType::kF32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (kType == DType::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}


// GT groups (16 output columns each) × MT activation rows, one accumulator
// per (group, row) holding 16 outputs: per column, GT weight vectors times
// MT broadcast activations.
// fetch_next (MT > 1): fetch the next GT groups into L2 alongside.
template <DType kType, int GT, int MT>
void PackedFloatTile(const PackedFloat& w, const float* x, int64_t x_stride,
                     int64_t g0, int64_t m0, const float* bias, OutputRows y,
                     bool fetch_next = false) {
  constexpr int64_t kElement = kType == DType::kF32 ? 4 : 2;
  const int64_t cols = w.cols;
  const int64_t group_bytes = cols * kPackRows * kElement;
  const uint8_t* base = w.data + g0 * group_bytes;
  const float* xr[MT];
  for (int t = 0; t < MT; ++t) xr[t] = x + (m0 + t) * x_stride;
  __m512 acc[GT][MT];
  for (int gi = 0; gi < GT; ++gi) {
    for (int t = 0; t < MT; ++t) acc[gi][t] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < cols; ++k) {
    if constexpr (MT == 1) {
      // Decode streams GT groups at once: fetch each a few lines ahead
      // (once per 64-byte line; reads past a group's end stay inside the
      // mapping or are dropped).
      if ((k * kPackRows * kElement) % 64 == 0) {
        for (int gi = 0; gi < GT; ++gi) {
          _mm_prefetch(reinterpret_cast<const char*>(base + gi * group_bytes +
                                                     k * kPackRows * kElement +
                                                     w.prefetch_bytes),
                       _MM_HINT_T0);
        }
      }
    } else if (fetch_next && (k * kPackRows * kElement) % 64 == 0) {
      // The next tile's groups, at the same offset (past the weight's end:
      // dropped, prefetches do not fault).
      for (int gi = 0; gi < GT; ++gi) {
        _mm_prefetch(reinterpret_cast<const char*>(base + (GT + gi) * group_bytes +
                                                   k * kPackRows * kElement),
                     _MM_HINT_T1);
      }
    }
    __m512 wv[GT];
    for (int gi = 0; gi < GT; ++gi) {
      wv[gi] = LoadPacked16<kType>(base + gi * group_bytes + k * kPackRows * kElement);
    }
    for (int t = 0; t < MT; ++t) {
      const __m512 xb = _mm512_set1_ps(xr[t][k]);
      for (int gi = 0; gi < GT; ++gi) acc[gi][t] = _mm512_fmadd_ps(wv[gi], xb, acc[gi][t]);
    }
  }
  for (int gi = 0; gi < GT; ++gi) {
    StoreGroupRows(y, m0, MT, g0 + gi, w.rows, bias,
                   [&](int t) { return acc[gi][t]; });
  }
}

constexpr int kFloatTileGroups = 4;
constexpr int kFloatTileRows = 6;
// Activation rows per pass over a thread's weight groups: their fp32 rows
// (≤ 48 × 1536 × 4 bytes) stay in L2 while the weights stream once per pass.
constexpr int64_t kFloatRowBlock = 48;

template <DType kType, int GT>
void PackedFloatTileRows(const PackedFloat& w, const float* x, int64_t x_stride,
                         int64_t g0, int64_t m0, int mt, const float* bias,
                         OutputRows y, bool fetch_next) {
  switch (mt) {
#define WEFT_CASE(n)                                                              \
  case n:                                                                         \
    PackedFloatTile<kType, GT, n>(w, x, x_stride, g0, m0, bias, y, fetch_next); \
    break;
    WEFT_CASE(1) WEFT_CASE(2) WEFT_CASE(3) WEFT_CASE(4) WEFT_CASE(5) WEFT_CASE(6)
#undef WEFT_CASE
  }
}

template <DType kType>
void PackedFloatMatMulTyped(const PackedFloat& w, const float* x,
                            int64_t x_rows, int64_t x_stride,
                            int64_t group_begin, int64_t group_end,
                            const float* bias, OutputRows y) {
  if (x_rows == 1) {
    // Decode: 8 groups = 8 independent chains (and sequential streams).
    // The backend's thread ranges are multiples of 8 groups; a matrix's
    // last groups go 4 and 2 at a time, not one latency-bound chain per
    // group.
    constexpr int64_t kGroups = FloatDecodeTileGroups(1);
    int64_t g = group_begin;
    for (; g + kGroups <= group_end; g += kGroups) {
      PackedFloatTile<kType, kGroups, 1>(w, x, x_stride, g, 0, bias, y);
    }
    for (; g + 4 <= group_end; g += 4) {
      PackedFloatTile<kType, 4, 1>(w, x, x_stride, g, 0, bias, y);
    }
    for (; g + 2 <= group_end; g += 2) {
      PackedFloatTile<kType, 2, 1>(w, x, x_stride, g, 0, bias, y);
    }
    for (; g < group_end; ++g) PackedFloatTile<kType, 1, 1>(w, x, x_stride, g, 0, bias, y);
    return;
  }
  for (int64_t mb = 0; mb < x_rows; mb += kFloatRowBlock) {
    const int64_t me = MinI64(mb + kFloatRowBlock, x_rows);
    for (int64_t g = group_begin; g < group_end; g += kFloatTileGroups) {
      const int64_t gt = MinI64(kFloatTileGroups, group_end - g);
      for (int64_t m0 = mb; m0 < me; m0 += kFloatTileRows) {
        const int mt = static_cast<int>(MinI64(kFloatTileRows, me - m0));
        // The first pass over the weights, which reads them from memory
        // (a batched decode's only row block; a prompt's later row blocks
        // re-read them, likely from the L3, without it: prompts measured
        // the same either way).
        const bool next = w.next_tile_into_l2 && m0 == 0;
        switch (gt) {
          case 4: PackedFloatTileRows<kType, 4>(w, x, x_stride, g, m0, mt, bias, y, next); break;
          case 3: PackedFloatTileRows<kType, 3>(w, x, x_stride, g, m0, mt, bias, y, next); break;
          case 2: PackedFloatTileRows<kType, 2>(w, x, x_stride, g, m0, mt, bias, y, next); break;
          default: PackedFloatTileRows<kType, 1>(w, x, x_stride, g, m0, mt, bias, y, next); break;
        }
      }
    }
  }
}

}  // namespace

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

void QuantizeRows(const float* x, int64_t x_stride, int64_t cols,
                  int64_t row_begin, int64_t row_end, int8_t* q, int8_t* r,
                  float* scale, float* scaled_sum, int32_t* sum_q,
                  int32_t* sum_r, float* fine_scale, bool tile_order) {
  // The arithmetic of avx2::QuantizeRows, a block of 32 in two vectors,
  // with the per-block scalars (max, scales, sums) computed for up to 16
  // blocks at once: one transposing reduction and one division per 16
  // blocks instead of three horizontal reductions and three scalar
  // divisions per block (a chain of dependent latencies each).
  const int64_t nb = cols / kQuantBlockSize;
  const __m512 second = _mm512_set1_ps(kSecondLevel);
  const __m512 zero = _mm512_setzero_ps();
  constexpr int kRounding = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const float* values = x + row * x_stride;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
      const int n = static_cast<int>(MinI64(16, nb - b0));
      const __mmask16 valid = static_cast<__mmask16>((1u << n) - 1);
      // Slots of the blocks past n stay zero: scale 0, sums 0, not stored.
      __m512 amax[16];
      for (int j = 0; j < 16; ++j) amax[j] = zero;
      for (int j = 0; j < n; ++j) {
        const float* v = values + (b0 + j) * kQuantBlockSize;
        amax[ReductionSlot(j)] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(v)),
                                               _mm512_abs_ps(_mm512_loadu_ps(v + 16)));
      }
      const __m512 max_abs =
          Reduce16(amax, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
      const __m512 d = _mm512_div_ps(max_abs, _mm512_set1_ps(127.0f));
      alignas(64) float inv[16];
      _mm512_store_ps(inv, _mm512_maskz_div_ps(_mm512_cmp_ps_mask(max_abs, zero, _CMP_GT_OQ),
                                               _mm512_set1_ps(127.0f), max_abs));
      __m512 level_q[16], level_r[16];  // int32 sums, as float bits
      for (int j = 0; j < 16; ++j) level_q[j] = level_r[j] = zero;
      for (int j = 0; j < n; ++j) {
        const int64_t b = b0 + j;
        const float* v = values + b * kQuantBlockSize;
        const __m512 scale_j = _mm512_set1_ps(inv[j]);
        const __m512 scaled0 = _mm512_mul_ps(_mm512_loadu_ps(v), scale_j);
        const __m512 scaled1 = _mm512_mul_ps(_mm512_loadu_ps(v + 16), scale_j);
        const __m512 first0 = _mm512_roundscale_ps(scaled0, kRounding);
        const __m512 first1 = _mm512_roundscale_ps(scaled1, kRounding);
        const __m512i q0 = _mm512_cvtps_epi32(first0);
        const __m512i q1 = _mm512_cvtps_epi32(first1);
        const __m512i r0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(
            _mm512_mul_ps(_mm512_sub_ps(scaled0, first0), second), kRounding));
        const __m512i r1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(
            _mm512_mul_ps(_mm512_sub_ps(scaled1, first1), second), kRounding));
        int8_t* q_dst;
        int8_t* r_dst;
        if (tile_order) {
          q_dst = q + AmxTileOffset(row, b, nb);
          r_dst = q_dst + 512;
        } else {
          q_dst = q + row * cols + b * kQuantBlockSize;
          r_dst = r + row * cols + b * kQuantBlockSize;
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q_dst), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q_dst + 16), _mm512_cvtsepi32_epi8(q1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(r_dst), _mm512_cvtsepi32_epi8(r0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(r_dst + 16), _mm512_cvtsepi32_epi8(r1));
        level_q[ReductionSlot(j)] = _mm512_castsi512_ps(_mm512_add_epi32(q0, q1));
        level_r[ReductionSlot(j)] = _mm512_castsi512_ps(_mm512_add_epi32(r0, r1));
      }
      auto add = [](__m512 a, __m512 b) {
        return _mm512_castsi512_ps(
            _mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
      };
      const __m512i sq = _mm512_castps_si512(Reduce16(level_q, add));
      const __m512i sr = _mm512_castps_si512(Reduce16(level_r, add));
      const int64_t meta = row * nb + b0;
      _mm512_mask_storeu_ps(scale + meta, valid, d);
      _mm512_mask_storeu_ps(fine_scale + meta, valid,
                            _mm512_mul_ps(d, _mm512_set1_ps(1.0f / kSecondLevel)));
      _mm512_mask_storeu_epi32(sum_q + meta, valid, sq);
      _mm512_mask_storeu_epi32(sum_r + meta, valid, sr);
      _mm512_mask_storeu_ps(
          scaled_sum + meta, valid,
          _mm512_mul_ps(d, _mm512_add_ps(_mm512_cvtepi32_ps(sq),
                                         _mm512_div_ps(_mm512_cvtepi32_ps(sr), second))));
    }
  }
}

void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y) {
  ForPackedQuantType(w.dtype, [&](auto type) {
    if (x.one_level) {
      QuantMatMulTyped<decltype(type)::value, 1>(w, x, group_begin, group_end, bias, y);
    } else {
      QuantMatMulTyped<decltype(type)::value, 2>(w, x, group_begin, group_end, bias, y);
    }
  });
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

}  // namespace weft::cpu::avx512
