// weft's tiled bf16 GEMM: y[n, m] = x[n, k] · w[m, k]ᵀ, fp32 out.
//
//   GemmBf16Kernel<kBlockRows, kBlockCols, kWarpsR, kWarpsC, kStages>
//       one thread block per kBlockRows × kBlockCols tile of y (rows of x ×
//       rows of w); instantiated for 128×128, 128×64, 64×128, 64×64 (4
//       stages) and 128×256, 256×128 (3 stages, 64×64 warp tiles). Blocks run in groups of 8 row tiles that walk the weight
//       tiles together, so a weight tile is read from DRAM once per group
//       and from L2 by the rest. The K loop moves 32 elements per step
//       through a kStages-deep ring in shared memory filled by cp.async
//       (16-byte copies, zero-filled past the edges of x and w); each warp
//       computes a (kBlockRows / kWarpsR) × (kBlockCols / kWarpsC) sub-tile
//       from ldmatrix.x4 fragments with mma.sync m16n8k16 bf16 → fp32.
//       Both operands are K-contiguous, which is the row.col layout mma
//       wants, so no operand is transposed.
//   Shared-memory rows are 64 bytes (four 16-byte chunks); chunk c of row r
//   is stored at c ^ ((r >> 1) & 3), so the eight row addresses of one
//   ldmatrix matrix fall in eight different 16-byte bank groups.
//
//   CountMismatchesKernel  the autotuner's check of a result against cuBLAS.
#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "kernels/cuda/gemm_bf16.h"
#include "kernels/cuda/gemm_wgmma.h"
#include "kernels/cuda/mma_util.cuh"

namespace weft::cuda {
namespace {

constexpr int kTileK = 32;  // K elements per pipeline stage
constexpr int kChunksPerRow = kTileK / 8;

__device__ __forceinline__ int Swizzle(int row, int chunk) {
  return chunk ^ ((row >> 1) & 3);
}

template <int kBlockRows, int kBlockCols, int kWarpsR, int kWarpsC,
          int kStages>
struct TileShape {
  static constexpr int kThreads = kWarpsR * kWarpsC * 32;
  static constexpr int kWarpRows = kBlockRows / kWarpsR;
  static constexpr int kWarpCols = kBlockCols / kWarpsC;
  static constexpr int kFragsR = kWarpRows / 16;  // m16 fragments per warp
  static constexpr int kFragsC = kWarpCols / 8;   // n8 fragments per warp
  static constexpr int kChunksX = kBlockRows * kChunksPerRow;
  static constexpr int kChunksW = kBlockCols * kChunksPerRow;
  static constexpr int kStageChunks = kChunksX + kChunksW;
  static constexpr int kSmemBytes = kStages * kStageChunks * 16;
  static_assert(kWarpRows % 16 == 0 && kWarpCols % 16 == 0);
  static_assert(kChunksX % kThreads == 0 && kChunksW % kThreads == 0);
  static_assert(kStages >= 2);
};

// Loads rows [first, first + rows) × K chunk [k0, k0 + 32) of a [limit, k]
// matrix into a swizzled stage; rows ≥ limit and K ≥ k read as zero.
template <int kRows, int kThreads>
__device__ __forceinline__ void LoadStage(uint4* dst, const uint16_t* src,
                                          int first, int limit, int k,
                                          int k0) {
#pragma unroll
  for (int i = 0; i < kRows * kChunksPerRow / kThreads; ++i) {
    const int c = threadIdx.x + i * kThreads;
    const int r = c / kChunksPerRow, ch = c % kChunksPerRow;
    const int gk = k0 + ch * 8;
    const bool valid = first + r < limit && gk < k;
    const uint16_t* from = valid ? src + int64_t{first + r} * k + gk : src;
    CpAsync16(dst + r * kChunksPerRow + Swizzle(r, ch), from, valid);
  }
}

__device__ __forceinline__ void StorePair(float* y, int64_t ldy, int n, int m,
                                          bool vec2, int row, int col,
                                          float v0, float v1) {
  if (row >= n || col >= m) return;
  float* p = y + row * ldy + col;
  if (vec2 && col + 1 < m) {
    *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
    return;
  }
  p[0] = v0;
  if (col + 1 < m) p[1] = v1;
}

template <int kBlockRows, int kBlockCols, int kWarpsR, int kWarpsC,
          int kStages>
__global__ void __launch_bounds__(kWarpsR * kWarpsC * 32)
    GemmBf16Kernel(const uint16_t* __restrict__ x,
                   const uint16_t* __restrict__ w, float* __restrict__ y,
                   int n, int m, int k, int64_t ldy, bool vec2) {
  using T = TileShape<kBlockRows, kBlockCols, kWarpsR, kWarpsC, kStages>;
  extern __shared__ uint4 smem[];

  int row0, col0;  // block → tile, grouped (see the file comment)
  GroupedTileOrigin<kBlockRows, kBlockCols>(static_cast<int>(blockIdx.x), n,
                                            m, &row0, &col0);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warp_row0 = warp / kWarpsC * T::kWarpRows;
  const int warp_col0 = warp % kWarpsC * T::kWarpCols;
  const int num_k_tiles = (k + kTileK - 1) / kTileK;

  auto load = [&](int stage, int kt) {
    uint4* sx = smem + stage * T::kStageChunks;
    LoadStage<kBlockRows, T::kThreads>(sx, x, row0, n, k, kt * kTileK);
    LoadStage<kBlockCols, T::kThreads>(sx + T::kChunksX, w, col0, m, k,
                                       kt * kTileK);
  };

  float acc[T::kFragsR][T::kFragsC][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_k_tiles) load(s, s);
    CpAsyncCommit();  // empty groups keep the count uniform
  }
  for (int kt = 0; kt < num_k_tiles; ++kt) {
    // Tile kt has landed (at most kStages - 2 younger groups in flight), and
    // after the barrier every warp is done with the stage refilled below,
    // which held tile kt - 1.
    CpAsyncWait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < num_k_tiles) load(next % kStages, next);
    CpAsyncCommit();

