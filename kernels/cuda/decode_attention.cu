// Paged decode attention, GQA-grouped, with an optional split over the
// context (flash-decoding) and its merge kernel.
//
//   DecodeAttentionKernel<D, G>  grid (KV head × group chunk, query token,
//       split), 4 warps. The block loads the query heads that share its KV
//       head (up to G ≤ kDecodeMaxGroup; lane l holds dims [l·D/32, (l+1)·D/32)
//       of each, pre-scaled), and its warps walk the split's context tokens
//       round-robin, kUnroll tokens a step: the step's K and V rows are all
//       read first (coalesced, D/32 bf16 a lane, from the paged cache), then
//       a warp-shuffle dot product per token and query head, and one fp32
//       online-softmax update per step. The warps' (max, sum, acc) states are
//       merged in shared memory at the end. Unsplit: writes out = acc / sum.
//       Split: writes the split's normalized output and log-sum-exp.
//   MergeSplitsKernel<D>  grid (query head, query token), D threads: the
//       splits' outputs weighted by exp(lse_s - max lse).
//
// A query token at position p sees context positions 0..p, i.e. the first
// context_len - query_len + i + 1 tokens for the i-th query token of its
// sequence; the decode kernel therefore also serves multi-token queries
// (one token at a time), which the tests use to check it against prefill.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_kernels.h"

namespace weft::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;  // context tokens per warp per step

__device__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Loads kE consecutive bf16 values (kE = 2 or 4, 4- or 8-byte aligned).
template <int kE>
__device__ void LoadBf16(const uint16_t* src, float* dst) {
  if constexpr (kE == 2) {
    const __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162*>(src);
    dst[0] = __low2float(v);
    dst[1] = __high2float(v);
  } else {
    static_assert(kE == 4);
    const uint2 raw = *reinterpret_cast<const uint2*>(src);
    const __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&raw.x);
    const __nv_bfloat162 hi = *reinterpret_cast<const __nv_bfloat162*>(&raw.y);
    dst[0] = __low2float(lo);
    dst[1] = __high2float(lo);
    dst[2] = __low2float(hi);
    dst[3] = __high2float(hi);
  }
}

// G: query heads a block attends together (registers scale with it), the
// model's group size rounded up to a power of two, at most kDecodeMaxGroup.
template <int D, int G>
__global__ void __launch_bounds__(kThreads)
    DecodeAttentionKernel(AttentionArgs a, DecodeArgs dec) {
  constexpr int kE = D / 32;
  static_assert(G >= 1 && G <= kDecodeMaxGroup);
  __shared__ float s_max[kWarps][G];
  __shared__ float s_sum[kWarps][G];
  __shared__ float s_acc[kWarps][G][D];

  const int group = a.num_q_heads / a.num_kv_heads;
  const int chunks_per_head = (group + G - 1) / G;
  const int kv_head = blockIdx.x / chunks_per_head;
  const int first_g = (blockIdx.x % chunks_per_head) * G;
  const int num_g = min(G, group - first_g);
  const int item = blockIdx.y;
  const int split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  const int t = dec.items[item];
  const int seq = dec.token_seq[t];
  const int q_begin = a.query_indptr[seq];
  const int q_len = a.query_indptr[seq + 1] - q_begin;
  const int kv_begin = a.kv_indptr[seq];
  const int num_blocks = a.kv_indptr[seq + 1] - kv_begin;
  const int context_len =
      (num_blocks - 1) * a.block_size + a.kv_last_block_len[seq];
  const int visible = context_len - q_len + (t - q_begin) + 1;
  const int num_splits = NumDecodeSplits(visible, dec.split_chunk,
                                         dec.max_splits);
  const int chunk = (visible + num_splits - 1) / num_splits;
  const int begin = split < num_splits ? split * chunk : visible;
  const int end = min(visible, begin + chunk);

  float q[G][kE];
  float m[G], l[G], acc[G][kE];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0;
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      acc[g][e] = 0;
      q[g][e] = 0;
      if (g < num_g) {
        const int h = kv_head * group + first_g + g;
        q[g][e] = a.q[t * a.q_stride + h * D + lane * kE + e] * a.scale;
      }
    }
  }

  // kUnroll tokens per step (j0, j0 + kWarps, …): all their K and V rows
  // are requested before any is used, so each warp keeps kUnroll × 2 row
  // reads in flight, and the running max is corrected once per step.
  const int32_t* blocks = a.kv_indices + kv_begin;
  for (int j0 = begin + warp; j0 < end; j0 += kWarps * kUnroll) {
    float k[kUnroll][kE], v[kUnroll][kE];
    bool valid[kUnroll];  // the same for every lane of the warp
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = j0 + u * kWarps;
      const int32_t block = j < end ? blocks[j / a.block_size] : -1;
      valid[u] = block >= 0 && block < a.num_blocks;  // host-validated
      if (valid[u]) {
        const int64_t base =
            ((int64_t{block} * a.num_kv_heads + kv_head) * a.block_size +
             j % a.block_size) * D + lane * kE;
        LoadBf16<kE>(a.k_cache + base, k[u]);
        LoadBf16<kE>(a.v_cache + base, v[u]);
      } else {
#pragma unroll
        for (int e = 0; e < kE; ++e) k[u][e] = v[u][e] = 0;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      if (g < num_g) {
        float dot[kUnroll];
        float m_new = m[g];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          float d = 0;
#pragma unroll
          for (int e = 0; e < kE; ++e) d += q[g][e] * k[u][e];
          d = WarpSum(d);
          dot[u] = valid[u] ? d : -INFINITY;
          m_new = fmaxf(m_new, dot[u]);
        }
        if (m_new == -INFINITY) continue;  // no valid token yet
        const float correction = expf(m[g] - m_new);  // 0 when m was -inf
        float p[kUnroll], p_sum = 0;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          p[u] = expf(dot[u] - m_new);  // 0 for an invalid token
          p_sum += p[u];
        }
        l[g] = l[g] * correction + p_sum;
#pragma unroll
        for (int e = 0; e < kE; ++e) {
          float a_e = acc[g][e] * correction;
#pragma unroll
          for (int u = 0; u < kUnroll; ++u) a_e += p[u] * v[u][e];
          acc[g][e] = a_e;
        }
        m[g] = m_new;
      }
    }
  }

