// The CUDA backend's small kernels, each the plain one-pass version:
//   ToBf16      weight conversion at upload (F32/F16/BF16/Q8_0/Q4_0/Q4_1),
//               one thread per element, grid-stride.
//   Bf16ToF32   CopyToHost of BF16 tensors.
//   Embedding   one block per token, threads over the row.
//   RmsNorm     one block per row (256 threads): optional residual add,
//               fp32 sum of squares reduced across the block, then scale.
//   SiluMul, AddBias  grid-stride, elementwise.
//   GatherRows  one block per gathered row.
//   ArgMaxRows  one block per logits row (greedy sampling's argmax).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/w4_device.cuh"

namespace weft::cuda {
namespace {

constexpr int kThreads = 256;

int GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  // Grid-stride loops cover the rest; 65535 × 256 elements per pass.
  return static_cast<int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

__device__ float HalfBits(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}

__device__ uint16_t ToBf16Bits(float x) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

__device__ float Bf16Bits(uint16_t bits) {
  return __bfloat162float(__ushort_as_bfloat16(bits));
}

// Element e of a row-major array of `dtype` (quantized: blocks of 32 laid
// end to end, which rows of a multiple of 32 elements are).
template <DType kDType>
__device__ float LoadElement(const uint8_t* src, int64_t e) {
  if constexpr (kDType == DType::kF32) {
    return reinterpret_cast<const float*>(src)[e];
  } else if constexpr (kDType == DType::kF16) {
    return HalfBits(reinterpret_cast<const uint16_t*>(src)[e]);
  } else if constexpr (kDType == DType::kBF16) {
    return Bf16Bits(reinterpret_cast<const uint16_t*>(src)[e]);
  } else {
    const int64_t block = e / kQuantBlockSize;
    const int j = static_cast<int>(e % kQuantBlockSize);
    if constexpr (kDType == DType::kQ8_0) {
      const uint8_t* b = src + block * sizeof(BlockQ8_0);
      // Byte loads: blocks are 34 bytes, so the scale is only 2-aligned.
      const uint16_t d = static_cast<uint16_t>(b[0] | (b[1] << 8));
      return HalfBits(d) * static_cast<float>(static_cast<int8_t>(b[2 + j]));
    } else if constexpr (kDType == DType::kQ4_0) {
      const uint8_t* b = src + block * sizeof(BlockQ4_0);
      const uint16_t d = static_cast<uint16_t>(b[0] | (b[1] << 8));
      const uint8_t byte = b[2 + (j & 15)];
      const int nibble = j < 16 ? (byte & 15) : (byte >> 4);
      return HalfBits(d) * static_cast<float>(nibble - 8);
    } else {  // Q4_1
      const uint8_t* b = src + block * sizeof(BlockQ4_1);
      const uint16_t d = static_cast<uint16_t>(b[0] | (b[1] << 8));
      const uint16_t m = static_cast<uint16_t>(b[2] | (b[3] << 8));
      const uint8_t byte = b[4 + (j & 15)];
      const int nibble = j < 16 ? (byte & 15) : (byte >> 4);
      // Rounded after the multiply and after the add, as the CPU reference
      // (built without FMA contraction) does: bit-identical weights.
      return __fadd_rn(__fmul_rn(HalfBits(d), static_cast<float>(nibble)),
                       HalfBits(m));
    }
  }
}

template <DType kDType>
__global__ void ToBf16Kernel(const uint8_t* src, int64_t n, uint16_t* dst) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    dst[e] = ToBf16Bits(LoadElement<kDType>(src, e));
  }
}

__global__ void Bf16ToF32Kernel(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    dst[e] = Bf16Bits(src[e]);
  }
}

__global__ void EmbeddingKernel(const uint8_t* table, DType dtype,
                                int64_t vocab, int64_t cols,
                                const int32_t* token_ids, float* out) {
  const int t = blockIdx.x;
  const int32_t id = token_ids[t];
  float* row = out + t * cols;
  const bool valid = id >= 0 && id < vocab;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    if (!valid) {
      row[c] = __int_as_float(0x7fc00000);  // NaN
    } else if (dtype == DType::kBF16) {
      row[c] = LoadElement<DType::kBF16>(table, id * cols + c);
    } else if (dtype == DType::kW4) {
      row[c] = W4Element(table + id * W4RowBytes(cols), cols, c);
    } else {
      row[c] = LoadElement<DType::kF32>(table, id * cols + c);
    }
  }
}

