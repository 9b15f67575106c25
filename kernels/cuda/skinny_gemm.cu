// Skinny GEMM for decode: y[n, m] = x[n, k] · w[m, k]ᵀ with n ≤ 16, where
// the weights are read once and the time is their bytes over the memory
// bandwidth. Both kernels put the weights on the tensor cores' A side
// ("swap AB": 16 weight rows × k16 per mma.sync m16n8k16) and the ≤ 16
// rows of x on the B side (one or two n8 tiles, rows ≥ n read as zero).
//
//   SkinnyBf16Kernel<kTilesN>  one block of 8 warps per 16 weight rows; the
//       warps split K in 32-element chunks (warp w takes chunks w, w+8, …),
//       each lane loading 16 bytes of its two weight rows and of each x row
//       per chunk. Fragments use a permuted K: lane (g, c) holds physical
//       k 8c..8c+7 of a chunk, and since the same permutation applies to A
//       and B the dot products are unchanged (tools/skinny_mma_sim.py).
//   SkinnyW4Kernel<kTilesN>   the same over W4 weights, two 32-element
//       groups per step (a lane reads 4 bytes of nibbles per row and group:
//       physical k 4c..4c+3 from the low nibbles, 16+4c.. from the high).
//       Nibbles become exact bf16 integers ((0x4300 | q) − 128), so the mma
//       gives Σ q·x exactly in fp32; a second mma with A = 1 gives Σ x; each
//       group then adds d·Σqx + m·Σx in fp32 — more accurate than
//       dequantizing the weights to bf16 first.
//   The 8 warps' partial sums are added in shared memory in a fixed order
//   (deterministic; no atomics) and warp 0 stores y.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cstdint>

#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/skinny_gemm.h"
#include "kernels/cuda/w4_device.cuh"

namespace weft::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerBlock = 16;

template <int kTilesN>
struct Partials {
  float v[kWarps][kTilesN][4][32];
};

// Adds the warps' accumulators (fixed order) and stores y: c0c1 are weight
// row g, x rows 2c, 2c+1 of the tile; c2c3 weight row g + 8.
template <int kTilesN>
__device__ __forceinline__ void ReduceAndStore(float (&acc)[kTilesN][4],
                                               Partials<kTilesN>& partials,
                                               float* y, int n, int m,
                                               int64_t ldy, int row0) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < kTilesN; ++t) {
#pragma unroll
    for (int i = 0; i < 4; ++i) partials.v[warp][t][i][lane] = acc[t][i];
  }
  __syncthreads();
  if (warp != 0) return;
  const int g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int t = 0; t < kTilesN; ++t) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float sum = 0;
      for (int w = 0; w < kWarps; ++w) sum += partials.v[w][t][i][lane];
      const int x_row = t * 8 + 2 * c + (i & 1);
      const int w_row = row0 + g + (i >= 2 ? 8 : 0);
      if (x_row < n && w_row < m) y[x_row * ldy + w_row] = sum;
    }
  }
}

// The two weight rows lane (g, c) of a block loads: row0 + g and
// row0 + g + 8, each clamped to row 0 (and flagged) past m.
struct WeightRows {
  int row0, lo, hi;
  bool lo_ok, hi_ok;
};
__device__ __forceinline__ WeightRows WeightRowsOf(int m) {
  const int row0 = blockIdx.x * kRowsPerBlock;
  const int g = (threadIdx.x % 32) >> 2;
  const bool lo_ok = row0 + g < m, hi_ok = row0 + g + 8 < m;
  return {row0, lo_ok ? row0 + g : 0, hi_ok ? row0 + g + 8 : 0, lo_ok, hi_ok};
}

