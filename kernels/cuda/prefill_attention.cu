// Causal prefill attention over the paged cache with tensor cores, in the
// manner of FlashAttention-2 (one pass, online softmax, K/V streamed through
// shared memory while the previous tile is being multiplied).
//
//   PrefillAttentionKernel<D>  grid (query tile, query head), 4 warps. A
//       query tile is up to 64 consecutive tokens of one sequence (from the
//       host-built tile list). The query heads that share a KV head are
//       packed into the rows: the tile's (token, head-in-group) pairs, token
//       major, are cut into blocks of 64 rows, and blockIdx.y = kv_head ·
//       group + b takes the b-th block of them. So every block reads one KV
//       head, and the K/V rows it loads serve all the query heads of the
//       group at once (Llama-3: 16 tokens × 4 heads a block). Warp w owns
//       rows 16w..16w+15; Q is rounded to bf16 straight into its mma A
//       fragments (registers, for the whole kernel).
//       The context is walked in tiles of 64 tokens up to the block's last
//       position: a tile's K and V rows are gathered from their paged blocks
//       by cp.async (16-byte copies, zero-filled past the end) into one of
//       two shared-memory stages while the warps work on the other stage.
//       S = Q·Kᵀ with ldmatrix.x4 B fragments of K and mma.sync m16n8k16
//       (bf16 in, fp32 accumulate); the scale and log2(e) are applied in
//       fp32 and the causal mask only on tiles that reach past the block's
//       first position; online softmax with exp2; P is rounded to bf16 in
//       registers (the accumulator layout of S is the A layout of P·V) and
//       O += P·V takes its B fragments from V with ldmatrix.x4.trans.
//   Shared memory rows are D bf16 (D/8 16-byte chunks); chunk c of row r is
//   stored at c ^ (r & 7), so the eight row addresses of each ldmatrix
//   matrix (plain or transposed) fall in eight different bank groups.
//
// Fragment layouts: kernels/cuda/mma_util.cuh. tools/prefill_mma_sim.py
// emulates the lanes of this kernel.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/mma_util.cuh"

namespace weft::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 64;   // (token, head) rows of a block = kWarps × 16
constexpr int kKeys = 64;   // context tokens per K/V tile
constexpr int kStages = 2;  // K/V tiles in shared memory
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kRows == kWarps * 16);
// A tile's pairs fill at most `group` blocks: grid.y = num_q_heads suffices.
static_assert(kPrefillTileRows <= kRows);

template <int D>
struct PrefillShape {
  static_assert(D % 16 == 0 && D >= 64);
  static constexpr int kChunks = D / 8;                  // 16-byte chunks a row
  static constexpr int kTileChunks = kKeys * kChunks;     // of K (or V) a tile
  static constexpr int kSmemBytes = kStages * 2 * kTileChunks * 16;
  static constexpr int kKeysPerPass = kThreads / kChunks;  // rows a load pass
  static_assert(kThreads % kChunks == 0 && kKeys % kKeysPerPass == 0);
  // Swizzle permutes chunks in runs of 8: a row must hold whole runs.
  static_assert(kChunks % 8 == 0);
};

__device__ __forceinline__ int Swizzle(int row, int chunk) {
  return chunk ^ (row & 7);
}

// Transposed ldmatrix: thread t gets elements (2(t % 4), t / 4) and
// (2(t % 4) + 1, t / 4) of each 8×8 matrix (rows = the addressed rows).
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4],
                                                const void* row) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(SharedAddress(row)));
}

// What one block works on, derived from its tile and head indices.
struct BlockRows {
  int q_begin, q_first;  // first query row of the sequence / of the tile
  int first_pos;         // position of the tile's first token
  int tokens;            // valid tokens of the tile
  int group;             // query heads per KV head
  int kv_head, first_pair;  // the block's rows are pairs first_pair + r
  int kv_end;     // the block's rows see positions < kv_end
  int min_pos;    // position of the block's first token
};

__device__ __forceinline__ bool ResolveBlock(const AttentionArgs& a,
                                             const int32_t* tiles,
                                             BlockRows* b) {
  const int seq = tiles[2 * blockIdx.x];
  b->q_first = tiles[2 * blockIdx.x + 1];
  b->group = a.num_q_heads / a.num_kv_heads;
  b->kv_head = blockIdx.y / b->group;
  b->first_pair = (blockIdx.y % b->group) * kRows;
  b->q_begin = a.query_indptr[seq];
  const int q_len = a.query_indptr[seq + 1] - b->q_begin;
  const int num_blocks = a.kv_indptr[seq + 1] - a.kv_indptr[seq];
  const int context_len =
      (num_blocks - 1) * a.block_size + a.kv_last_block_len[seq];
  b->tokens = min(kPrefillTileRows, q_len - b->q_first);
  b->first_pos = context_len - q_len + b->q_first;
  const int pairs = b->tokens * b->group;
  if (b->first_pair >= pairs) return false;  // a short tile's spare block
  const int last_pair = min(pairs, b->first_pair + kRows) - 1;
  b->min_pos = b->first_pos + b->first_pair / b->group;
  b->kv_end = b->first_pos + last_pair / b->group + 1;
  return true;
}

