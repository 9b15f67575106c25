// The 256-bit quantized matmuls (Q4_0, Q4_1, Q8_0 weights × two-level int8
// activations), compiled twice from this one source:
//
// - quant_matmul_avx2.cc (-mavx2 -mfma -mf16c): avx2::QuantMatMul, byte
//   products with VPMADDUBSW summed in int16 and widened by VPMADDWD;
// - quant_matmul_avx_vnni.cc (the same plus -mavxvnni): avx_vnni::
//   QuantMatMul, byte products summed straight into int32 by VPDPBUSD
//   (AVX-VNNI: Intel's client cores from Alder Lake on, which have no
//   AVX-512, and Intel's E-core Xeons), one instruction where AVX2 needs
//   three or four.
//
// Both reach the same exact integer sums as the AVX-512 kernels and end
// every block in their epilogue, so all of them give the same bits. With
// one activation level (x.one_level) they skip the second level's
// products, as the AVX-512 kernels do.
// Include only from those two files: everything but QuantMatMul has
// internal linkage, and the namespace is WEFT_QUANT_AVX2_NAMESPACE.
#ifndef WEFT_KERNELS_CPU_QUANT_MATMUL_AVX2_H_
#define WEFT_KERNELS_CPU_QUANT_MATMUL_AVX2_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/cpu_kernels.h"

#ifndef WEFT_QUANT_AVX2_NAMESPACE
#error "define WEFT_QUANT_AVX2_NAMESPACE (avx2 or avx_vnni) first"
#endif

namespace weft::cpu::WEFT_QUANT_AVX2_NAMESPACE {
namespace {

using avx2::MinI64;
using avx2::StoreGroupRow;

#if defined(__AVXVNNI__)
// AVX-VNNI reads Q8_0 weights packed as unsigned bytes (q + 128, as the
// AVX-512 kernels do: PackedQuant::unsigned_q8), VPDPBUSD's unsigned side.
constexpr bool kVnni = true;
// acc + Σ₄ u·s per 32-bit lane (unsigned bytes u, signed bytes s), exact.
inline __m256i Dpbusd(__m256i acc, __m256i u, __m256i s) {
  return _mm256_dpbusd_avx_epi32(acc, u, s);
}
#else
constexpr bool kVnni = false;
#endif

// The zero point subtracted from the packed weight bytes.
template <DType kType>
constexpr int32_t kOffset = kType == DType::kQ4_0                ? 8
                            : kType == DType::kQ8_0 && kVnni ? 128
                                                             : 0;

// AVX2's Q8_0 (byte products up to 2·127·128 leave VPMADDUBSW no room):
// weights widened to int16 and the two activation levels joined into one
// int16, 254·q + r (|·| ≤ 32,385), so one VPMADDWD per 2 columns does both
// levels.
template <DType kType>
constexpr bool kWidenedQ8 = kType == DType::kQ8_0 && !kVnni;

// The block's activations xq, xr as 254·q + r in int16.
inline void JoinActivations(const int8_t* xq, const int8_t* xr, int16_t* joined) {
  const __m256i second = _mm256_set1_epi16(static_cast<int16_t>(kSecondLevel));
  for (int half = 0; half < 2; ++half) {
    const __m256i q16 = _mm256_cvtepi8_epi16(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + 16 * half)));
    const __m256i r16 = _mm256_cvtepi8_epi16(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + 16 * half)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(joined + 16 * half),
                        _mm256_add_epi16(_mm256_mullo_epi16(q16, second), r16));
  }
}

// 4 columns of joined activations, broadcast to every 64-bit lane.
inline __m256i Broadcast4Joined(const int16_t* joined) {
  int64_t four;
  std::memcpy(&four, joined, sizeof(four));
  return _mm256_set1_epi64x(four);
}

// Lanes (2j, 2j + 1) of lo: weight row j's two column-pair sums (rows 4 +
// j in hi); their pairwise sums, in row order.
inline __m256i PairSumsInRowOrder(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}

inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// The AVX-512 kernels' BlockEpilogue on one half (8 weight rows) of a
// group: acc + (254·sq + sr rounded once) · d·dx/254 (+ the Q4_1 minimum
// times dx·Σ). `sum` is 254·sq + sr in fp32, rounded once.
template <DType kType>
inline __m256 HalfEpilogue(__m256 acc, __m256 sum, __m256 d, __m256 fine,
                           __m256 mn, float scaled_sum) {
  acc = _mm256_fmadd_ps(sum, _mm256_mul_ps(d, fine), acc);
  if constexpr (kType == DType::kQ4_1) {
    acc = _mm256_fmadd_ps(mn, _mm256_set1_ps(scaled_sum), acc);
  }
  return acc;
}

// 254·sq + sr from the two levels' exact int32 sums: fp32 conversions (exact:
// |sq|, |sr| < 2^24) and one rounding multiply-add, as BlockEpilogue.
inline __m256 JoinLevels(__m256i sq, __m256i sr) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sq), _mm256_set1_ps(kSecondLevel),
                         _mm256_cvtepi32_ps(sr));
}

// GT groups of 16 output columns (two halves of 8) × one activation row,
// both activation levels: per group 2 float + 4 int accumulators. Each
// group is a weight stream of its own, fetched w.prefetch_bytes ahead.
// kLevels 1 (x.one_level: r and Σr all zero): the second level's products,
// which would add zeros, are skipped (AVX2's Q8_0 joins both levels in one
// product and does not change).
template <DType kType, int kLevels, int GT>
void QuantTile(const PackedQuant& w, const QuantizedRows& x, int64_t g0,
               int64_t m, const float* bias, OutputRows y) {
  const int64_t nb = w.num_blocks;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  [[maybe_unused]] const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[GT][2];
  for (int gi = 0; gi < GT; ++gi) acc[gi][0] = acc[gi][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* base[GT];
    for (int gi = 0; gi < GT; ++gi) {
      base[gi] = w.data + ((g0 + gi) * nb + b) * w.block_bytes;
      // A group's bytes stream by: fetch a block's bytes
      // w.prefetch_bytes ahead (past the group's end: the next group's,
      // which a later tile reads).
      for (int64_t o = 0; o < w.block_bytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(base[gi] + w.prefetch_bytes + o),
                     _MM_HINT_T0);
      }
    }
    const int64_t meta = m * nb + b;
    const int8_t* xq = x.q + m * x.cols + b * kQuantBlockSize;
    const int8_t* xr = x.r + m * x.cols + b * kQuantBlockSize;
    // [group][half][level]
    __m256i isum[GT][2][2];
    for (int gi = 0; gi < GT; ++gi) {
      for (int h = 0; h < 2; ++h) {
        isum[gi][h][0] = _mm256_set1_epi32(-kOffset<kType> * x.sum_q[meta]);
        isum[gi][h][1] = _mm256_set1_epi32(-kOffset<kType> * x.sum_r[meta]);
      }
    }
    if constexpr (kWidenedQ8<kType>) {
      // isum[gi][h]: the column-pair sums of weight rows 0-3 and 4-7 of
      // the half, both levels at once (kOffset is 0: signed weights).
      alignas(32) int16_t joined[kQuantBlockSize];
      JoinActivations(xq, xr, joined);
      for (int s = 0; s < 8; ++s) {
        const __m256i a = Broadcast4Joined(joined + 4 * s);
        for (int gi = 0; gi < GT; ++gi) {
          for (int h = 0; h < 2; ++h) {
            const __m256i p = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(base[gi] + 64 * s + 32 * h));
            __m256i* sum = isum[gi][h];
            sum[0] = _mm256_add_epi32(
                sum[0], _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(p)), a));
            sum[1] = _mm256_add_epi32(
                sum[1],
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1)), a));
          }
        }
      }
    } else if constexpr (kType == DType::kQ8_0) {
#if defined(__AVXVNNI__)
      for (int s = 0; s < 8; ++s) {
        const __m256i aq = Broadcast4(xq + 4 * s);
        for (int gi = 0; gi < GT; ++gi) {
          for (int h = 0; h < 2; ++h) {
            const __m256i p = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(base[gi] + 64 * s + 32 * h));
            isum[gi][h][0] = Dpbusd(isum[gi][h][0], p, aq);
            if constexpr (kLevels == 2) {
              isum[gi][h][1] = Dpbusd(isum[gi][h][1], p, Broadcast4(xr + 4 * s));
            }
          }
        }
      }
