// weft's Hopper (sm_90a) bf16 GEMM: y[n, m] = x[n, k] · w[m, k]ᵀ, fp32 out,
// with TMA loads and warpgroup MMA (wgmma).
//
//   GemmWgmmaKernel<kBN>  one thread block of 3 warpgroups per 128 × kBN
//       tile of y (128 rows of x × kBN rows of w; kBN = 256 or 128), tiles
//       walked in groups of 8 row tiles (GroupedTileOrigin). Warpgroup 0 is
//       the producer: one thread issues, for each 64-wide K step, two TMA
//       copies (the x tile and the w tile, 128-byte swizzled, zero-filled
//       past the matrices' edges) into a kStages-deep ring of shared-memory
//       stages, each guarded by a "full" mbarrier (TMA transaction bytes)
//       and an "empty" one (released by the 256 consumer threads).
//       Warpgroups 1 and 2 are the consumers: rows 0-63 and 64-127 of the
//       tile, kBN/2 fp32 accumulators a thread. Per stage each issues four
//       wgmma.m64n<kBN>k16 (A and B read from shared memory through matrix
//       descriptors), commits them, waits for the previous stage's group
//       and releases that stage, so one group is always in flight.
//   Shared-memory operand layout: both tiles are K-major with 64 bf16 =
//   128 bytes a row, in the canonical SWIZZLE_128B layout TMA writes and
//   wgmma reads (8-row × 128-byte atoms, 16-byte chunk index XOR row % 8,
//   atoms 1024 bytes apart: the descriptor's stride byte offset). A K step
//   of 16 elements advances the descriptors' start address by 32 bytes.
//
// A wait on an mbarrier that does not complete in 2 s traps: a sticky
// error that fails the process's CUDA context (the server's warm-up fails
// and it must be restarted, e.g. with WEFT_NO_WGMMA=1) instead of a process
// that hangs forever. The kernel had not run on any GPU when written.
#include "kernels/cuda/gemm_wgmma.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <climits>
#include <cstdint>
#include <cstdlib>

#include "kernels/cuda/mma_util.cuh"
#include "kernels/cuda/wgmma_ops.cuh"

namespace weft::cuda {
namespace {

constexpr int kBM = 128;  // rows of x a tile
constexpr int kBK = 64;   // K a stage: 128 bytes of bf16, the swizzle span
constexpr int kThreads = 384;
[[maybe_unused]] constexpr int kConsumerThreads = 256;

template <int kBN>
struct WgmmaShape {
  static_assert(kBN == 128 || kBN == 256);
  static constexpr int kStages = kBN == 256 ? 4 : 6;
  static constexpr int kXBytes = kBM * kBK * 2;  // 16 KiB
  static constexpr int kWBytes = kBN * kBK * 2;
  static constexpr int kStageBytes = kXBytes + kWBytes;
  // + 1 KiB to align the ring to the 1024-byte swizzle atom.
  static constexpr int kSmemBytes = kStages * kStageBytes + 1024;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// Matrix descriptor of a K-major SWIZZLE_128B tile at shared address
// `addr` (PTX ISA, "Matrix Descriptor Format"): start address >> 4 in bits
// 0-13, leading byte offset (unused for swizzled K-major; 1) in 16-29,
// stride byte offset 1024 >> 4 in 32-45, base offset 0 (the ring is
// 1024-aligned), swizzle mode 1 (128 B) in bits 62-63.
__device__ __forceinline__ uint64_t SmemDescriptor(uint32_t addr) {
  return uint64_t{(addr & 0x3FFFF) >> 4} | (uint64_t{1} << 16) |
         (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

__device__ __forceinline__ void MbarInit(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar),
               "r"(count));
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile(
      "{\n .reg .b64 state;\n"
      " mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(bar)
      : "memory");
}
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, int bytes) {
  asm volatile(
      "{\n .reg .b64 state;\n"
      " mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
          bar),
      "r"(bytes)
      : "memory");
}
__device__ __forceinline__ uint64_t GlobalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %globaltimer;\n" : "=l"(t));
  return t;
}
// Waits for the phase of parity `parity` to complete; traps after 2 s.
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  uint64_t start = 0;
  for (uint32_t tries = 0;; ++tries) {
    uint32_t done;
    asm volatile(
        "{\n .reg .pred p;\n"
        " mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.b32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
    if (done) return;
    if (tries % 1024 == 1023) {
      const uint64_t now = GlobalTimerNs();
      if (start == 0) {
        start = now;
      } else if (now - start > 2'000'000'000ull) {
        __trap();
      }
    }
  }
}
__device__ __forceinline__ void TmaLoad2d(uint32_t dst, const CUtensorMap* map,
                                          int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile"
      ".mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void WgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void WgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending)
               : "memory");
}

