// AMX-INT8 quantized matmul (Sapphire Rapids and later) for batches of
// activation rows; compiled with -mamx-tile -mamx-int8 and the AVX-512
// flags, internal linkage only.
//
// Per (pair of 16-row weight groups, tile of up to 16 activation rows,
// block of 32 columns): the block's 8 × 64-byte weight vectors of
// cpu_kernels.h are exactly an AMX B tile (row i = columns 4i..4i+3 of the
// 16 weight rows); Q4 nibbles are split into such a tile first. The
// activation levels q and r are A tiles (16 rows × 32 bytes, read in
// place), and TDPBSUD (signed × unsigned bytes) gives both levels' int32
// sums for 16 × 16 outputs. Those integers equal the VNNI kernel's, and the
// fp32 epilogue below repeats its operations in its order, so a row's
// output is bit-identical whichever kernel computed it (batch invariance:
// decodes run the VNNI kernel, batches this one).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/avx512_common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::amx {
namespace {

template <DType kType>
constexpr int32_t kOffset = kType == DType::kQ4_0 ? 8
                            : kType == DType::kQ8_0 ? 128
                                                    : 0;

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles: 0..3 int32 sums C (q and r level × 2 groups), 4..5 A (q, r: 16
// activation rows; the caller pads the arrays to a multiple of 16 rows),
// 6..7 B (2 groups).
void ConfigureTiles() {
  TileConfig config;
  for (int t = 0; t < 4; ++t) {
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  for (int t = 4; t < 6; ++t) {
    config.rows[t] = 16;
    config.colsb[t] = 32;
  }
  for (int t = 6; t < 8; ++t) {
    config.rows[t] = 8;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
}

// The fp32 epilogue of one (group, block) for rows [0, mt): the VNNI
// kernel's operations, in its order.
template <DType kType>
inline void Epilogue(const PackedQuant& w, const QuantizedRows& x,
                     const uint8_t* block, const int32_t* cq, const int32_t* cr,
                     int64_t m0, int mt, int64_t b, float* acc) {
  const int64_t nb = w.num_blocks;
  const __m512 d = _mm512_cvtph_ps(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + w.qs_bytes)));
  __m512 mn = _mm512_setzero_ps();
  if constexpr (kType == DType::kQ4_1) {
    mn = _mm512_cvtph_ps(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(block + w.qs_bytes + 32)));
  }
  for (int t = 0; t < mt; ++t) {
    const int64_t meta = (m0 + t) * nb + b;
    __m512i sq = _mm512_loadu_si512(cq + 16 * t);
    __m512i sr = _mm512_loadu_si512(cr + 16 * t);
    if constexpr (kOffset<kType> != 0) {
      sq = _mm512_add_epi32(sq, _mm512_set1_epi32(-kOffset<kType> * x.sum_q[meta]));
      sr = _mm512_add_epi32(sr, _mm512_set1_epi32(-kOffset<kType> * x.sum_r[meta]));
    }
    const __m512 dq = _mm512_mul_ps(d, _mm512_set1_ps(x.scale[meta]));
    const __m512 dr = _mm512_mul_ps(dq, _mm512_set1_ps(1.0f / kSecondLevel));
    __m512 a = _mm512_load_ps(acc + 16 * t);
    a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sq), dq, a);
    a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sr), dr, a);
    if constexpr (kType == DType::kQ4_1) {
      a = _mm512_fmadd_ps(mn, _mm512_set1_ps(x.scaled_sum[meta]), a);
    }
    _mm512_store_ps(acc + 16 * t, a);
  }
}

// Splits a Q4 block's 4 packed vectors into the 8 rows of a B tile: low
// nibbles are columns 0..15, high nibbles 16..31.
inline void UnpackQ4(const uint8_t* block, uint8_t* tile) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int s = 0; s < 4; ++s) {
    const __m512i p = _mm512_loadu_si512(block + 64 * s);
    _mm512_store_si512(tile + 64 * s, _mm512_and_si512(p, low4));
    _mm512_store_si512(tile + 64 * (4 + s),
                       _mm512_and_si512(_mm512_srli_epi16(p, 4), low4));
  }
}

