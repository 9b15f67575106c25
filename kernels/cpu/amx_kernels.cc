// AMX-INT8 quantized matmul (Sapphire Rapids and later) for batches of
// activation rows; compiled with -mamx-tile -mamx-int8 and the AVX-512
// flags, internal linkage only.
//
// Per (16-row weight group, tile of up to 16 activation rows, block of 32
// columns): the block's 8 × 64-byte weight vectors of cpu_kernels.h are
// exactly an AMX B tile (row i = columns 4i..4i+3 of the 16 weight rows);
// Q4 nibbles are split into such a tile first. The activation levels q and
// r are A tiles (16 rows × 32 bytes, contiguous in the tile order of
// QuantizedRows), and TDPBSUD (signed × unsigned bytes) gives both levels'
// int32 sums for 16 × 16 outputs. Those
// integers equal the VNNI kernel's and both end in the same
// avx512::BlockEpilogue, so a row's output is bit-identical whichever
// kernel computed it (batch invariance: decodes run the VNNI kernel,
// batches this one).
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

// Tiles: 0..1 and 2..3 the int32 sums C (q and r level) of even and odd
// blocks, 4..5 A (q, r: `m` activation rows; the caller pads the arrays to
// a multiple of 16 rows), 6 and 7 B of even and odd blocks. Two sets of C
// and B tiles let block b + 2's tile products queue while the vector units
// do block b's epilogue. A call of fewer than 16 rows (a batched decode of
// 8-15 sequences) configures only those rows: its tile loads, products and
// stores then cost less than padded ones (weft-bench-cpu-kernels --kernels
// amx --m 8,10,12,14: 4-10% less time than with 16 rows, 2026-11-29).
void ConfigureTiles(int m) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) {
    config.rows[t] = static_cast<uint8_t>(m);
    config.colsb[t] = 64;
  }
  for (int t = 4; t < 6; ++t) {
    config.rows[t] = static_cast<uint8_t>(m);
    config.colsb[t] = 32;
  }
  for (int t = 6; t < 8; ++t) {
    config.rows[t] = 8;
    config.colsb[t] = 64;
  }
  // Not _tile_loadconfig: GCC's tells the compiler it reads 8 bytes of the
  // configuration, so at -O2 the stores of rows and colsb above are
  // dropped as dead and the next tile load faults. This operand is all 64.
  asm volatile("ldtilecfg %0" : : "m"(config));
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

// Both levels' sums of block b for 16 activation rows × 16 weight rows,
// stored to c[0] (q) and c[1] (r). Tile numbers are immediates, so the
// even and odd blocks' tiles are spelled out.
inline void TileProducts(int64_t b, const int8_t* a, const uint8_t* weights,
                         int32_t (*c)[16 * 16]) {
  _tile_loadd(4, a, 32);
  _tile_loadd(5, a + 512, 32);
  if (b % 2 == 0) {
    _tile_loadd(6, weights, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 5, 6);
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
  } else {
    _tile_loadd(7, weights, 64);
    _tile_zero(2);
    _tile_zero(3);
    _tile_dpbsud(2, 4, 7);
    _tile_dpbsud(3, 5, 7);
    _tile_stored(2, c[0], 64);
    _tile_stored(3, c[1], 64);
  }
}