#endif
    } else {
      for (int s = 0; s < 4; ++s) {
        const __m256i lq = Broadcast4(xq + 4 * s), uq = Broadcast4(xq + 16 + 4 * s);
        [[maybe_unused]] __m256i lr, ur;
        if constexpr (kLevels == 2) {
          lr = Broadcast4(xr + 4 * s);
          ur = Broadcast4(xr + 16 + 4 * s);
        }
        for (int gi = 0; gi < GT; ++gi) {
          for (int h = 0; h < 2; ++h) {
            const __m256i p = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(base[gi] + 64 * s + 32 * h));
            const __m256i l = _mm256_and_si256(p, low4);
            const __m256i u = _mm256_and_si256(_mm256_srli_epi16(p, 4), low4);
            __m256i* sum = isum[gi][h];
#if defined(__AVXVNNI__)
            sum[0] = Dpbusd(Dpbusd(sum[0], l, lq), u, uq);
            if constexpr (kLevels == 2) sum[1] = Dpbusd(Dpbusd(sum[1], l, lr), u, ur);
#else
            // Each maddubs pair sum ≤ 2·15·127, so two fit in int16.
            sum[0] = _mm256_add_epi32(
                sum[0], _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(l, lq),
                                                           _mm256_maddubs_epi16(u, uq)),
                                          ones));
            if constexpr (kLevels == 2) {
              sum[1] = _mm256_add_epi32(
                  sum[1], _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(l, lr),
                                                             _mm256_maddubs_epi16(u, ur)),
                                            ones));
            }
#endif
          }
        }
      }
    }
    const __m256 fine = _mm256_set1_ps(x.fine_scale[meta]);
    for (int gi = 0; gi < GT; ++gi) {
      for (int h = 0; h < 2; ++h) {
        auto widen = [&](int at) {
          return _mm256_cvtph_ps(_mm_loadu_si128(
              reinterpret_cast<const __m128i*>(base[gi] + w.qs_bytes + at)));
        };
        const __m256 sum =
            kWidenedQ8<kType>
                ? _mm256_cvtepi32_ps(PairSumsInRowOrder(isum[gi][h][0], isum[gi][h][1]))
                : JoinLevels(isum[gi][h][0], isum[gi][h][1]);
        acc[gi][h] = HalfEpilogue<kType>(
            acc[gi][h], sum, widen(16 * h), fine,
            kType == DType::kQ4_1 ? widen(32 + 16 * h) : _mm256_setzero_ps(),
            x.scaled_sum[meta]);
      }
    }
  }
  for (int gi = 0; gi < GT; ++gi) {
    StoreGroupRow(y, m, g0 + gi, w.rows, bias, acc[gi][0], acc[gi][1]);
  }
}