// Tells the compiler the accumulators may change or be read here, so it
// neither reads them before a wgmma group has completed nor moves their
// uses across the fence/commit/wait instructions.
template <int N>
__device__ __forceinline__ void FenceOperands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

template <int kBN>
__device__ __forceinline__ void Wgmma(float (&d)[kBN / 2], uint64_t a,
                                      uint64_t b) {
  if constexpr (kBN == 256) {
    WgmmaM64N256K16(d, a, b);
  } else {
    WgmmaM64N128K16(d, a, b);
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

template <int kBN>
__global__ void __launch_bounds__(kThreads, 1)
    GemmWgmmaKernel(const __grid_constant__ CUtensorMap map_x,
                    const __grid_constant__ CUtensorMap map_w,
                    float* __restrict__ y, int n, int m, int k, int64_t ldy,
                    bool vec2) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = WgmmaShape<kBN>;
  extern __shared__ uint8_t smem_raw[];
  __shared__ __align__(8) uint64_t full_bar[S::kStages];
  __shared__ __align__(8) uint64_t empty_bar[S::kStages];
  const uint32_t ring = (SharedAddress(smem_raw) + 1023u) & ~1023u;
  const uint32_t full0 = SharedAddress(full_bar);
  const uint32_t empty0 = SharedAddress(empty_bar);

  int row0, col0;
  GroupedTileOrigin<kBM, kBN>(static_cast<int>(blockIdx.x), n, m, &row0, &col0);
  const int num_k_tiles = (k + kBK - 1) / kBK;

  if (threadIdx.x == 0) {
    for (int s = 0; s < S::kStages; ++s) {
      MbarInit(full0 + 8 * s, 1);
      MbarInit(empty0 + 8 * s, kConsumerThreads);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    if (threadIdx.x == 0) {
      for (int kt = 0; kt < num_k_tiles; ++kt) {
        const int s = kt % S::kStages;
        // Round r of a stage waits for the consumers' release of round
        // r - 1; round 0 passes (parity 1 of a fresh barrier is complete).
        MbarWait(empty0 + 8 * s, ((kt / S::kStages) & 1) ^ 1);
        const uint32_t stage = ring + s * S::kStageBytes;
        MbarArriveExpectTx(full0 + 8 * s, S::kStageBytes);
        TmaLoad2d(stage, &map_x, kt * kBK, row0, full0 + 8 * s);
        TmaLoad2d(stage + S::kXBytes, &map_w, kt * kBK, col0, full0 + 8 * s);
      }
    }
    return;
  }

  const int half = warpgroup - 1;  // rows 64·half .. 64·half + 63
  float d[kBN / 2];
#pragma unroll
  for (int i = 0; i < kBN / 2; ++i) d[i] = 0.0f;
  for (int kt = 0; kt < num_k_tiles; ++kt) {
    const int s = kt % S::kStages;
    MbarWait(full0 + 8 * s, (kt / S::kStages) & 1);
    // The wait is a C++ loop: reconverge the warp before the .sync.aligned
    // wgmma instructions, which need all 32 threads together.
    __syncwarp();
    const uint32_t a = ring + s * S::kStageBytes + half * 64 * 128;
    const uint32_t b = ring + s * S::kStageBytes + S::kXBytes;
    FenceOperands(d);
    WgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      Wgmma<kBN>(d, SmemDescriptor(a + kk * 32), SmemDescriptor(b + kk * 32));
    }
    WgmmaCommit();
    FenceOperands(d);
    WgmmaWait<1>();  // the previous stage's group is done with its stage
    if (kt > 0) MbarArrive(empty0 + 8 * ((kt - 1) % S::kStages));
  }
  WgmmaWait<0>();
  FenceOperands(d);

  const int lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
  const int row = row0 + half * 64 + warp * 16 + lane / 4;
#pragma unroll
  for (int j = 0; j < kBN / 8; ++j) {
    const int col = col0 + j * 8 + 2 * (lane % 4);
    if (col >= m) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row + 8 * h;
      if (r >= n) continue;
      float* p = y + int64_t{r} * ldy + col;
      if (vec2 && col + 1 < m) {
        *reinterpret_cast<float2*>(p) = make_float2(d[4 * j + 2 * h],
                                                    d[4 * j + 2 * h + 1]);
      } else {
        p[0] = d[4 * j + 2 * h];
        if (col + 1 < m) p[1] = d[4 * j + 2 * h + 1];
      }
    }
  }
#else
  // An image without sm_90a features (e.g. CMAKE_CUDA_ARCHITECTURES=90):
  // fail loudly rather than leave y unwritten. WgmmaAvailable() keeps the
  // kernel off builds without a 90a image (WEFT_CUDA_SM90A) and off devices
  // other than 9.0.
  if (threadIdx.x == 0) __trap();
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

#ifdef WEFT_CUDA_SM90A
constexpr bool kHaveSm90a = true;
#else
constexpr bool kHaveSm90a = false;
#endif

using EncodeTiled = PFN_cuTensorMapEncodeTiled_v12000;

// The driver's cuTensorMapEncodeTiled, looked up once through the runtime
// (no link against libcuda); null where the driver lacks it.
EncodeTiled Encoder() {
  static const EncodeTiled encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                         cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return EncodeTiled{nullptr};
    }
    return reinterpret_cast<EncodeTiled>(fn);
  }();
  return encode;
}