// cp.async of the K and V rows of context tokens [kv0, kv0 + kKeys) of one
// KV head into a stage; tokens ≥ kv_end (or in an invalid block) read zero.
template <int D>
__device__ __forceinline__ void LoadKvTile(uint4* s_k, uint4* s_v,
                                           const AttentionArgs& a,
                                           const int32_t* blocks, int kv_head,
                                           int kv0, int kv_end) {
  using Shape = PrefillShape<D>;
  const int chunk = threadIdx.x % Shape::kChunks;
#pragma unroll
  for (int key = threadIdx.x / Shape::kChunks; key < kKeys;
       key += Shape::kKeysPerPass) {
    const int j = kv0 + key;
    int32_t block = -1;
    if (j < kv_end) block = blocks[j / a.block_size];
    const bool valid = block >= 0 && block < a.num_blocks;
    int64_t offset = 0;
    if (valid) {
      offset = ((int64_t{block} * a.num_kv_heads + kv_head) * a.block_size +
                j % a.block_size) * D + chunk * 8;
    }
    const int at = key * Shape::kChunks + Swizzle(key, chunk);
    CpAsync16(s_k + at, a.k_cache + offset, valid);
    CpAsync16(s_v + at, a.v_cache + offset, valid);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads, 2)
    PrefillAttentionKernel(AttentionArgs a, const int32_t* tiles) {
  using Shape = PrefillShape<D>;
  extern __shared__ uint4 smem[];  // [stage][K, V][kKeys × kChunks]
  BlockRows b;
  if (!ResolveBlock(a, tiles, &b)) return;  // uniform over the block

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, c = lane & 3;
  // This thread's two rows (g and g + 8 of its warp's 16): their token,
  // query head, and the position each sees up to (-1: a padding row).
  int row_token[2], row_pos[2];
  uint32_t q_frag[D / 16][4];
  {
    const float* q_row[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int pair = b.first_pair + warp * 16 + g + 8 * i;
      const int token = pair / b.group;
      const int head = b.kv_head * b.group + pair % b.group;
      const bool valid = token < b.tokens;
      row_token[i] = valid ? token : -1;
      row_pos[i] = valid ? b.first_pos + token : -1;
      q_row[i] = valid ? a.q + int64_t{b.q_begin + b.q_first + token} * a.q_stride +
                             head * D
                       : nullptr;
    }
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {  // dims +0 and +8
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          float2 v = make_float2(0.0f, 0.0f);
          if (q_row[i] != nullptr) {
            v = *reinterpret_cast<const float2*>(q_row[i] + kk * 16 +
                                                 half * 8 + 2 * c);
          }
          q_frag[kk][2 * half + i] = PackBf16(v.x, v.y);
        }
      }
    }
  }

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0;
  float m[2] = {-INFINITY, -INFINITY};  // running max, log2 units
  float l[2] = {0, 0};  // this thread's share of the running sums
  const float scale_log2 = a.scale * kLog2e;

  const int32_t* blocks = a.kv_indices + a.kv_indptr[tiles[2 * blockIdx.x]];
  const int num_kv_tiles = (b.kv_end + kKeys - 1) / kKeys;
  auto stage_k = [&](int t) { return smem + (t % kStages) * 2 * Shape::kTileChunks; };
  LoadKvTile<D>(stage_k(0), stage_k(0) + Shape::kTileChunks, a, blocks,
                b.kv_head, 0, b.kv_end);
  CpAsyncCommit();

  // ldmatrix row addresses: lane i addresses row i % 8 of matrix i / 8.
  const int mat = lane >> 3, mat_row = lane & 7;
  for (int t = 0; t < num_kv_tiles; ++t) {
    if (t + 1 < num_kv_tiles) {
      uint4* next = stage_k(t + 1);
      LoadKvTile<D>(next, next + Shape::kTileChunks, a, blocks, b.kv_head,
                    (t + 1) * kKeys, b.kv_end);
    }
    CpAsyncCommit();  // possibly empty: keeps the wait count uniform
    CpAsyncWait<1>();
    __syncthreads();  // tile t is in shared memory for every warp
    const uint4* s_k = stage_k(t);
    const uint4* s_v = s_k + Shape::kTileChunks;
    const int kv0 = t * kKeys;

    // S = Q Kᵀ: 16 rows × 64 keys a warp. Matrix `mat` of an ldmatrix.x4
    // covers keys 16·np + 8·(mat >> 1) + 0..7, dims 16·kk + 8·(mat & 1)
    // + 0..7: b0 / b1 of n-tile 2np, then of n-tile 2np + 1.
    float s[kKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kKeys / 16; ++np) {
        const int key = np * 16 + (mat >> 1) * 8 + mat_row;
        uint32_t k_frag[4];
        LdMatrixX4(k_frag, s_k + key * Shape::kChunks +
                               Swizzle(key, kk * 2 + (mat & 1)));
        Mma(s[2 * np], q_frag[kk], k_frag[0], k_frag[1]);
        Mma(s[2 * np + 1], q_frag[kk], k_frag[2], k_frag[3]);
      }
    }

    // Scale (to log2 units), mask, and the tile's row maxima.
    const bool needs_mask = kv0 + kKeys - 1 > b.min_pos;  // uniform
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = kv0 + nt * 8 + 2 * c + (e & 1);
        const bool visible = !needs_mask || j <= row_pos[e >> 1];
        s[nt][e] = visible ? s[nt][e] * scale_log2 : -INFINITY;
      }
      tile_max[0] = fmaxf(tile_max[0], fmaxf(s[nt][0], s[nt][1]));
      tile_max[1] = fmaxf(tile_max[1], fmaxf(s[nt][2], s[nt][3]));
    }
    float corr[2], use_m[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      // The four threads of a quad hold the same two rows.
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 1));
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 2));
      const float new_m = fmaxf(m[i], tile_max[i]);
      // A row that has seen nothing yet keeps max -inf; use 0 so exp2()
      // gives 0 for its masked scores instead of NaN.
      use_m[i] = new_m == -INFINITY ? 0.0f : new_m;
      corr[i] = exp2f(m[i] - use_m[i]);
      m[i] = new_m;
      l[i] *= corr[i];
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = exp2f(s[nt][e] - use_m[e >> 1]);
      l[0] += s[nt][0] + s[nt][1];
      l[1] += s[nt][2] + s[nt][3];
    }

    // O += P V, 16 keys at a time. Matrix `mat` of an ldmatrix.x4.trans
    // covers keys 16·kc + 8·(mat & 1) + 0..7, dims 16·dp + 8·(mat >> 1) +
    // 0..7: b0 / b1 of dim tile 2dp, then of dim tile 2dp + 1.