// Quantized weights × several activation rows: a group's blocks are
// prepared once, with their fp16 scales widened (kUnpackChunk blocks at a
// time, into a per-thread buffer that stays in L1), and every row then
// reads them from there. The prepared weights of a half (8 weight rows)
// are 8 vectors, vector i holding the block's columns of activation bytes
// 4i .. 4i + 3 (Q4: i < 4 low nibbles, columns 4i ..; i ≥ 4 high nibbles,
// columns 16 + 4(i − 4) ..).
//
// AVX-VNNI: both levels' sums accumulate in int32 (VPDPBUSD), Q8_0 bytes
// as they are packed (unsigned). AVX2: Q4 nibbles' 8 products of each level
// and half (each pair sum ≤ 2·15·127) add up in int16 (≤ 30,480), and one
// VPMADDWD per level widens them, the first level's times 254. Q8_0 (whose
// byte products do not fit int16 twice): weights widened to int16, and the
// two levels joined into one int16 activation 254·q + r (|·| ≤ 32,385), so
// one VPMADDWD per 2 columns and 8 weight rows does both levels. Either
// way 254·sq + sr arrives as one exact int32 (Q4: |·| < 2^24, exact in
// fp32 too). The sums are the exact integers QuantTile reaches and the
// epilogue is QuantTile's, so a row's output is bit-identical whichever of
// the two computed it (batch invariance) — and equal to the AVX-512
// kernels' (BlockEpilogue).
template <DType kType>
constexpr int64_t kUnpackChunk = kWidenedQ8<kType> ? 16 : 32;  // ≤ 20 KiB prepared
// A prepared block: its weights (bytes; AVX2's Q8_0 int16), then d (and
// the Q4_1 minimum) as 16 floats each.
template <DType kType>
constexpr int64_t kUnpackedWeightBytes = kWidenedQ8<kType> ? 1024 : 512;
template <DType kType>
constexpr int64_t kUnpackedBlockBytes =
    kUnpackedWeightBytes<kType> + (kType == DType::kQ4_1 ? 128 : 64);