#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g < num_g) {
      if (lane == 0) {
        s_max[warp][g] = m[g];
        s_sum[warp][g] = l[g];
      }
#pragma unroll
      for (int e = 0; e < kE; ++e) s_acc[warp][g][lane * kE + e] = acc[g][e];
    }
  }
  __syncthreads();

  for (int idx = threadIdx.x; idx < num_g * D; idx += kThreads) {
    const int g = idx / D, d = idx % D;
    float max_all = -INFINITY;
    for (int w = 0; w < kWarps; ++w) max_all = fmaxf(max_all, s_max[w][g]);
    float sum = 0, out = 0;
    if (max_all != -INFINITY) {
      for (int w = 0; w < kWarps; ++w) {
        const float scale = expf(s_max[w][g] - max_all);  // 0 for empty warps
        sum += s_sum[w][g] * scale;
        out += s_acc[w][g][d] * scale;
      }
    }
    const int h = kv_head * group + first_g + g;
    if (gridDim.z == 1) {
      // visible >= 1, so the one split saw at least one token: sum > 0.
      a.out[t * a.out_stride + h * D + d] = out / sum;
    } else {
      const int64_t row =
          (int64_t{item} * a.num_q_heads + h) * gridDim.z + split;
      dec.partial_out[row * D + d] = sum > 0 ? out / sum : 0.0f;
      if (d == 0) {
        dec.partial_lse[row] = sum > 0 ? max_all + logf(sum) : -INFINITY;
      }
    }
  }
}

template <int D>
__global__ void __launch_bounds__(D)
    MergeSplitsKernel(AttentionArgs a, DecodeArgs dec, int num_splits) {
  const int h = blockIdx.x, item = blockIdx.y, d = threadIdx.x;
  const int64_t first_row = (int64_t{item} * a.num_q_heads + h) * num_splits;
  float max_lse = -INFINITY;
  for (int s = 0; s < num_splits; ++s) {
    max_lse = fmaxf(max_lse, dec.partial_lse[first_row + s]);
  }
  float sum = 0, out = 0;
  for (int s = 0; s < num_splits; ++s) {
    const float lse = dec.partial_lse[first_row + s];
    if (lse == -INFINITY) continue;
    const float w = expf(lse - max_lse);
    sum += w;
    out += w * dec.partial_out[(first_row + s) * D + d];
  }
  const int t = dec.items[item];
  a.out[t * a.out_stride + h * D + d] = out / sum;
}

template <int D>
cudaError_t Launch(const AttentionArgs& a, const DecodeArgs& dec,
                   cudaStream_t stream) {
  const int group = a.num_q_heads / a.num_kv_heads;
  int g = 1;  // the group rounded up to a power of two, at most 8
  while (g < group && g < kDecodeMaxGroup) g *= 2;
  const int chunks = (group + g - 1) / g;
  const int splits = dec.split_chunk > 0 ? dec.max_splits : 1;
  const dim3 grid(a.num_kv_heads * chunks, dec.num_items, splits);
  // Each head's arithmetic is the same whatever G is: G only sizes the
  // registers (a Llama-3 group of 4 needs half of what 8 would).
  switch (g) {
    case 1:
      DecodeAttentionKernel<D, 1><<<grid, kThreads, 0, stream>>>(a, dec);
      break;
    case 2:
      DecodeAttentionKernel<D, 2><<<grid, kThreads, 0, stream>>>(a, dec);
      break;
    case 4:
      DecodeAttentionKernel<D, 4><<<grid, kThreads, 0, stream>>>(a, dec);
      break;
    default:
      DecodeAttentionKernel<D, kDecodeMaxGroup><<<grid, kThreads, 0, stream>>>(
          a, dec);
      break;
  }
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  if (splits > 1) {
    MergeSplitsKernel<D><<<dim3(a.num_q_heads, dec.num_items), D, 0, stream>>>(
        a, dec, splits);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchDecodeAttention(const AttentionArgs& args,
                                  const DecodeArgs& decode,
                                  cudaStream_t stream) {
  if (decode.num_items <= 0) return cudaSuccess;
  if (args.num_kv_heads <= 0 || args.num_q_heads % args.num_kv_heads != 0 ||
      decode.max_splits < 1 || decode.num_items > 65535 ||
      decode.max_splits > 65535) {
    return cudaErrorInvalidValue;
  }
  if (decode.split_chunk > 0 && decode.max_splits > 1 &&
      (decode.partial_out == nullptr || decode.partial_lse == nullptr)) {
    return cudaErrorInvalidValue;
  }
  switch (args.head_dim) {
    case 64:
      return Launch<64>(args, decode, stream);
    case 128:
      return Launch<128>(args, decode, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace weft::cuda
