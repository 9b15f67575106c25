// Paged decode attention, GQA-grouped, with an optional split over the
// context (flash-decoding) and its merge kernel.
//
//   DecodeAttentionKernel<D, G>  grid (KV head × group chunk, query token,
//       split), 4 warps. The block loads the query heads that share its KV
//       head (up to G ≤ kDecodeMaxGroup, pre-scaled). A K or V row is read
//       with 16-byte loads by D/8 lanes (a "sub-warp"), so one warp-wide
//       load covers 32/(D/8) consecutive context tokens (2 at D = 128);
//       each warp issues kUnroll such loads of K and V before using any,
//       then a dot product per token and query head (a shuffle tree over
//       the sub-warp: one tree serves all its sub-warps at once) and one
//       fp32 online-softmax update per step and sub-warp. The sub-warps'
//       states are merged by shuffles, the warps' in shared memory.
//       Unsplit: writes out = acc / sum. Split: writes the split's
//       normalized output and log-sum-exp.
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
constexpr int kVec = 8;  // bf16 per 16-byte load

// Geometry of DecodeAttentionKernel<D, G>: a K or V row of D bf16 is read
// by kLanes lanes with one 16-byte load each, so a warp-wide load covers
// kTokens consecutive context tokens (one per "sub-warp" of kLanes lanes),
// and a warp issues kUnroll such loads of K and of V before using any.
template <int D, int G>
struct DecodeShape {
  static_assert(D % (kVec * 4) == 0 && D <= 32 * kVec);
  static constexpr int kLanes = D / kVec;         // 16 at D = 128, 8 at 64
  // The XOR shuffle trees stay inside a sub-warp only for a power of two.
  static_assert((kLanes & (kLanes - 1)) == 0);
  static constexpr int kTokens = 32 / kLanes;     // 2 at D = 128, 4 at 64
  static constexpr int kUnroll = 4;
  static constexpr int kStep = kWarps * kTokens * kUnroll;  // tokens a block step
};