__global__ void W4ToBf16Kernel(const uint8_t* src, int64_t rows,
                               int64_t cols, uint16_t* dst) {
  const int64_t n = rows * cols;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = e / cols;
    dst[e] = ToBf16Bits(W4Element(src + r * W4RowBytes(cols), cols, e % cols));
  }
}

__device__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1024);
// every thread gets it. Called once per kernel.
__device__ float BlockSum(float v) {
  __shared__ float warp_sums[32];
  __shared__ float total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int num_warps = blockDim.x >> 5;
    float w = lane < num_warps ? warp_sums[lane] : 0.0f;
    w = WarpSum(w);
    if (lane == 0) total = w;
  }
  __syncthreads();
  return total;
}

__global__ void RmsNormKernel(float* residual, const float* x,
                              const float* weight, int64_t cols, float eps,
                              float* out) {
  const int64_t row = blockIdx.x;
  const float* x_row = x + row * cols;
  float* r_row = residual != nullptr ? residual + row * cols : nullptr;
  float sum_squares = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = x_row[c];
    if (r_row != nullptr) {
      v += r_row[c];
      r_row[c] = v;
    }
    sum_squares += v * v;
  }
  sum_squares = BlockSum(sum_squares);
  const float inv_rms =
      1.0f / sqrtf(sum_squares / static_cast<float>(cols) + eps);
  const float* src = r_row != nullptr ? r_row : x_row;
  float* o_row = out + row * cols;
  // Each thread rereads only the elements it wrote above.
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    o_row[c] = src[c] * inv_rms * weight[c];
  }
}

__global__ void SiluMulKernel(const float* gate, const float* up, int64_t n,
                              float* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void GatherRowsKernel(const float* x, int64_t cols,
                                 const int32_t* rows, float* out) {
  const int i = blockIdx.x;
  const float* src = x + int64_t{rows[i]} * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    out[i * cols + c] = src[c];
  }
}

__global__ void AddBiasKernel(float* y, const float* bias, int64_t rows,
                              int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] += bias[i % cols];
  }
}

// ArgMaxRowsKernel: one block a row. Each thread keeps the first index of
// its largest value over its ascending slice (4 consecutive values at a
// time when the rows are 16-byte aligned), then the block reduces (value,
// index) pairs: larger value first, lower index on ties; `cols` stands for
// "nothing seen" (so an all -inf row gives index 0). Any NaN gives -1.
constexpr int kArgMaxThreads = 512;

struct Best {
  float value;
  int index;
};

__device__ __forceinline__ void Consider(Best* b, float v, int i, int none) {
  if (b->index == none || v > b->value || (v == b->value && i < b->index)) {
    *b = Best{v, i};
  }
}

__global__ void __launch_bounds__(kArgMaxThreads)
    ArgMaxRowsKernel(const float* x, int cols, bool vec4, int32_t* ids) {
  __shared__ Best s_best[kArgMaxThreads / 32];
  __shared__ int s_nan;
  const float* row = x + int64_t{blockIdx.x} * cols;
  Best best{0.0f, cols};
  bool nan = false;
  if (vec4) {
    for (int c = 4 * threadIdx.x; c < cols; c += 4 * kArgMaxThreads) {
      const float4 v = *reinterpret_cast<const float4*>(row + c);
      const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        nan |= isnan(e[j]);
        Consider(&best, e[j], c + j, cols);
      }
    }
  } else {
    for (int c = threadIdx.x; c < cols; c += kArgMaxThreads) {
      nan |= isnan(row[c]);
      Consider(&best, row[c], c, cols);
    }
  }
  if (threadIdx.x == 0) s_nan = 0;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float v = __shfl_down_sync(0xffffffffu, best.value, offset);
    const int i = __shfl_down_sync(0xffffffffu, best.index, offset);
    if (i != cols) Consider(&best, v, i, cols);
  }
  const bool any_nan = __any_sync(0xffffffffu, nan);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // s_nan cleared
  if (lane == 0) {
    s_best[warp] = best;
    if (any_nan) s_nan = 1;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    Best all{0.0f, cols};
    for (int w = 0; w < kArgMaxThreads / 32; ++w) {
      if (s_best[w].index != cols) Consider(&all, s_best[w].value, s_best[w].index, cols);
    }
    ids[blockIdx.x] = s_nan ? -1 : all.index;
  }
}

}  // namespace