    const uint4* sx = smem + (kt % kStages) * T::kStageChunks;
    const uint4* sw = sx + T::kChunksX;
#pragma unroll
    for (int ks = 0; ks < kTileK / 16; ++ks) {
      uint32_t a[T::kFragsR][4];
      uint32_t b[T::kFragsC][2];
#pragma unroll
      for (int fr = 0; fr < T::kFragsR; ++fr) {
        // Matrices: rows 0-7 / 8-15 (lanes 0-15) × k 0-7 / 8-15 (lanes 16-31).
        const int r = warp_row0 + fr * 16 + (lane & 15);
        const int ch = ks * 2 + (lane >> 4);
        LdMatrixX4(a[fr], sx + r * kChunksPerRow + Swizzle(r, ch));
      }
#pragma unroll
      for (int fc = 0; fc < T::kFragsC; fc += 2) {
        // Matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
        // (n 8-15, k 8-15) = b0, b1 of fragment fc, then of fc + 1.
        const int r = warp_col0 + fc * 8 + (lane & 7) + ((lane >> 4) << 3);
        const int ch = ks * 2 + ((lane >> 3) & 1);
        uint32_t t[4];
        LdMatrixX4(t, sw + r * kChunksPerRow + Swizzle(r, ch));
        b[fc][0] = t[0];
        b[fc][1] = t[1];
        b[fc + 1][0] = t[2];
        b[fc + 1][1] = t[3];
      }
#pragma unroll
      for (int fr = 0; fr < T::kFragsR; ++fr) {
#pragma unroll
        for (int fc = 0; fc < T::kFragsC; ++fc) {
          Mma(acc[fr][fc], a[fr], b[fc][0], b[fc][1]);
        }
      }
    }
  }
  CpAsyncWait<0>();

  const int g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int fr = 0; fr < T::kFragsR; ++fr) {
#pragma unroll
    for (int fc = 0; fc < T::kFragsC; ++fc) {
      const int row = row0 + warp_row0 + fr * 16 + g;
      const int col = col0 + warp_col0 + fc * 8 + 2 * c;
      StorePair(y, ldy, n, m, vec2, row, col, acc[fr][fc][0], acc[fr][fc][1]);
      StorePair(y, ldy, n, m, vec2, row + 8, col, acc[fr][fc][2],
                acc[fr][fc][3]);
    }
  }
}

template <int kBlockRows, int kBlockCols, int kWarpsR, int kWarpsC,
          int kStages>