// kLevels as QuantTile's.
template <DType kType, int kLevels>
void QuantRows(const PackedQuant& w, const QuantizedRows& x, int64_t g,
               const float* bias, OutputRows y) {
  const int64_t nb = w.num_blocks;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  [[maybe_unused]] const __m256i ones = _mm256_set1_epi16(1);
  [[maybe_unused]] const __m256i second =
      _mm256_set1_epi16(static_cast<int16_t>(kSecondLevel));
  alignas(32) thread_local uint8_t unpacked[kUnpackChunk<kType> * kUnpackedBlockBytes<kType>];
  thread_local std::vector<float> partial;  // [rows][16] across chunks
  if (nb > kUnpackChunk<kType> && partial.size() < static_cast<size_t>(16 * x.rows)) {
    partial.resize(static_cast<size_t>(16 * x.rows));
  }
  const uint8_t* group = w.data + g * nb * w.block_bytes;
  for (int64_t b0 = 0; b0 < nb; b0 += kUnpackChunk<kType>) {
    const int64_t b1 = MinI64(nb, b0 + kUnpackChunk<kType>);
    for (int64_t b = b0; b < b1; ++b) {
      const uint8_t* base = group + b * w.block_bytes;
      for (int64_t o = 0; o < w.block_bytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(base + w.prefetch_bytes + o),
                     _MM_HINT_T0);
      }
      uint8_t* dst = unpacked + (b - b0) * kUnpackedBlockBytes<kType>;
      // AVX2's Q8_0: vector s of half h (columns 4s .. 4s + 3 of 8 weight
      // rows) as int16, rows 0-3 then rows 4-7: each 32-bit lane one
      // column pair of one row.
      for (int s = 0; s < 8 && kWidenedQ8<kType>; ++s) {
        for (int h = 0; h < 2; ++h) {
          const __m256i p = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(base + 64 * s + 32 * h));
          uint8_t* out = dst + 512 * h + 64 * s;
          _mm256_store_si256(reinterpret_cast<__m256i*>(out),
                             _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p)));
          _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32),
                             _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1)));
        }
      }
      // AVX-VNNI's Q8_0: the bytes, regrouped by half.
      for (int s = 0; s < 8 && kType == DType::kQ8_0 && kVnni; ++s) {
        for (int h = 0; h < 2; ++h) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 256 * h + 32 * s),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                 base + 64 * s + 32 * h)));
        }
      }
      for (int s = 0; s < 4 && kType != DType::kQ8_0; ++s) {
        for (int h = 0; h < 2; ++h) {
          const __m256i p = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(base + 64 * s + 32 * h));
          _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 256 * h + 32 * s),
                             _mm256_and_si256(p, low4));
          _mm256_store_si256(
              reinterpret_cast<__m256i*>(dst + 256 * h + 32 * (4 + s)),
              _mm256_and_si256(_mm256_srli_epi16(p, 4), low4));
        }
      }
      float* scales = reinterpret_cast<float*>(dst + kUnpackedWeightBytes<kType>);
      for (int h = 0; h < (kType == DType::kQ4_1 ? 4 : 2); ++h) {
        _mm256_store_ps(scales + 8 * h, _mm256_cvtph_ps(_mm_loadu_si128(
                                            reinterpret_cast<const __m128i*>(
                                                base + w.qs_bytes + 16 * h))));
      }
    }
    for (int64_t m = 0; m < x.rows; ++m) {
      __m256 acc[2];
      if (b0 == 0) {
        acc[0] = acc[1] = _mm256_setzero_ps();
      } else {
        acc[0] = _mm256_loadu_ps(&partial[16 * m]);
        acc[1] = _mm256_loadu_ps(&partial[16 * m + 8]);
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t meta = m * nb + b;
        const int8_t* xq = x.q + m * x.cols + b * kQuantBlockSize;
        const int8_t* xr = x.r + m * x.cols + b * kQuantBlockSize;
        const uint8_t* wb = unpacked + (b - b0) * kUnpackedBlockBytes<kType>;
        const float* scales =
            reinterpret_cast<const float*>(wb + kUnpackedWeightBytes<kType>);
        __m256 sum[2];  // [half]: 254·sq + sr, rounded once
#if defined(__AVXVNNI__)
        {
          // Both halves at once: each broadcast feeds two chains. Eight
          // int32 chains (half × level × even/odd i) of 4 VPDPBUSD each:
          // with four chains of 8 the block waited on VPDPBUSD's latency
          // and the scheduler filled before the next block's could start.
          // Integer sums, so the split changes no bit.
          const int8_t* aq = xq;
          const int8_t* ar = xr;
          asm volatile("" : "+r"(aq), "+r"(ar));
          __m256i sq[2][2], sr[2][2];  // [half][i % 2]
          for (int h = 0; h < 2; ++h) {
            sq[h][0] = _mm256_set1_epi32(-kOffset<kType> * x.sum_q[meta]);
            sr[h][0] = _mm256_set1_epi32(-kOffset<kType> * x.sum_r[meta]);
            sq[h][1] = sr[h][1] = _mm256_setzero_si256();
          }
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) {
            const __m256i bq = Broadcast4(aq + 4 * i);
            [[maybe_unused]] __m256i br;
            if constexpr (kLevels == 2) br = Broadcast4(ar + 4 * i);
            for (int h = 0; h < 2; ++h) {
              const __m256i wv = _mm256_load_si256(
                  reinterpret_cast<const __m256i*>(wb + 256 * h + 32 * i));
              sq[h][i % 2] = Dpbusd(sq[h][i % 2], wv, bq);
              if constexpr (kLevels == 2) sr[h][i % 2] = Dpbusd(sr[h][i % 2], wv, br);
            }
          }
          for (int h = 0; h < 2; ++h) {
            sum[h] = JoinLevels(_mm256_add_epi32(sq[h][0], sq[h][1]),
                                _mm256_add_epi32(sr[h][0], sr[h][1]));
          }
        }
#else
        __m256i isum[2];  // [half]: 254·sq + sr
        if constexpr (kType == DType::kQ8_0) {
          alignas(32) int16_t joined[kQuantBlockSize];
          JoinActivations(xq, xr, joined);
          for (int h = 0; h < 2; ++h) {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            for (int s = 0; s < 8; ++s) {
              const __m256i a = Broadcast4Joined(joined + 4 * s);
              const uint8_t* ws = wb + 512 * h + 64 * s;
              lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_load_si256(
                                            reinterpret_cast<const __m256i*>(ws)), a));
              hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_load_si256(
                                            reinterpret_cast<const __m256i*>(ws + 32)), a));
            }
            isum[h] = PairSumsInRowOrder(lo, hi);
          }
        } else {
          // A half at a time, the activations broadcast again for the
          // second (a load each): with all 16 broadcasts kept for both
          // halves (GCC merges the repeated loads unless the pointers are
          // hidden from it) they spill to the stack.
          for (int h = 0; h < 2; ++h) {
            const int8_t* aq = xq;
            const int8_t* ar = xr;
            asm volatile("" : "+r"(aq), "+r"(ar));
            __m256i sum16[2];  // [level]
            for (int i = 0; i < 8; ++i) {
              const __m256i wv = _mm256_load_si256(
                  reinterpret_cast<const __m256i*>(wb + 256 * h + 32 * i));
              const __m256i pq = _mm256_maddubs_epi16(wv, Broadcast4(aq + 4 * i));
              sum16[0] = i == 0 ? pq : _mm256_add_epi16(sum16[0], pq);
              if constexpr (kLevels == 2) {
                const __m256i pr = _mm256_maddubs_epi16(wv, Broadcast4(ar + 4 * i));
                sum16[1] = i == 0 ? pr : _mm256_add_epi16(sum16[1], pr);
                // Keeps the sums chains: GCC otherwise reassociates them
                // into trees whose many live products spill.
                asm("" : "+x"(sum16[0]), "+x"(sum16[1]));
              } else {
                asm("" : "+x"(sum16[0]));
              }
            }
            const __m256i offset = _mm256_set1_epi32(
                -kOffset<kType> * (static_cast<int32_t>(kSecondLevel) * x.sum_q[meta] +
                                   x.sum_r[meta]));
            isum[h] = _mm256_add_epi32(offset, _mm256_madd_epi16(sum16[0], second));
            if constexpr (kLevels == 2) {
              isum[h] = _mm256_add_epi32(isum[h], _mm256_madd_epi16(sum16[1], ones));
            }
          }
        }
        for (int h = 0; h < 2; ++h) sum[h] = _mm256_cvtepi32_ps(isum[h]);