// The eight bf16 of a 16-byte load as floats (bf16 → f32 is a shift).
__device__ __forceinline__ void Unpack8(const uint4& raw, float* dst) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    dst[2 * i] = __uint_as_float(w[i] << 16);
    dst[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// Merges the online-softmax state (m, l, acc) of the lane `offset` away.
// Every lane of the warp must call it (it shuffles).
template <int N>
__device__ __forceinline__ void MergeState(float& m, float& l, float* acc,
                                           int offset) {
  const float m_o = __shfl_xor_sync(0xffffffffu, m, offset);
  const float l_o = __shfl_xor_sync(0xffffffffu, l, offset);
  const float m_new = fmaxf(m, m_o);
  // Both empty (-inf): the state stays empty; exp(-inf - finite) = 0.
  const float s = m_new == -INFINITY ? 0.0f : expf(m - m_new);
  const float s_o = m_new == -INFINITY ? 0.0f : expf(m_o - m_new);
  l = l * s + l_o * s_o;
#pragma unroll
  for (int e = 0; e < N; ++e) {
    const float a_o = __shfl_xor_sync(0xffffffffu, acc[e], offset);
    acc[e] = acc[e] * s + a_o * s_o;
  }
  m = m_new;
}

// G: query heads a block attends together (registers scale with it), the
// model's group size rounded up to a power of two, at most kDecodeMaxGroup.
// At most 128 registers up to G = 4 (ptxas needs no spill for it): 4
// blocks, 64 kB of loads in flight, an SM; G = 8 takes ~235, 2 blocks.
template <int D, int G>
__global__ void __launch_bounds__(kThreads, G <= 4 ? 4 : 2)
    DecodeAttentionKernel(AttentionArgs a, DecodeArgs dec) {
  using Shape = DecodeShape<D, G>;
  constexpr int kLanes = Shape::kLanes, kTokens = Shape::kTokens;
  constexpr int kUnroll = Shape::kUnroll;
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
  const int sub = lane / kLanes;       // which token of a warp-wide load
  const int dim0 = (lane % kLanes) * kVec;  // this lane's 8 dims

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
  if (begin >= end) {
    // An empty split (the grid has the most splits any token of the batch,
    // a CUDA graph's the most of any batch): only its log-sum-exp, -inf,
    // which the merge skips without reading the output. Uniform across the
    // block, so no barrier below is left waiting. Split 0 is never empty.
    for (int g = threadIdx.x; g < num_g; g += kThreads) {
      const int h = kv_head * group + first_g + g;
      dec.partial_lse[(int64_t{item} * a.num_q_heads + h) * gridDim.z + split] =
          -INFINITY;
    }
    return;
  }

  // Per lane: its 8 dims of each query head (pre-scaled), and the online-
  // softmax state of the tokens its sub-warp has seen (the kLanes lanes of a
  // sub-warp hold the same m and l, each its own 8 dims of acc).
  float q[G][kVec];
  float m[G], l[G], acc[G][kVec];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0;
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      acc[g][e] = 0;
      q[g][e] = 0;
      if (g < num_g) {
        const int h = kv_head * group + first_g + g;
        q[g][e] = a.q[t * a.q_stride + h * D + dim0 + e] * a.scale;
      }
    }
  }

  // A block step covers kStep consecutive tokens: load u of warp w reads
  // tokens (u·kWarps + w)·kTokens + sub. All kUnroll K and V loads are
  // issued before any is used (2·kUnroll 16-byte loads in flight a lane).
  const int32_t* blocks = a.kv_indices + kv_begin;
  for (int j0 = begin + warp * kTokens + sub; j0 - sub < end;
       j0 += Shape::kStep) {
    uint4 k_raw[kUnroll], v_raw[kUnroll];
    bool valid[kUnroll];  // the same for the lanes of a sub-warp
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = j0 + u * kWarps * kTokens;
      const int32_t block = j < end ? blocks[j / a.block_size] : -1;
      valid[u] = block >= 0 && block < a.num_blocks;  // host-validated
      k_raw[u] = v_raw[u] = make_uint4(0, 0, 0, 0);
      if (valid[u]) {
        const int64_t base =
            ((int64_t{block} * a.num_kv_heads + kv_head) * a.block_size +
             j % a.block_size) * D + dim0;
        k_raw[u] = __ldg(reinterpret_cast<const uint4*>(a.k_cache + base));
        v_raw[u] = __ldg(reinterpret_cast<const uint4*>(a.v_cache + base));
      }
    }
    // Scores first, for every head (the shuffles stay outside any branch
    // that differs between sub-warps), then the softmax updates.
    float dot[G][kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float k[kVec];
      Unpack8(k_raw[u], k);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float d = 0;
#pragma unroll
        for (int e = 0; e < kVec; ++e) d += q[g][e] * k[e];
#pragma unroll
        for (int offset = kLanes / 2; offset > 0; offset >>= 1) {
          d += __shfl_xor_sync(0xffffffffu, d, offset);
        }
        dot[g][u] = valid[u] ? d : -INFINITY;
      }
    }
    float v[kUnroll][kVec];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) Unpack8(v_raw[u], v[u]);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float m_new = m[g];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) m_new = fmaxf(m_new, dot[g][u]);
      if (g >= num_g || m_new == -INFINITY) continue;  // nothing valid yet
      const float correction = expf(m[g] - m_new);  // 0 when m was -inf
      float p[kUnroll], p_sum = 0;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        p[u] = expf(dot[g][u] - m_new);  // 0 for an invalid token
        p_sum += p[u];
      }
      l[g] = l[g] * correction + p_sum;
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        float a_e = acc[g][e] * correction;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) a_e += p[u] * v[u][e];
        acc[g][e] = a_e;
      }
      m[g] = m_new;
    }
  }

  // The sub-warps' states merged into sub-warp 0, then the warps' in
  // shared memory.
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int offset = kLanes; offset < 32; offset <<= 1) {
      MergeState<kVec>(m[g], l[g], acc[g], offset);
    }
  }
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g < num_g && sub == 0) {
      if (lane == 0) {
        s_max[warp][g] = m[g];
        s_sum[warp][g] = l[g];
      }
#pragma unroll
      for (int e = 0; e < kVec; ++e) s_acc[warp][g][dim0 + e] = acc[g][e];
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