cudaError_t Launch(const uint16_t* x, const uint16_t* w, float* y, int n,
                   int m, int k, int64_t ldy, cudaStream_t stream) {
  using T = TileShape<kBlockRows, kBlockCols, kWarpsR, kWarpsC, kStages>;
  auto* kernel =
      GemmBf16Kernel<kBlockRows, kBlockCols, kWarpsR, kWarpsC, kStages>;
  // Above 48 KiB of dynamic shared memory must be asked for, once per
  // kernel (thread-safe static initialization; the backend uses one
  // device), so no launch — timed by the autotune or captured in a graph —
  // pays for it.
  static const cudaError_t attribute = OptInSharedMemory(kernel, T::kSmemBytes);
  if (attribute != cudaSuccess) return attribute;
  const int64_t tiles = int64_t{(n + kBlockRows - 1) / kBlockRows} *
                        ((m + kBlockCols - 1) / kBlockCols);
  if (tiles > INT_MAX) return cudaErrorInvalidValue;
  const bool vec2 =
      ldy % 2 == 0 && reinterpret_cast<uintptr_t>(y) % sizeof(float2) == 0;
  kernel<<<static_cast<unsigned>(tiles), T::kThreads, T::kSmemBytes,
           stream>>>(x, w, y, n, m, k, ldy, vec2);
  return cudaGetLastError();
}

__global__ void CountMismatchesKernel(const float* a, const float* b,
                                      int64_t size, float atol, float rtol,
                                      unsigned long long* count) {
  unsigned long long bad = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < size;
       i += int64_t{gridDim.x} * blockDim.x) {
    if (!(fabsf(a[i] - b[i]) <= atol + rtol * fabsf(b[i]))) ++bad;
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    bad += __shfl_down_sync(0xffffffffu, bad, offset);
  }
  if (threadIdx.x % 32 == 0 && bad > 0) atomicAdd(count, bad);
}

}  // namespace

bool GemmBf16Supports(const void* x, const void* w, int64_t n, int64_t m,
                      int64_t k, int64_t ldy) {
  return n >= 1 && m >= 1 && k >= 8 && k % 8 == 0 && n <= INT_MAX &&
         m <= INT_MAX && k <= INT_MAX && ldy >= m &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

cudaError_t LaunchGemmBf16(GemmKernelId kernel, const uint16_t* x,
                           const uint16_t* w, float* y, int64_t n, int64_t m,
                           int64_t k, int64_t ldy, cudaStream_t stream) {
  if (!GemmBf16Supports(x, w, n, m, k, ldy)) return cudaErrorInvalidValue;
  const int rows = static_cast<int>(n), cols = static_cast<int>(m),
            depth = static_cast<int>(k);
  switch (kernel) {
    case GemmKernelId::kTiled128x128:
      return Launch<128, 128, 2, 4, 4>(x, w, y, rows, cols, depth, ldy,
                                       stream);
    case GemmKernelId::kTiled128x64:
      return Launch<128, 64, 2, 2, 4>(x, w, y, rows, cols, depth, ldy,
                                      stream);
    case GemmKernelId::kTiled64x128:
      return Launch<64, 128, 2, 2, 4>(x, w, y, rows, cols, depth, ldy,
                                      stream);
    case GemmKernelId::kTiled64x64:
      return Launch<64, 64, 2, 2, 4>(x, w, y, rows, cols, depth, ldy, stream);
    // Warp tiles of 64×64 (more mma per ldmatrix), 3 stages (72 KiB).
    case GemmKernelId::kTiled128x256:
      return Launch<128, 256, 2, 4, 3>(x, w, y, rows, cols, depth, ldy,
                                       stream);
    case GemmKernelId::kTiled256x128:
      return Launch<256, 128, 4, 2, 3>(x, w, y, rows, cols, depth, ldy,
                                       stream);
    case GemmKernelId::kWgmma128x256:
      return LaunchGemmWgmma(256, x, w, y, n, m, k, ldy, stream);
    case GemmKernelId::kWgmma128x128:
      return LaunchGemmWgmma(128, x, w, y, n, m, k, ldy, stream);
    case GemmKernelId::kCublas:
    case GemmKernelId::kSkinny:  // kernels/cuda/skinny_gemm.h
      break;
  }
  return cudaErrorInvalidValue;
}

cudaError_t LaunchCountMismatches(const float* a, const float* b,
                                  int64_t size, float atol, float rtol,
                                  unsigned long long* count,
                                  cudaStream_t stream) {
  if (size <= 0) return cudaSuccess;
  const int64_t blocks = (size + 255) / 256;
  CountMismatchesKernel<<<static_cast<unsigned>(blocks < 1024 ? blocks : 1024),
                          256, 0, stream>>>(a, b, size, atol, rtol, count);
  return cudaGetLastError();
}

}  // namespace weft::cuda
