// Tensor-core building blocks shared by the CUDA kernels that use mma.sync
// (prefill attention, the tiled GEMM): the m16n8k16 bf16 MMA, ldmatrix and
// cp.async. Device code only; include from .cu files.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with
// floating point type"), g = lane / 4, c = lane % 4:
//   A 16×16: a0a1 (g, 2c..2c+1)  a2a3 (g+8, 2c..)  a4a5 (g, 2c+8..)  a6a7 (g+8, 2c+8..)
//   B 16×8 : b0b1 (k 2c..2c+1, n g)  b2b3 (k 2c+8..2c+9, n g)
//   C 16×8 : c0c1 (g, 2c..2c+1)  c2c3 (g+8, 2c..2c+1)
#ifndef WEFT_KERNELS_CUDA_MMA_UTIL_CUH_
#define WEFT_KERNELS_CUDA_MMA_UTIL_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace weft::cuda {

// Lets `kernel` use `bytes` of dynamic shared memory (a request above
// 48 KiB must opt in). Host code; callers keep the result in a
// function-local static so the attribute is set once. On failure (a device
// with less shared memory per block than the tile needs, e.g. 99 KiB on
// sm_86/89) the runtime's last error is cleared again, so that the next,
// unrelated launch's cudaGetLastError() does not report this one. (That
// would also clear an earlier pending error, but every launcher returns
// cudaGetLastError() right after its launch, so none is pending here.)
template <typename Kernel>
inline cudaError_t OptInSharedMemory(Kernel* kernel, int bytes) {
  const cudaError_t err = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err != cudaSuccess) cudaGetLastError();
  return err;
}

// d += a · b, bf16 in, fp32 accumulate (A row-major 16×16, B col-major 16×8).
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4],
                                    uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8×8 bf16 matrices from shared memory: lanes 8i..8i+7 give the 16-byte
// row addresses of matrix i, whose fragment lands in r[i] (thread t holds
// row t / 4, elements 2(t % 4) and 2(t % 4) + 1).
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* row) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(SharedAddress(row)));
}

// 16 bytes global → shared, asynchronously, bypassing L1; when !valid the
// destination is zero-filled and `src` is not read (it must still be a
// valid address expression; pass the tensor's base).
__device__ __forceinline__ void CpAsync16(void* dst, const void* src,
                                          bool valid) {
  asm volatile(
      "cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
          SharedAddress(dst)),
      "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
// Waits until at most `kPending` committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// The GEMMs' tile order: thread blocks go in groups of kGroupRows row
// tiles (rows of x) that walk the column tiles (rows of w) together, so a
// weight tile is read from DRAM once per group and from L2 by the rest.
// Sets the first row and column of block `block`'s tile of y[n, m].
template <int kTileRows, int kTileCols>
__device__ __forceinline__ void GroupedTileOrigin(int block, int n, int m,
                                                  int* row0, int* col0) {
  constexpr int kGroupRows = 8;
  const int tiles_r = (n + kTileRows - 1) / kTileRows;
  const int tiles_c = (m + kTileCols - 1) / kTileCols;
  const int per_group = kGroupRows * tiles_c;
  const int first_r = block / per_group * kGroupRows;
  const int group_rows = min(tiles_r - first_r, kGroupRows);
  const int in_group = block % per_group;
  *row0 = (first_r + in_group % group_rows) * kTileRows;
  *col0 = in_group / group_rows * kTileCols;
}

}  // namespace weft::cuda

#endif  // WEFT_KERNELS_CUDA_MMA_UTIL_CUH_
