// Launchers of the CUDA backend's kernels (internal to kernels/cuda). Each
// queues its kernel(s) on `stream` and returns cudaGetLastError(), so a bad
// launch configuration surfaces at the call; errors inside a kernel surface
// at the next synchronizing call. Shapes are checked by the caller
// (CudaBackend); the kernels still bounds-check every index they derive.
//
// Pointers are device pointers. "bf16" buffers hold __nv_bfloat16 (passed as
// uint16_t here so host-only code can include this header).
#ifndef WEFT_KERNELS_CUDA_CUDA_KERNELS_H_
#define WEFT_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace weft::cuda {

// dst[i] = bf16(src[i]) for num_elements elements of `dtype` (F32, F16,
// BF16, Q8_0, Q4_0, Q4_1; quantized: num_elements a multiple of 32, blocks
// as in kernels/dtype.h, dequantized in fp32 then rounded to nearest even).
cudaError_t LaunchToBf16(DType dtype, const void* src, int64_t num_elements,
                         uint16_t* dst, cudaStream_t stream);
// dst[i] = float(src[i]) for bf16 src.
cudaError_t LaunchBf16ToF32(const uint16_t* src, int64_t num_elements,
                            float* dst, cudaStream_t stream);

// dst[r, c] = bf16(W4 element (r, c)) for a W4 matrix [rows, cols]
// (kernels/dtype.h): the path of a W4 MatMul of more than 64 rows
// (kW4SliceMaxRows in cuda_gemm.cc: dequantize, then GEMM), and of every
// W4 MatMul under GemmPolicy::kInvariant.
cudaError_t LaunchW4ToBf16(const void* src, int64_t rows, int64_t cols,
                           uint16_t* dst, cudaStream_t stream);

// out[t, :] = table[token_ids[t], :]; table F32, BF16 or W4 [vocab, cols].
// An id outside [0, vocab) (which the host rejects first) yields a NaN row.
cudaError_t LaunchEmbedding(DType table_dtype, const void* table,
                            int64_t vocab, int64_t cols,
                            const int32_t* token_ids, int num_tokens,
                            float* out, cudaStream_t stream);

// With residual == nullptr: out = x / rms(x) * weight. Otherwise residual += x
// first and the norm is taken of the sum. Row-major [rows, cols].
cudaError_t LaunchRmsNorm(float* residual, const float* x,
                          const float* weight, int64_t rows, int64_t cols,
                          float eps, float* out, cudaStream_t stream);

// out = silu(gate) * up over n elements; out may alias gate or up.
cudaError_t LaunchSiluMul(const float* gate, const float* up, int64_t n,
                          float* out, cudaStream_t stream);

// out[i, :] = x[rows[i], :] (rows checked on the host).
cudaError_t LaunchGatherRows(const float* x, int64_t cols,
                             const int32_t* rows, int num_rows, float* out,
                             cudaStream_t stream);

// ids[r] = the lowest index of the largest value of row r of x [rows,
// cols], or -1 when the row holds a NaN (Backend::ArgMaxRowsToHost). One
// block a row.
cudaError_t LaunchArgMaxRows(const float* x, int64_t rows, int64_t cols,
                             int32_t* ids, cudaStream_t stream);

// y[r, c] += bias[c].
cudaError_t LaunchAddBias(float* y, const float* bias, int64_t rows,
                          int64_t cols, cudaStream_t stream);

struct RopeKvArgs {
  float* q = nullptr;  // [num_tokens, num_q_heads * head_dim], rotated in place
  float* k = nullptr;  // [num_tokens, num_kv_heads * head_dim], rotated in place
  const float* v = nullptr;  // like k
  int64_t q_stride = 0, k_stride = 0, v_stride = 0;  // elements per row
  uint16_t* k_cache = nullptr;  // bf16, one layer, paged_kv.h layout
  uint16_t* v_cache = nullptr;
  const int32_t* positions = nullptr;     // [num_tokens]
  const int64_t* slot_mapping = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;        // [rotary_dim / 2]
  int num_tokens = 0, num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  int rotary_dim = 0, block_size = 0, num_blocks = 0;
  bool neox = true;
};
cudaError_t LaunchRopeAndWriteKv(const RopeKvArgs& args, cudaStream_t stream);

// What both attention kernels read of a staged batch and the layer.
struct AttentionArgs {
  const float* q = nullptr;  // [num_tokens, num_q_heads * head_dim]
  float* out = nullptr;      // like q
  int64_t q_stride = 0, out_stride = 0;
  const uint16_t* k_cache = nullptr;  // bf16
  const uint16_t* v_cache = nullptr;
  const int32_t* query_indptr = nullptr;
  const int32_t* kv_indptr = nullptr;
  const int32_t* kv_indices = nullptr;
  const int32_t* kv_last_block_len = nullptr;
  int num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  int block_size = 0, num_blocks = 0;
  float scale = 0;
};

// Decode: one thread block per (KV head, query token, split); the query heads
// that share the KV head (up to kDecodeMaxGroup at a time) are attended
// together so each K/V row is read once for all of them. With
// split_chunk > 0, a token whose visible context is longer than split_chunk
// is cut into min(ceil(context / split_chunk), max_splits) equal parts whose
// partial results (normalized output and log-sum-exp) go to `partial_out`
// and `partial_lse` and are merged by a second kernel.
inline constexpr int kDecodeMaxGroup = 8;
struct DecodeArgs {
  const int32_t* items = nullptr;      // [num_items] token index in the batch
  const int32_t* token_seq = nullptr;  // [num_tokens] sequence of each token
  int num_items = 0;
  int split_chunk = 0;  // 0: no split
  int max_splits = 1;   // grid size over splits (>= 1)
  float* partial_out = nullptr;  // [num_items][num_q_heads][max_splits][head_dim]
  float* partial_lse = nullptr;  // [num_items][num_q_heads][max_splits]
};
// Splits a context of `visible` tokens is cut into.
__host__ __device__ inline int NumDecodeSplits(int visible, int split_chunk,
                                               int max_splits) {
  if (split_chunk <= 0 || visible <= split_chunk) return 1;
  const int splits = (visible + split_chunk - 1) / split_chunk;
  return splits < max_splits ? splits : max_splits;
}
cudaError_t LaunchDecodeAttention(const AttentionArgs& args,
                                  const DecodeArgs& decode,
                                  cudaStream_t stream);

// Prefill: tiles[i] = {seq, first query row of the tile within the
// sequence}, a tile being up to kPrefillTileRows query tokens. One thread
// block per (tile, query head index): the tile's (token, head) pairs of one
// GQA group are packed into blocks of 64 rows, so each block reads one KV
// head for all the group's heads; 4 warps × 16 rows; K/V tiles of 64
// context tokens double-buffered in shared memory by cp.async; S = QKᵀ and
// O += PV with ldmatrix + mma.sync m16n8k16 bf16 → fp32; online softmax in
// fp32 (prefill_attention.cu). Q and out are read and written as float2:
// even strides and 8-byte aligned rows (cudaErrorInvalidValue otherwise).
// A key in a block index outside [0, num_blocks) reads as zero K and V (it
// keeps a share of the softmax; decode skips such keys); the host rejects
// such tables before they get here.
inline constexpr int kPrefillTileRows = 64;
cudaError_t LaunchPrefillAttention(const AttentionArgs& args,
                                   const int32_t* tiles, int num_tiles,
                                   cudaStream_t stream);

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_CUDA_KERNELS_H_
