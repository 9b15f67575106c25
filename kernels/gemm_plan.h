// Which GEMM kernel the CUDA backend runs for each weight shape and number
// of activation rows, and how that choice is made. Pure host code (no CUDA),
// so the selection logic is unit-tested on any machine.
//
// A bf16 MatMul y[n, m] = x[n, k] · w[m, k]ᵀ can run on cuBLAS or on one of
// weft's own tiled tensor-core kernels (kernels/cuda/gemm_bf16.cu). At
// warm-up the backend times every candidate on each weight shape of the
// model at each row bucket (n rounded up to a power of two, from 1 to the
// planned maximum; a skinny kernel for decode sizes, the tiled ones above:
// GemmCandidates), checks each candidate's output
// against cuBLAS's, and records the fastest candidate that matched. A shape
// or bucket that was never tuned runs on cuBLAS, so a kernel that fails or
// computes wrong on some GPU costs speed, never correctness.
#ifndef WEFT_KERNELS_GEMM_PLAN_H_
#define WEFT_KERNELS_GEMM_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace weft {

enum class GemmKernelId : uint8_t {
  kCublas = 0,
  // weft's own kernels, named by the rows of x × rows of w one thread
  // block computes.
  kTiled128x128,
  kTiled128x64,
  kTiled64x128,
  kTiled64x64,
  kTiled128x256,
  kTiled256x128,
  // Decode-sized (n ≤ kSkinnyGemmMaxRows): weights streamed once
  // (kernels/cuda/skinny_gemm.cu).
  kSkinny,
  // Hopper only (sm_90a): TMA + wgmma, 128 rows of x × 256 or 128 rows of
  // w a block (kernels/cuda/gemm_wgmma.cu). Elsewhere they fail to launch
  // and the autotune passes them over.
  kWgmma128x256,
  kWgmma128x128,
};
inline constexpr GemmKernelId kOwnGemmKernels[] = {
    GemmKernelId::kTiled128x128,  GemmKernelId::kTiled128x64,
    GemmKernelId::kTiled64x128,   GemmKernelId::kTiled64x64,
    GemmKernelId::kTiled128x256,  GemmKernelId::kTiled256x128,
    GemmKernelId::kWgmma128x256, GemmKernelId::kWgmma128x128};
inline constexpr int kSkinnyGemmMaxRows = 16;

// The Hopper-only (sm_90a) kernels: they run only where
// cuda::WgmmaAvailable() says so.
constexpr bool IsWgmmaGemm(GemmKernelId id) {
  return id == GemmKernelId::kWgmma128x256 || id == GemmKernelId::kWgmma128x128;
}

// The kernels of ours tried against cuBLAS at a row bucket: the skinny
// kernel up to kSkinnyGemmMaxRows rows, the tiled ones above.
absl::Span<const GemmKernelId> GemmCandidates(int64_t bucket);

absl::string_view GemmKernelName(GemmKernelId id);

// How MatMul picks its kernel (CudaBackendConfig::gemm).
enum class GemmPolicy : uint8_t {
  kAutotune,  // time at warm-up, use the fastest that matches cuBLAS
  kCublas,    // always cuBLAS
  kOwn,       // the skinny kernel up to 16 rows, kTiled128x128 above (tests)
  // kTiled128x128 at every row count (W4 weights dequantized into it too):
  // fixed tiles and no split-K, so a row's sums do not depend on how many
  // rows the MatMul has (batch invariance, at a cost in decode speed).
  kInvariant,
};

// "autotune", "cublas", "own" or "invariant" (the --gemm flag);
// InvalidArgument otherwise.
absl::StatusOr<GemmPolicy> ParseGemmPolicy(absl::string_view name);

// The kernel a bf16 MatMul of n rows runs under `policy`: `tuned` is the
// autotune plan's choice for its shape and bucket (kAutotune), and
// `supports(id)` says whether our kernel `id` can run these operands; one
// that cannot gives way to cuBLAS. kInvariant takes kTiled128x128 at every
// n (a row's sums then do not depend on n); kOwn the skinny kernel up to
// kSkinnyGemmMaxRows rows, kTiled128x128 above.
GemmKernelId PickGemmKernel(GemmPolicy policy, int64_t n, GemmKernelId tuned,
                            absl::FunctionRef<bool(GemmKernelId)> supports);

// W4 MatMuls of up to this many rows run the W4A16 kernel in 16-row slices
// (reading the 4-bit weights once per slice); above, they dequantize to a
// bf16 scratch and run a bf16 GEMM.
inline constexpr int64_t kW4SliceMaxRows = 64;
// Whether a W4 MatMul of n rows takes the slices (never under kInvariant:
// the dequantize + GEMM path at every n keeps a row's sums independent of
// n).
bool W4UsesSlices(GemmPolicy policy, int64_t n);

// The row bucket of n ≥ 1: the smallest power of two ≥ n.
int64_t GemmRowBucket(int64_t n);
// Every bucket from 1 up to the bucket of max_rows (empty when
// max_rows < 1).
std::vector<int64_t> GemmTunedBuckets(int64_t max_rows);

// One candidate's outcome at one shape and bucket.
struct GemmTrial {
  GemmKernelId kernel = GemmKernelId::kCublas;
  absl::Status status;       // launch or run failure
  bool matches = false;      // output within tolerance of cuBLAS's
  double median_us = 0;      // median time of the timed runs
};

// The fastest trial that ran and matched; cuBLAS when none did. A kernel of
// ours must beat cuBLAS by more than `min_speedup` (e.g. 1.02 = 2%) to be
// chosen, so timing noise does not flip the choice between near-equals.
GemmKernelId ChooseGemmKernel(absl::Span<const GemmTrial> trials,
                              double min_speedup);

// The choices for one model: (m, k, row bucket) → kernel.
class GemmPlan {
 public:
  void Set(int64_t m, int64_t k, int64_t bucket, GemmKernelId kernel,
           double speedup_vs_cublas);
  // The kernel for y[n, m] = x[n, k] · w[m, k]ᵀ: the choice recorded for
  // n's bucket, cuBLAS when none was.
  GemmKernelId Lookup(int64_t m, int64_t k, int64_t n) const;
  bool empty() const { return choices_.empty(); }
  // One line per weight shape, for the log, e.g.
  //   "gemm 4096x4096: 1:skinny(1.10x) 2:cublas … 64:128x64(1.08x)".
  std::string Summary() const;

 private:
  struct Choice {
    GemmKernelId kernel;
    double speedup;
  };
  struct Key {
    int64_t m, k, bucket;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& key) {
      return H::combine(std::move(h), key.m, key.k, key.bucket);
    }
  };
  absl::flat_hash_map<Key, Choice> choices_;
};

}  // namespace weft

#endif  // WEFT_KERNELS_GEMM_PLAN_H_