template <int kTilesN>
__global__ void __launch_bounds__(kThreads)
    SkinnyBf16Kernel(const uint16_t* __restrict__ x,
                     const uint16_t* __restrict__ w, float* __restrict__ y,
                     int n, int m, int k, int64_t ldy) {
  __shared__ Partials<kTilesN> partials;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, c = lane & 3;
  const auto [row0, lo, hi, lo_ok, hi_ok] = WeightRowsOf(m);
  const uint4* w_lo = reinterpret_cast<const uint4*>(w + int64_t{lo} * k);
  const uint4* w_hi = reinterpret_cast<const uint4*>(w + int64_t{hi} * k);
  const uint4 zero = make_uint4(0, 0, 0, 0);

  float acc[kTilesN][4] = {};
  const int chunks = k / 32;  // 32 elements = 4 lanes × 16 bytes
#pragma unroll 2
  for (int chunk = warp; chunk < chunks; chunk += kWarps) {
    const int at = chunk * 4 + c;  // in 16-byte units along the row
    const uint4 a_lo = lo_ok ? __ldcs(w_lo + at) : zero;
    const uint4 a_hi = hi_ok ? __ldcs(w_hi + at) : zero;
#pragma unroll
    for (int t = 0; t < kTilesN; ++t) {
      const int j = t * 8 + g;
      const uint4 b =
          j < n ? __ldg(reinterpret_cast<const uint4*>(x + int64_t{j} * k) + at)
                : zero;
      const uint32_t a0[4] = {a_lo.x, a_hi.x, a_lo.y, a_hi.y};
      Mma(acc[t], a0, b.x, b.y);
      const uint32_t a1[4] = {a_lo.z, a_hi.z, a_lo.w, a_hi.w};
      Mma(acc[t], a1, b.z, b.w);
    }
  }
  ReduceAndStore<kTilesN>(acc, partials, y, n, m, ldy, row0);
}

// Two nibbles (low or high halves of bytes b0, b1 of `pair`, laid out as
// byte 0 and byte 2 by the caller) as two exact bf16 integers.
__device__ __forceinline__ uint32_t NibblesToBf16(uint32_t spread, int shift) {
  const uint32_t biased = ((spread >> shift) & 0x000F000Fu) | 0x43004300u;
  const __nv_bfloat162 v = __hsub2(
      *reinterpret_cast<const __nv_bfloat162*>(&biased),
      __floats2bfloat162_rn(128.0f, 128.0f));
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int kTilesN>
__global__ void __launch_bounds__(kThreads)
    SkinnyW4Kernel(const uint16_t* __restrict__ x,
                   const uint8_t* __restrict__ w, float* __restrict__ y,
                   int n, int m, int k, int64_t ldy) {
  __shared__ Partials<kTilesN> partials;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, c = lane & 3;
  const auto [row0, lo, hi, lo_ok, hi_ok] = WeightRowsOf(m);
  const int64_t row_bytes = W4RowBytes(k);
  const uint8_t* w_lo = w + lo * row_bytes;
  const uint8_t* w_hi = w + hi * row_bytes;
  const uint32_t kOnes = 0x3F803F80u;  // bf16 (1, 1)
  const uint32_t ones[4] = {kOnes, kOnes, kOnes, kOnes};

  float acc[kTilesN][4] = {};
  const int groups = k / 32;
  // Two consecutive groups per step, so a warp uses whole 32-byte sectors
  // of nibbles.
#pragma unroll 2
  for (int pair = warp; pair < groups / 2; pair += kWarps) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int group = pair * 2 + half;
      const uint32_t q_lo =
          lo_ok ? __ldcs(reinterpret_cast<const uint32_t*>(w_lo + group * 16) + c) : 0;
      const uint32_t q_hi =
          hi_ok ? __ldcs(reinterpret_cast<const uint32_t*>(w_hi + group * 16) + c) : 0;
      const uint32_t s_lo =
          lo_ok ? __ldg(reinterpret_cast<const uint32_t*>(w_lo + k / 2) + group) : 0;
      const uint32_t s_hi =
          hi_ok ? __ldg(reinterpret_cast<const uint32_t*>(w_hi + k / 2) + group) : 0;
      const float2 dm_lo = __half22float2(*reinterpret_cast<const __half2*>(&s_lo));
      const float2 dm_hi = __half22float2(*reinterpret_cast<const __half2*>(&s_hi));
      // Bytes (0, 1) and (2, 3) of each word spread to bytes 0 and 2.
      const uint32_t lo01 = __byte_perm(q_lo, 0, 0x4140);
      const uint32_t lo23 = __byte_perm(q_lo, 0, 0x4342);
      const uint32_t hi01 = __byte_perm(q_hi, 0, 0x4140);
      const uint32_t hi23 = __byte_perm(q_hi, 0, 0x4342);
      // Slice 0: low nibbles = physical k 4c..4c+3; slice 1: high nibbles
      // = physical k 16+4c..16+4c+3.
      const uint32_t a0[4] = {NibblesToBf16(lo01, 0), NibblesToBf16(hi01, 0),
                              NibblesToBf16(lo23, 0), NibblesToBf16(hi23, 0)};
      const uint32_t a1[4] = {NibblesToBf16(lo01, 4), NibblesToBf16(hi01, 4),
                              NibblesToBf16(lo23, 4), NibblesToBf16(hi23, 4)};
#pragma unroll
      for (int t = 0; t < kTilesN; ++t) {
        const int j = t * 8 + g;
        uint2 b0 = make_uint2(0, 0), b1 = make_uint2(0, 0);
        if (j < n) {
          const uint16_t* xg = x + int64_t{j} * k + group * 32;
          b0 = __ldg(reinterpret_cast<const uint2*>(xg + 4 * c));
          b1 = __ldg(reinterpret_cast<const uint2*>(xg + 16 + 4 * c));
        }
        float qx[4] = {0, 0, 0, 0}, sx[4] = {0, 0, 0, 0};
        Mma(qx, a0, b0.x, b0.y);
        Mma(qx, a1, b1.x, b1.y);
        Mma(sx, ones, b0.x, b0.y);
        Mma(sx, ones, b1.x, b1.y);
        acc[t][0] += dm_lo.x * qx[0] + dm_lo.y * sx[0];
        acc[t][1] += dm_lo.x * qx[1] + dm_lo.y * sx[1];
        acc[t][2] += dm_hi.x * qx[2] + dm_hi.y * sx[2];
        acc[t][3] += dm_hi.x * qx[3] + dm_hi.y * sx[3];
      }
    }
  }
  ReduceAndStore<kTilesN>(acc, partials, y, n, m, ldy, row0);
}