template <DType kType>
void MatMulTyped(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y) {
  const int64_t nb = w.num_blocks;
  alignas(64) int32_t c[4][16 * 16];
  alignas(64) float acc[2][16 * 16];
  // Q4 B tiles of a group pair, [block][group][512 bytes]: unpacked for all
  // blocks before any is loaded (a tile load right after the vector stores
  // that wrote its bytes waits for them to reach L1).
  thread_local std::vector<uint8_t> unpacked_storage;
  uint8_t* unpacked = nullptr;
  if constexpr (kType != DType::kQ8_0) {
    unpacked_storage.resize(static_cast<size_t>(nb) * 1024 + 64);
    unpacked = unpacked_storage.data() +
               (64 - reinterpret_cast<uintptr_t>(unpacked_storage.data()) % 64) % 64;
  }
  ConfigureTiles();
  // Weight groups outermost: a pair's blocks stay in L1/L2 while every
  // tile of activation rows passes over them.
  for (int64_t g = group_begin; g < group_end; g += 2) {
    const int gt = static_cast<int>(avx512::MinI64(2, group_end - g));
    if constexpr (kType != DType::kQ8_0) {
      for (int64_t b = 0; b < nb; ++b) {
        for (int gi = 0; gi < gt; ++gi) {
          UnpackQ4(w.data + ((g + gi) * nb + b) * w.block_bytes,
                   unpacked + (b * 2 + gi) * 512);
        }
      }
    }
    for (int64_t m0 = 0; m0 < x.rows; m0 += 16) {
      const int mt = static_cast<int>(avx512::MinI64(16, x.rows - m0));
      std::memset(acc, 0, sizeof(acc));
      for (int64_t b = 0; b < nb; ++b) {
        _tile_loadd(4, x.q + m0 * x.cols + b * kQuantBlockSize, x.cols);
        _tile_loadd(5, x.r + m0 * x.cols + b * kQuantBlockSize, x.cols);
        const uint8_t* blocks[2];
        for (int gi = 0; gi < gt; ++gi) {
          blocks[gi] = w.data + ((g + gi) * nb + b) * w.block_bytes;
        }
        // Tile numbers are immediates: spell out the two groups.
        if constexpr (kType == DType::kQ8_0) {
          _tile_loadd(6, blocks[0], 64);
          if (gt == 2) _tile_loadd(7, blocks[1], 64);
        } else {
          _tile_loadd(6, unpacked + (b * 2) * 512, 64);
          if (gt == 2) _tile_loadd(7, unpacked + (b * 2 + 1) * 512, 64);
        }
        _tile_zero(0);
        _tile_zero(1);
        _tile_dpbsud(0, 4, 6);
        _tile_dpbsud(1, 5, 6);
        _tile_stored(0, c[0], 64);
        _tile_stored(1, c[1], 64);
        if (gt == 2) {
          _tile_zero(2);
          _tile_zero(3);
          _tile_dpbsud(2, 4, 7);
          _tile_dpbsud(3, 5, 7);
          _tile_stored(2, c[2], 64);
          _tile_stored(3, c[3], 64);
        }
        for (int gi = 0; gi < gt; ++gi) {
          Epilogue<kType>(w, x, blocks[gi], c[2 * gi], c[2 * gi + 1], m0, mt, b,
                          acc[gi]);
        }
      }
      for (int gi = 0; gi < gt; ++gi) {
        avx512::StoreGroupRows(y, m0, mt, g + gi, w.rows, bias, [&](int t) {
          return _mm512_load_ps(acc[gi] + 16 * t);
        });
      }
    }
  }
  _tile_release();
}

}  // namespace

void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y) {
  switch (w.dtype) {
    case DType::kQ4_0:
      return MatMulTyped<DType::kQ4_0>(w, x, group_begin, group_end, bias, y);
    case DType::kQ4_1:
      return MatMulTyped<DType::kQ4_1>(w, x, group_begin, group_end, bias, y);
    case DType::kQ8_0:
      return MatMulTyped<DType::kQ8_0>(w, x, group_begin, group_end, bias, y);
    default:
      return;
  }
}

}  // namespace weft::cpu::amx