cudaError_t LaunchArgMaxRows(const float* x, int64_t rows, int64_t cols,
                             int32_t* ids, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (cols < 1 || cols >= INT_MAX || rows > INT_MAX) return cudaErrorInvalidValue;
  const bool vec4 =
      cols % 4 == 0 && reinterpret_cast<uintptr_t>(x) % sizeof(float4) == 0;
  ArgMaxRowsKernel<<<static_cast<unsigned>(rows), kArgMaxThreads, 0, stream>>>(
      x, static_cast<int>(cols), vec4, ids);
  return cudaGetLastError();
}

cudaError_t LaunchToBf16(DType dtype, const void* src, int64_t num_elements,
                         uint16_t* dst, cudaStream_t stream) {
  if (num_elements <= 0) return cudaSuccess;
  const auto* bytes = static_cast<const uint8_t*>(src);
  const int grid = GridFor(num_elements);
  switch (dtype) {
    case DType::kF32:
      ToBf16Kernel<DType::kF32><<<grid, kThreads, 0, stream>>>(bytes, num_elements, dst);
      break;
    case DType::kF16:
      ToBf16Kernel<DType::kF16><<<grid, kThreads, 0, stream>>>(bytes, num_elements, dst);
      break;
    case DType::kBF16:
      ToBf16Kernel<DType::kBF16><<<grid, kThreads, 0, stream>>>(bytes, num_elements, dst);
      break;
    case DType::kQ8_0:
      ToBf16Kernel<DType::kQ8_0><<<grid, kThreads, 0, stream>>>(bytes, num_elements, dst);
      break;
    case DType::kQ4_0:
      ToBf16Kernel<DType::kQ4_0><<<grid, kThreads, 0, stream>>>(bytes, num_elements, dst);
      break;
    case DType::kQ4_1:
      ToBf16Kernel<DType::kQ4_1><<<grid, kThreads, 0, stream>>>(bytes, num_elements, dst);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t LaunchBf16ToF32(const uint16_t* src, int64_t num_elements,
                            float* dst, cudaStream_t stream) {
  if (num_elements <= 0) return cudaSuccess;
  Bf16ToF32Kernel<<<GridFor(num_elements), kThreads, 0, stream>>>(
      src, num_elements, dst);
  return cudaGetLastError();
}

cudaError_t LaunchEmbedding(DType table_dtype, const void* table,
                            int64_t vocab, int64_t cols,
                            const int32_t* token_ids, int num_tokens,
                            float* out, cudaStream_t stream) {
  if (table_dtype != DType::kF32 && table_dtype != DType::kBF16 &&
      table_dtype != DType::kW4) {
    return cudaErrorInvalidValue;
  }
  if (num_tokens <= 0) return cudaSuccess;
  EmbeddingKernel<<<num_tokens, kThreads, 0, stream>>>(
      static_cast<const uint8_t*>(table), table_dtype, vocab, cols, token_ids,
      out);
  return cudaGetLastError();
}

cudaError_t LaunchW4ToBf16(const void* src, int64_t rows, int64_t cols,
                           uint16_t* dst, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (cols % 32 != 0) return cudaErrorInvalidValue;
  W4ToBf16Kernel<<<GridFor(rows * cols), kThreads, 0, stream>>>(
      static_cast<const uint8_t*>(src), rows, cols, dst);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(float* residual, const float* x,
                          const float* weight, int64_t rows, int64_t cols,
                          float eps, float* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      residual, x, weight, cols, eps, out);
  return cudaGetLastError();
}

cudaError_t LaunchSiluMul(const float* gate, const float* up, int64_t n,
                          float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  SiluMulKernel<<<GridFor(n), kThreads, 0, stream>>>(gate, up, n, out);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const float* x, int64_t cols,
                             const int32_t* rows, int num_rows, float* out,
                             cudaStream_t stream) {
  if (num_rows <= 0) return cudaSuccess;
  GatherRowsKernel<<<num_rows, kThreads, 0, stream>>>(x, cols, rows, out);
  return cudaGetLastError();
}

cudaError_t LaunchAddBias(float* y, const float* bias, int64_t rows,
                          int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  AddBiasKernel<<<GridFor(rows * cols), kThreads, 0, stream>>>(y, bias, rows,
                                                               cols);
  return cudaGetLastError();
}

}  // namespace weft::cuda
