// RoPE fused with the paged K/V write: one thread block per token. Threads
// rotate the token's query heads in place (fp32), rotate its key heads in
// place and write each rotated pair straight to the token's slot in the bf16
// cache, copy the key dims past rotary_dim, and write the value heads. No
// element is touched by two threads, so the block needs no barrier.
// Angles are position × inv_freq[i] in fp32 with the accurate sincosf
// (positions reach tens of thousands of radians).
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_kernels.h"

namespace weft::cuda {
namespace {

constexpr int kThreads = 128;

__device__ uint16_t ToBf16Bits(float x) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

__global__ void RopeAndWriteKvKernel(RopeKvArgs a) {
  const int t = blockIdx.x;
  const int half = a.rotary_dim / 2;
  const int head_dim = a.head_dim;
  const float position = static_cast<float>(a.positions[t]);
  const int64_t slot = a.slot_mapping[t];
  const int64_t block = slot / a.block_size;
  const int64_t offset = slot % a.block_size;
  // The host checked slots against the cache (ValidateBatch); a slot outside
  // it is skipped rather than written out of bounds.
  const bool slot_ok = slot >= 0 && block < a.num_blocks;
  auto cache_index = [&](int kv_head, int d) {
    return ((block * a.num_kv_heads + kv_head) * a.block_size + offset) *
               head_dim + d;
  };
  auto pair = [&](int i, int* first, int* second) {
    *first = a.neox ? i : 2 * i;
    *second = a.neox ? i + half : 2 * i + 1;
  };

  float* q_row = a.q + t * a.q_stride;
  for (int idx = threadIdx.x; idx < a.num_q_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(position * a.inv_freq[i], &s, &c);
    int first, second;
    pair(i, &first, &second);
    float* head = q_row + h * head_dim;
    const float x1 = head[first], x2 = head[second];
    head[first] = x1 * c - x2 * s;
    head[second] = x2 * c + x1 * s;
  }

  float* k_row = a.k + t * a.k_stride;
  for (int idx = threadIdx.x; idx < a.num_kv_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(position * a.inv_freq[i], &s, &c);
    int first, second;
    pair(i, &first, &second);
    float* head = k_row + h * head_dim;
    const float x1 = head[first], x2 = head[second];
    const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
    head[first] = y1;
    head[second] = y2;
    if (slot_ok) {
      a.k_cache[cache_index(h, first)] = ToBf16Bits(y1);
      a.k_cache[cache_index(h, second)] = ToBf16Bits(y2);
    }
  }
  const int unrotated = head_dim - a.rotary_dim;
  if (slot_ok && unrotated > 0) {
    for (int idx = threadIdx.x; idx < a.num_kv_heads * unrotated;
         idx += blockDim.x) {
      const int h = idx / unrotated, d = a.rotary_dim + idx % unrotated;
      a.k_cache[cache_index(h, d)] = ToBf16Bits(k_row[h * head_dim + d]);
    }
  }
  if (slot_ok) {
    const float* v_row = a.v + t * a.v_stride;
    for (int idx = threadIdx.x; idx < a.num_kv_heads * head_dim;
         idx += blockDim.x) {
      const int h = idx / head_dim, d = idx % head_dim;
      a.v_cache[cache_index(h, d)] = ToBf16Bits(v_row[idx]);
    }
  }
}

}  // namespace

cudaError_t LaunchRopeAndWriteKv(const RopeKvArgs& args, cudaStream_t stream) {
  if (args.num_tokens <= 0) return cudaSuccess;
  if (args.rotary_dim % 2 != 0 || args.rotary_dim > args.head_dim ||
      args.block_size <= 0) {
    return cudaErrorInvalidValue;
  }
  RopeAndWriteKvKernel<<<args.num_tokens, kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace weft::cuda