#endif
        const __m256 fine = _mm256_set1_ps(x.fine_scale[meta]);
        for (int h = 0; h < 2; ++h) {
          acc[h] = HalfEpilogue<kType>(
              acc[h], sum[h], _mm256_load_ps(scales + 8 * h), fine,
              kType == DType::kQ4_1 ? _mm256_load_ps(scales + 16 + 8 * h)
                                    : _mm256_setzero_ps(),
              x.scaled_sum[meta]);
        }
      }
      if (b1 < nb) {
        _mm256_storeu_ps(&partial[16 * m], acc[0]);
        _mm256_storeu_ps(&partial[16 * m + 8], acc[1]);
        continue;
      }
      StoreGroupRow(y, m, g, w.rows, bias, acc[0], acc[1]);
    }
  }
}

// From this many activation rows weights go through QuantRows.
constexpr int64_t kMinUnpackedRows = 2;

template <DType kType, int kLevels>
void QuantMatMulTyped(const PackedQuant& w, const QuantizedRows& x,
                      int64_t group_begin, int64_t group_end,
                      const float* bias, OutputRows y) {
  if (x.rows < kMinUnpackedRows) {  // one row: decode tiles
    constexpr int kGroups = static_cast<int>(avx2::QuantDecodeTileGroups(1));
    int64_t g = group_begin;
    for (; g + kGroups <= group_end; g += kGroups) {
      QuantTile<kType, kLevels, kGroups>(w, x, g, 0, bias, y);
    }
    for (; g < group_end; ++g) QuantTile<kType, kLevels, 1>(w, x, g, 0, bias, y);
    return;
  }
  for (int64_t g = group_begin; g < group_end; ++g) {
    QuantRows<kType, kLevels>(w, x, g, bias, y);
  }
}

}  // namespace

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

}  // namespace weft::cpu::WEFT_QUANT_AVX2_NAMESPACE

#endif  // WEFT_KERNELS_CPU_QUANT_MATMUL_AVX2_H_