#pragma unroll
    for (int kc = 0; kc < kKeys / 16; ++kc) {
      const uint32_t p[4] = {PackBf16(s[2 * kc][0], s[2 * kc][1]),
                             PackBf16(s[2 * kc][2], s[2 * kc][3]),
                             PackBf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                             PackBf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
      const int key = kc * 16 + (mat & 1) * 8 + mat_row;
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t v_frag[4];
        LdMatrixX4Trans(v_frag, s_v + key * Shape::kChunks +
                                    Swizzle(key, dp * 2 + (mat >> 1)));
        Mma(o[2 * dp], p, v_frag[0], v_frag[1]);
        Mma(o[2 * dp + 1], p, v_frag[2], v_frag[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before its reuse
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (row_token[i] < 0) continue;
    const int pair = b.first_pair + warp * 16 + g + 8 * i;
    const int head = b.kv_head * b.group + pair % b.group;
    const float inv = l[i] > 0 ? 1.0f / l[i] : 0.0f;
    float* out = a.out + int64_t{b.q_begin + b.q_first + row_token[i]} * a.out_stride +
                 head * D + 2 * c;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<float2*>(out + dt * 8) =
          make_float2(o[dt][2 * i] * inv, o[dt][2 * i + 1] * inv);
    }
  }
}

template <int D>
cudaError_t Launch(const AttentionArgs& args, const int32_t* tiles,
                   int num_tiles, cudaStream_t stream) {
  constexpr int kSmem = PrefillShape<D>::kSmemBytes;
  // Above 48 KiB a kernel must opt in; a per-device attribute, set once.
  static const cudaError_t opt_in =
      OptInSharedMemory(PrefillAttentionKernel<D>, kSmem);
  if (opt_in != cudaSuccess) return opt_in;
  const dim3 grid(num_tiles, args.num_q_heads);
  PrefillAttentionKernel<D><<<grid, kThreads, kSmem, stream>>>(args, tiles);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchPrefillAttention(const AttentionArgs& args,
                                   const int32_t* tiles, int num_tiles,
                                   cudaStream_t stream) {
  if (num_tiles <= 0) return cudaSuccess;
  if (args.num_kv_heads <= 0 || args.num_q_heads % args.num_kv_heads != 0 ||
      args.num_q_heads > 65535 || args.q_stride % 2 != 0 ||
      args.out_stride % 2 != 0 ||
      reinterpret_cast<uintptr_t>(args.q) % sizeof(float2) != 0 ||
      reinterpret_cast<uintptr_t>(args.out) % sizeof(float2) != 0) {
    return cudaErrorInvalidValue;  // Q and out are accessed as float2
  }
  switch (args.head_dim) {
    case 64:
      return Launch<64>(args, tiles, num_tiles, stream);
    case 128:
      return Launch<128>(args, tiles, num_tiles, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace weft::cuda