// One n8 tile of x rows up to 8, two up to 16; one block per 16 weight rows.
template <typename Weight>
cudaError_t Launch(void (*one_tile)(const uint16_t*, const Weight*, float*,
                                    int, int, int, int64_t),
                   void (*two_tiles)(const uint16_t*, const Weight*, float*,
                                     int, int, int, int64_t),
                   const uint16_t* x, const Weight* w, float* y, int64_t n,
                   int64_t m, int64_t k, int64_t ldy, cudaStream_t stream) {
  if (m < 1 || m > INT_MAX || ldy < m) return cudaErrorInvalidValue;
  const auto blocks =
      static_cast<unsigned>((m + kRowsPerBlock - 1) / kRowsPerBlock);
  (n <= 8 ? one_tile : two_tiles)<<<blocks, kThreads, 0, stream>>>(
      x, w, y, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
      ldy);
  return cudaGetLastError();
}

}  // namespace

bool SkinnyBf16Supports(const void* x, const void* w, int64_t n, int64_t k) {
  return n >= 1 && n <= kSkinnyGemmMaxRows && k >= 32 && k % 32 == 0 &&
         k <= INT_MAX && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

bool SkinnyW4Supports(const void* x, const void* w, int64_t n, int64_t k) {
  return n >= 1 && n <= kSkinnyGemmMaxRows && k >= 64 && k % 64 == 0 &&
         k <= INT_MAX && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 8 == 0;
}

cudaError_t LaunchSkinnyBf16(const uint16_t* x, const uint16_t* w, float* y,
                             int64_t n, int64_t m, int64_t k, int64_t ldy,
                             cudaStream_t stream) {
  if (!SkinnyBf16Supports(x, w, n, k)) return cudaErrorInvalidValue;
  return Launch(SkinnyBf16Kernel<1>, SkinnyBf16Kernel<2>, x, w, y, n, m, k,
                ldy, stream);
}

cudaError_t LaunchSkinnyW4(const uint16_t* x, const uint8_t* w, float* y,
                           int64_t n, int64_t m, int64_t k, int64_t ldy,
                           cudaStream_t stream) {
  if (!SkinnyW4Supports(x, w, n, k)) return cudaErrorInvalidValue;
  return Launch(SkinnyW4Kernel<1>, SkinnyW4Kernel<2>, x, w, y, n, m, k, ldy,
                stream);
}

}  // namespace weft::cuda