template <DType kType>
void MatMulTyped(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y) {
  const int64_t nb = w.num_blocks;
  // Tile products run kAhead blocks before their epilogue, into one of
  // kAhead + 1 buffers, so that no epilogue waits on the products it
  // reads (measured with weft-bench-cpu-kernels: 1 block ahead was
  // slower, 3 no faster). The tile unit and the vector units still take
  // turns on the dev VM: the kernel's time is the sum of the two
  // (bench/cpu_vs_llamacpp/results.md, run E).
  constexpr int kAhead = 2;
  alignas(64) int32_t c[kAhead + 1][2][16 * 16];  // [block % 3][level]
  // A Q4 group's B tiles, [block][512 bytes], two groups' worth: group
  // g + 1 is unpacked a block per iteration of group g's block loop, so
  // no tile load follows close on the stores that wrote its bytes. The
  // first group of the call is unpacked up front.
  constexpr bool kUnpack = kType != DType::kQ8_0;
  thread_local std::vector<uint8_t> unpacked_storage;
  uint8_t* unpacked[2] = {nullptr, nullptr};
  const int64_t group_bytes = nb * w.block_bytes;
  if constexpr (kUnpack) {
    unpacked_storage.resize(static_cast<size_t>(2 * nb) * 512 + 64);
    unpacked[0] = unpacked_storage.data() +
                  (64 - reinterpret_cast<uintptr_t>(unpacked_storage.data()) % 64) % 64;
    unpacked[1] = unpacked[0] + nb * 512;
    if (group_begin < group_end) {
      const uint8_t* first = w.data + group_begin * group_bytes;
      for (int64_t line = 0; group_begin + 1 < group_end && line < group_bytes / 64;
           ++line) {
        _mm_prefetch(reinterpret_cast<const char*>(first + group_bytes + 64 * line),
                     _MM_HINT_T0);
      }
      for (int64_t b = 0; b < nb; ++b) {
        UnpackQ4(first + b * w.block_bytes, unpacked[0] + b * 512);
      }
    }
  }
  // Per (row, block), once per call: for zero-point weights the offset
  // corrections of both levels (the VNNI kernel starts its sums there).
  thread_local std::vector<int32_t> offset_storage;
  const int64_t metas = x.rows * nb;
  int32_t* offsets = nullptr;
  if constexpr (kOffset<kType> != 0) {
    offset_storage.resize(static_cast<size_t>(2 * metas));
    offsets = offset_storage.data();
    for (int64_t i = 0; i < metas; ++i) {
      offsets[2 * i] = -kOffset<kType> * x.sum_q[i];
      offsets[2 * i + 1] = -kOffset<kType> * x.sum_r[i];
    }
  }
  ConfigureTiles(static_cast<int>(avx512::MinI64(16, x.rows)));
  // Weight groups outermost: a group's blocks stay in L1 while every tile
  // of activation rows passes over them.
  for (int64_t g = group_begin; g < group_end; ++g) {
    const uint8_t* group = w.data + g * group_bytes;
    [[maybe_unused]] const uint8_t* next_group = group + group_bytes;
    [[maybe_unused]] const bool has_next = g + 1 < group_end;
    [[maybe_unused]] uint8_t* current = unpacked[(g - group_begin) % 2];
    [[maybe_unused]] uint8_t* following = unpacked[(g - group_begin + 1) % 2];
    auto tile_weights = [&](int64_t b) -> const uint8_t* {
      if constexpr (kUnpack) return current + b * 512;
      return group + b * w.block_bytes;
    };
    // Weights are fetched while this group computes: Q8's next group
    // (read by its tile loads), Q4's group after next (the next one is
    // being unpacked now, from lines fetched during the previous group).
    const int ahead_groups = kUnpack ? 2 : 1;
    const uint8_t* fetch = group + ahead_groups * group_bytes;
    const int64_t fetch_lines = g + ahead_groups < group_end ? group_bytes / 64 : 0;
    const int64_t lines_per_block = w.block_bytes / 64 + 1;
    int64_t prefetched = 0;
    for (int64_t m0 = 0; m0 < x.rows; m0 += 16) {
      const int mt = static_cast<int>(avx512::MinI64(16, x.rows - m0));
      const int8_t* tiles = x.q + AmxTileOffset(m0, 0, nb);  // [block][q, r]
      __m512 acc[16];
      for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
      for (int64_t b = 0; b < kAhead && b < nb; ++b) {
        TileProducts(b, tiles + b * 1024, tile_weights(b), c[b]);
      }
      for (int64_t b = 0; b < nb; ++b) {
        if (const int64_t ahead = b + kAhead; ahead < nb) {
          TileProducts(ahead, tiles + ahead * 1024, tile_weights(ahead),
                       c[ahead % (kAhead + 1)]);
        }
        for (int64_t i = 0; i < lines_per_block && prefetched < fetch_lines;
             ++i, ++prefetched) {
          _mm_prefetch(reinterpret_cast<const char*>(fetch + 64 * prefetched),
                       _MM_HINT_T0);
        }
        if constexpr (kUnpack) {
          if (m0 == 0 && has_next) {
            UnpackQ4(next_group + b * w.block_bytes, following + b * 512);
          }
        }
        const uint8_t* block = group + b * w.block_bytes;
        const avx512::BlockScales scales = avx512::LoadBlockScales<kType>(w, block);
        const int32_t* cq = c[b % (kAhead + 1)][0];
        const int32_t* cr = c[b % (kAhead + 1)][1];
#pragma GCC unroll 16
        for (int t = 0; t < 16; ++t) {
          if (t >= mt) break;
          const int64_t meta = (m0 + t) * nb + b;
          __m512i sq = _mm512_load_si512(cq + 16 * t);
          __m512i sr = _mm512_load_si512(cr + 16 * t);
          if constexpr (kOffset<kType> != 0) {
            sq = _mm512_add_epi32(sq, _mm512_set1_epi32(offsets[2 * meta]));
            sr = _mm512_add_epi32(sr, _mm512_set1_epi32(offsets[2 * meta + 1]));
          }
          acc[t] = avx512::BlockEpilogue<kType == DType::kQ4_1>(
              acc[t], sq, sr, scales.d, scales.mn, x.fine_scale[meta],
              x.scaled_sum[meta]);
        }
      }
      avx512::StoreGroupRows(y, m0, mt, g, w.rows, bias,
                             [&](int t) { return acc[t]; });
    }
  }
  _tile_release();
}

}  // namespace

void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y) {
  ForPackedQuantType(w.dtype, [&](auto type) {
    MatMulTyped<decltype(type)::value>(w, x, group_begin, group_end, bias, y);
  });
}

}  // namespace weft::cpu::amx