// A 2-D bf16 [rows, k] row-major map read in boxes of box_rows × 64,
// 128-byte swizzled, out-of-range elements read as zero.
bool EncodeOperand(CUtensorMap* map, const uint16_t* base, int64_t rows,
                   int64_t k, int box_rows) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k),
                              static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(k) * 2};
  const cuuint32_t box[2] = {kBK, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  return Encoder()(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2,
                   const_cast<uint16_t*>(base), dims, strides, box,
                   element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B,
                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int kBN>
cudaError_t Launch(const uint16_t* x, const uint16_t* w, float* y, int64_t n,
                   int64_t m, int64_t k, int64_t ldy, cudaStream_t stream) {
  using S = WgmmaShape<kBN>;
  auto* kernel = GemmWgmmaKernel<kBN>;
  static const cudaError_t attribute = OptInSharedMemory(kernel, S::kSmemBytes);
  if (attribute != cudaSuccess) return attribute;
  CUtensorMap map_x, map_w;
  if (!EncodeOperand(&map_x, x, n, k, kBM) ||
      !EncodeOperand(&map_w, w, m, k, kBN)) {
    return cudaErrorInvalidValue;
  }
  const int64_t tiles = ((n + kBM - 1) / kBM) * ((m + kBN - 1) / kBN);
  if (tiles > INT_MAX) return cudaErrorInvalidValue;
  const bool vec2 =
      ldy % 2 == 0 && reinterpret_cast<uintptr_t>(y) % sizeof(float2) == 0;
  kernel<<<static_cast<unsigned>(tiles), kThreads, S::kSmemBytes, stream>>>(
      map_x, map_w, y, static_cast<int>(n), static_cast<int>(m),
      static_cast<int>(k), ldy, vec2);
  return cudaGetLastError();
}

}  // namespace

bool WgmmaAvailable() {
  static const bool available = [] {
    // No sm_90a image in this build (kernels/cuda/CMakeLists.txt).
    if (!kHaveSm90a || std::getenv("WEFT_NO_WGMMA") != nullptr) return false;
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                               device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                               device) != cudaSuccess) {
      return false;
    }
    // The kernel exists only in the sm_90a image (90a code runs on 9.0
    // devices alone).
    return major == 9 && minor == 0 && Encoder() != nullptr;
  }();
  return available;
}

cudaError_t LaunchGemmWgmma(int tile_cols, const uint16_t* x,
                            const uint16_t* w, float* y, int64_t n, int64_t m,
                            int64_t k, int64_t ldy, cudaStream_t stream) {
  if (!WgmmaAvailable()) return cudaErrorNotSupported;
  // n, m ≤ INT_MAX − 256: a tile's last row/column index stays an int.
  if (n < 1 || m < 1 || k < 8 || k % 8 != 0 || n > INT_MAX - 256 ||
      m > INT_MAX - 256 ||
      k > INT_MAX || ldy < m || reinterpret_cast<uintptr_t>(x) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(w) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  switch (tile_cols) {
    case 256:
      return Launch<256>(x, w, y, n, m, k, ldy, stream);
    case 128:
      return Launch<128>(x, w, y, n, m, k, ldy, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace weft::cuda
