// Causal prefill attention over the paged cache with tensor cores.
//
//   PrefillAttentionKernel<D>  grid (tile, query head), 4 warps. A tile is
//       up to 64 consecutive query tokens of one sequence (its first query
//       row and sequence come from the host-built tile list); warp w owns
//       query rows 16w..16w+15. Q (fp32 in global) is rounded to bf16 into
//       shared memory once. The block then walks the context in steps of 32
//       tokens, up to the tile's last position: K rows and V rows are
//       gathered from their paged blocks into shared memory (V transposed,
//       so both mma B operands are contiguous pairs), S = Q·Kᵀ runs as
//       mma.sync.m16n8k16 bf16 → fp32, is scaled and causally masked in
//       fp32, the running max / sum / output are rescaled (online softmax),
//       P is rounded to bf16 in registers (the accumulator layout of S is
//       the A-operand layout of P·V) and O += P·V runs as mma.sync again.
//
// Fragment layouts: kernels/cuda/mma_util.cuh.
// Simple on purpose: no cp.async pipelining, no ldmatrix, one head per
// block (the KV heads shared by GQA query heads are re-read through L2).
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/mma_util.cuh"

namespace weft::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = kPrefillTileRows;  // 64 = kWarps × 16
constexpr int kKeys = 32;                // context tokens per step
constexpr int kPad = 8;                  // bf16 elements of row padding
static_assert(kRows == kWarps * 16);

__device__ __forceinline__ uint32_t Load32(const __nv_bfloat16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    PrefillAttentionKernel(AttentionArgs a, const int32_t* tiles) {
  static_assert(D % 16 == 0);
  __shared__ __align__(16) __nv_bfloat16 s_q[kRows][D + kPad];
  __shared__ __align__(16) __nv_bfloat16 s_k[kKeys][D + kPad];
  __shared__ __align__(16) __nv_bfloat16 s_vt[D][kKeys + kPad];

  const int seq = tiles[2 * blockIdx.x];
  const int q_first = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y;
  const int group = a.num_q_heads / a.num_kv_heads;
  const int kv_head = h / group;
  const int q_begin = a.query_indptr[seq];
  const int q_len = a.query_indptr[seq + 1] - q_begin;
  const int kv_begin = a.kv_indptr[seq];
  const int num_blocks = a.kv_indptr[seq + 1] - kv_begin;
  const int context_len =
      (num_blocks - 1) * a.block_size + a.kv_last_block_len[seq];
  const int rows = min(kRows, q_len - q_first);  // valid rows of the tile
  const int first_pos = context_len - q_len + q_first;
  const int kv_end = first_pos + rows;  // the tile sees positions < kv_end
  const int32_t* blocks = a.kv_indices + kv_begin;

  for (int idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
    const int r = idx / D, d = idx % D;
    float v = 0;
    if (r < rows) v = a.q[int64_t{q_begin + q_first + r} * a.q_stride + h * D + d];
    s_q[r][d] = __float2bfloat16_rn(v);
  }
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, c = lane & 3;
  const int row0 = warp * 16 + g, row1 = row0 + 8;  // rows this thread holds
  const int pos0 = first_pos + row0, pos1 = first_pos + row1;

  uint32_t q_frag[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    q_frag[kk][0] = Load32(&s_q[row0][kk * 16 + 2 * c]);
    q_frag[kk][1] = Load32(&s_q[row1][kk * 16 + 2 * c]);
    q_frag[kk][2] = Load32(&s_q[row0][kk * 16 + 2 * c + 8]);
    q_frag[kk][3] = Load32(&s_q[row1][kk * 16 + 2 * c + 8]);
  }

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0;
  float m0 = -INFINITY, m1 = -INFINITY;  // running max of rows 0 and 1
  float l0 = 0, l1 = 0;  // this thread's share of the running sums

  for (int kv0 = 0; kv0 < kv_end; kv0 += kKeys) {
    __syncthreads();  // every warp is done with the previous K/V tile
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    for (int idx = threadIdx.x; idx < kKeys * kChunks; idx += kThreads) {
      const int key = idx / kChunks, chunk = idx % kChunks;
      const int j = kv0 + key;
      uint4 k_raw = make_uint4(0, 0, 0, 0), v_raw = make_uint4(0, 0, 0, 0);
      if (j < kv_end) {
        const int32_t block = blocks[j / a.block_size];
        if (block >= 0 && block < a.num_blocks) {
          const int64_t base =
              ((int64_t{block} * a.num_kv_heads + kv_head) * a.block_size +
               j % a.block_size) * D + chunk * 8;
          k_raw = *reinterpret_cast<const uint4*>(a.k_cache + base);
          v_raw = *reinterpret_cast<const uint4*>(a.v_cache + base);
        }
      }
      *reinterpret_cast<uint4*>(&s_k[key][chunk * 8]) = k_raw;
      const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&v_raw);
#pragma unroll
      for (int e = 0; e < 8; ++e) s_vt[chunk * 8 + e][key] = v[e];
    }
    __syncthreads();

    // S = Q Kᵀ: 16 rows × 32 keys per warp, 4 n-tiles of 8 keys.
    float s[kKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const __nv_bfloat16* k_row = &s_k[nt * 8 + g][kk * 16 + 2 * c];
        Mma(s[nt], q_frag[kk], Load32(k_row), Load32(k_row + 8));
      }
    }

    // Scale, mask, and the tile's row maxima.
    float tile_max0 = -INFINITY, tile_max1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = kv0 + nt * 8 + 2 * c + (i & 1);
        const int pos = i < 2 ? pos0 : pos1;
        const bool visible = j <= pos && j < kv_end;
        s[nt][i] = visible ? s[nt][i] * a.scale : -INFINITY;
      }
      tile_max0 = fmaxf(tile_max0, fmaxf(s[nt][0], s[nt][1]));
      tile_max1 = fmaxf(tile_max1, fmaxf(s[nt][2], s[nt][3]));
    }
    // The four threads of a quad hold the same two rows.
    for (int offset = 1; offset < 4; offset <<= 1) {
      tile_max0 = fmaxf(tile_max0, __shfl_xor_sync(0xffffffffu, tile_max0, offset));
      tile_max1 = fmaxf(tile_max1, __shfl_xor_sync(0xffffffffu, tile_max1, offset));
    }
    const float new_m0 = fmaxf(m0, tile_max0), new_m1 = fmaxf(m1, tile_max1);
    // A row that has seen nothing yet keeps max -inf; use 0 so exp() gives
    // 0 for its masked scores instead of NaN.
    const float use_m0 = new_m0 == -INFINITY ? 0.0f : new_m0;
    const float use_m1 = new_m1 == -INFINITY ? 0.0f : new_m1;
    const float corr0 = expf(m0 - use_m0), corr1 = expf(m1 - use_m1);
    m0 = new_m0;
    m1 = new_m1;
    l0 *= corr0;
    l1 *= corr1;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= corr0;
      o[dt][1] *= corr0;
      o[dt][2] *= corr1;
      o[dt][3] *= corr1;
    }
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
      s[nt][0] = expf(s[nt][0] - use_m0);
      s[nt][1] = expf(s[nt][1] - use_m0);
      s[nt][2] = expf(s[nt][2] - use_m1);
      s[nt][3] = expf(s[nt][3] - use_m1);
      l0 += s[nt][0] + s[nt][1];
      l1 += s[nt][2] + s[nt][3];
    }

    // O += P V: P 16 × 32 as two A operands of 16 keys; V from s_vt.
#pragma unroll
    for (int kc = 0; kc < kKeys / 16; ++kc) {
      const uint32_t p[4] = {PackBf16(s[2 * kc][0], s[2 * kc][1]),
                             PackBf16(s[2 * kc][2], s[2 * kc][3]),
                             PackBf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                             PackBf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const __nv_bfloat16* v_col = &s_vt[dt * 8 + g][kc * 16 + 2 * c];
        Mma(o[dt], p, Load32(v_col), Load32(v_col + 8));
      }
    }
  }

  for (int offset = 1; offset < 4; offset <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, offset);
    l1 += __shfl_xor_sync(0xffffffffu, l1, offset);
  }
  const float inv0 = l0 > 0 ? 1.0f / l0 : 0.0f;
  const float inv1 = l1 > 0 ? 1.0f / l1 : 0.0f;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int d = h * D + dt * 8 + 2 * c;
    if (row0 < rows) {
      float* out = a.out + int64_t{q_begin + q_first + row0} * a.out_stride + d;
      out[0] = o[dt][0] * inv0;
      out[1] = o[dt][1] * inv0;
    }
    if (row1 < rows) {
      float* out = a.out + int64_t{q_begin + q_first + row1} * a.out_stride + d;
      out[0] = o[dt][2] * inv1;
      out[1] = o[dt][3] * inv1;
    }
  }
}

}  // namespace

cudaError_t LaunchPrefillAttention(const AttentionArgs& args,
                                   const int32_t* tiles, int num_tiles,
                                   cudaStream_t stream) {
  if (num_tiles <= 0) return cudaSuccess;
  if (args.num_kv_heads <= 0 || args.num_q_heads % args.num_kv_heads != 0 ||
      args.num_q_heads > 65535) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(num_tiles, args.num_q_heads);
  switch (args.head_dim) {
    case 64:
      PrefillAttentionKernel<64><<<grid, kThreads, 0, stream>>>(args, tiles);
      break;
    case 128:
      PrefillAttentionKernel<128><<<grid, kThreads, 0, stream>>>(args, tiles);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace weft::cuda
