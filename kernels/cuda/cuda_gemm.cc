// CudaBackend's GEMM: which kernel a MatMul runs, and the warm-up autotune
// that decides it (kernels/gemm_plan.h).
//
// Autotune, per weight shape [m, k] and row bucket n (1, 2, 4, … up to the
// planned max_num_tokens; candidates: the skinny kernel up to 16 rows, the
// tiled ones above; a W4 weight is tuned above 64 rows only, on its bf16
// dequantization, which is what its MatMuls multiply there): x is n rows of random bf16 in [-1, 1], w the
// model's own weight. cuBLAS runs first and is the reference; each of our
// kernels then runs into a NaN-filled output that must match cuBLAS's
// within |a − b| ≤ 1e-3 + 1e-3·|b| everywhere (both accumulate in fp32, so
// only the summation order differs; a layout bug is off by O(1)). Each
// candidate is timed as the median of 5 runs of 10 back-to-back launches
// (CUDA events). A bucket whose two outputs would not fit in
// kMaxTuneOutputBytes each is skipped (cuBLAS): in practice the lm_head at
// very large token counts, which the model never runs (it takes logits of
// the sampled rows only).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_matmul.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/gemm_bf16.h"
#include "kernels/cuda/gemm_wgmma.h"
#include "kernels/cuda/skinny_gemm.h"
#include "kernels/w4_pack.h"

namespace weft {
namespace {

constexpr int kTimedRuns = 5;
constexpr int kLaunchesPerRun = 10;
constexpr float kMatchAtol = 1e-3f;
constexpr float kMatchRtol = 1e-3f;
constexpr int64_t kMaxTuneOutputBytes = int64_t{512} << 20;

cudaStream_t AsStream(void* s) { return static_cast<cudaStream_t>(s); }

// Device memory and events for the length of one WarmUp.
struct TuneScratch {
  float* y_ref = nullptr;
  float* y = nullptr;
  unsigned long long* mismatches = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  ~TuneScratch() {
    if (y_ref != nullptr) cudaFree(y_ref);
    if (y != nullptr) cudaFree(y);
    if (mismatches != nullptr) cudaFree(mismatches);
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
  }
};

}  // namespace

absl::Status CudaBackend::PlanMatMulX(int64_t cols) {
  const int64_t x_elements = int64_t{config_.max_num_tokens} * cols;
  if (x_elements <= matmul_x_elements_) return absl::OkStatus();
  WEFT_RETURN_IF_ERROR_STATUS(CheckNoGraphs("a wider weight"));
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(AsStream(stream_)));
  if (matmul_x_ != nullptr) WEFT_CUDA_RETURN_IF_ERROR(cudaFree(matmul_x_));
  matmul_x_ = nullptr;
  matmul_x_elements_ = 0;
  WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&matmul_x_, x_elements * 2));
  matmul_x_elements_ = x_elements;
  return absl::OkStatus();
}

absl::StatusOr<Tensor> CudaBackend::UploadW4(DType dtype, int64_t rows,
                                             int64_t cols, const void* host) {
  cudaStream_t stream = AsStream(stream_);
  const int64_t bytes = rows * RowBytes(DType::kW4, cols);
  std::vector<uint8_t> packed(bytes);
  // GGUF 4-bit blocks are repacked without loss; float matrices are
  // quantized (round to nearest, per 32-element group).
  WEFT_RETURN_IF_ERROR_STATUS(
      CanRepackToW4(dtype)
          ? RepackToW4(dtype, host, rows, cols, packed.data())
          : QuantizeToW4(dtype, host, rows, cols, packed.data()));
  auto dst = DeviceAlloc(bytes);
  if (!dst.ok()) return dst.status();
  WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(*dst, packed.data(), bytes,
                                            cudaMemcpyHostToDevice, stream));
  // MatMuls of more than kW4SliceMaxRows rows dequantize into this first.
  if (rows * cols > w4_scratch_elements_) {
    WEFT_RETURN_IF_ERROR_STATUS(CheckNoGraphs("a larger W4 weight"));
    WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    if (w4_scratch_ != nullptr) WEFT_CUDA_RETURN_IF_ERROR(cudaFree(w4_scratch_));
    w4_scratch_ = nullptr;
    w4_scratch_elements_ = 0;
    WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&w4_scratch_, rows * cols * 2));
    w4_scratch_elements_ = rows * cols;
  }
  WEFT_RETURN_IF_ERROR_STATUS(PlanMatMulX(cols));
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  RegisterGemmShape(rows, cols, *dst, /*w4=*/true);
  return Tensor{DType::kW4, rows, cols, *dst};
}

void CudaBackend::RegisterGemmShape(int64_t m, int64_t k, const void* weight,
                                    bool w4) {
  for (const GemmShape& s : gemm_shapes_) {
    if (s.m == m && s.k == k && s.w4 == w4) return;
  }
  gemm_shapes_.push_back(GemmShape{m, k, weight, w4});
}

absl::Status CudaBackend::MatMulW4(const void* x_bf16, const Tensor& w,
                                   int64_t n, Tensor* y) {
  cudaStream_t stream = AsStream(stream_);
  const auto* x = static_cast<const uint16_t*>(x_bf16);
  auto* out = static_cast<float*>(y->data);
  if (W4UsesSlices(config_.gemm, n) &&
      cuda::SkinnyW4Supports(x, w.data, 1, w.cols)) {
    // 16 rows of x at a time: each slice reads the 4-bit weights again,
    // which up to kW4SliceMaxRows rows moves fewer bytes than dequantizing
    // to bf16 (write 2 + read 2 bytes a weight) for the GEMM below.
    for (int64_t first = 0; first < n; first += kSkinnyGemmMaxRows) {
      const int64_t rows = std::min<int64_t>(kSkinnyGemmMaxRows, n - first);
      WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchSkinnyW4(
          x + first * w.cols, static_cast<const uint8_t*>(w.data),
          out + first * y->cols, rows, w.rows, w.cols, y->cols, stream));
    }
    return absl::OkStatus();
  }
  if (w.num_elements() > w4_scratch_elements_) {
    return absl::InternalError("MatMul: W4 weight larger than its scratch");
  }
  auto* w_bf16 = static_cast<uint16_t*>(w4_scratch_);
  WEFT_CUDA_RETURN_IF_ERROR(
      cuda::LaunchW4ToBf16(w.data, w.rows, w.cols, w_bf16, stream));
  return GemmBf16With(GemmKernelFor(x, w_bf16, n, w.rows, w.cols, y->cols), x,
                      w_bf16, out, n, w.rows, w.cols, y->cols);
}

absl::Status CudaBackend::GemmBf16(const void* x_bf16, const void* w_bf16,
                                   float* y, int64_t n, int64_t m, int64_t k) {
  return GemmBf16With(GemmKernelId::kCublas, x_bf16, w_bf16, y, n, m, k, m);
}

absl::Status CudaBackend::GemmBf16With(GemmKernelId kernel, const void* x_bf16,
                                       const void* w_bf16, float* y, int64_t n,
                                       int64_t m, int64_t k, int64_t ldy) {
  const auto* x = static_cast<const uint16_t*>(x_bf16);
  const auto* w = static_cast<const uint16_t*>(w_bf16);
  if (kernel == GemmKernelId::kCublas) {
    return cuda::GemmBf16(static_cast<cublasHandle_t>(cublas_), x, w, y, n, m,
                          k, ldy);
  }
  if (kernel == GemmKernelId::kSkinny) {
    if (!cuda::SkinnyBf16Supports(x, w, n, k) || m < 1 || ldy < m) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the skinny GEMM cannot run n=", n, " m=", m, " k=", k,
          " (n ≤ 16, k a multiple of 32, operands 16-byte aligned)"));
    }
    WEFT_CUDA_RETURN_IF_ERROR(
        cuda::LaunchSkinnyBf16(x, w, y, n, m, k, ldy, AsStream(stream_)));
    return absl::OkStatus();
  }
  if (!cuda::GemmBf16Supports(x, w, n, m, k, ldy)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GEMM kernel ", GemmKernelName(kernel), " cannot run n=", n, " m=", m,
        " k=", k, " (k must be a multiple of 8, operands 16-byte aligned)"));
  }
  WEFT_CUDA_RETURN_IF_ERROR(
      cuda::LaunchGemmBf16(kernel, x, w, y, n, m, k, ldy, AsStream(stream_)));
  return absl::OkStatus();
}

namespace {

// Whether our kernel `id` can run these operands.
bool OwnKernelSupports(GemmKernelId id, const void* x, const void* w,
                       int64_t n, int64_t m, int64_t k, int64_t ldy) {
  if (id == GemmKernelId::kSkinny) {
    return cuda::SkinnyBf16Supports(x, w, n, k) && m >= 1 && ldy >= m;
  }
  if (IsWgmmaGemm(id) && !cuda::WgmmaAvailable()) return false;
  return cuda::GemmBf16Supports(x, w, n, m, k, ldy);
}

}  // namespace

GemmKernelId CudaBackend::GemmKernelFor(const void* x, const void* w,
                                        int64_t n, int64_t m, int64_t k,
                                        int64_t ldy) const {
  return PickGemmKernel(
      config_.gemm, n,
      config_.gemm == GemmPolicy::kAutotune ? gemm_plan_.Lookup(m, k, n)
                                            : GemmKernelId::kCublas,
      [&](GemmKernelId id) { return OwnKernelSupports(id, x, w, n, m, k, ldy); });
}

absl::StatusOr<GemmKernelId> CudaBackend::TuneGemm(
    const void* w, int64_t m, int64_t k, int64_t n, int64_t bucket,
    float* y_ref, float* y, void* scratch, double* speedup) {
  auto& tune = *static_cast<TuneScratch*>(scratch);
  cudaStream_t stream = AsStream(stream_);
  const void* x = matmul_x_;
  WEFT_RETURN_IF_ERROR_STATUS(
      GemmBf16With(GemmKernelId::kCublas, x, w, y_ref, n, m, k, m));

  auto time_us = [&](GemmKernelId id, float* out) -> absl::StatusOr<double> {
    std::vector<double> runs;
    for (int r = 0; r < kTimedRuns; ++r) {
      WEFT_CUDA_RETURN_IF_ERROR(cudaEventRecord(tune.start, stream));
      for (int l = 0; l < kLaunchesPerRun; ++l) {
        WEFT_RETURN_IF_ERROR_STATUS(GemmBf16With(id, x, w, out, n, m, k, m));
      }
      WEFT_CUDA_RETURN_IF_ERROR(cudaEventRecord(tune.stop, stream));
      WEFT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(tune.stop));
      float ms = 0;
      WEFT_CUDA_RETURN_IF_ERROR(
          cudaEventElapsedTime(&ms, tune.start, tune.stop));
      runs.push_back(1e3 * ms / kLaunchesPerRun);
    }
    std::nth_element(runs.begin(), runs.begin() + kTimedRuns / 2, runs.end());
    return runs[kTimedRuns / 2];
  };

  std::vector<GemmTrial> trials;
  {
    GemmTrial cublas;
    cublas.kernel = GemmKernelId::kCublas;
    auto us = time_us(GemmKernelId::kCublas, y);
    if (!us.ok()) return us.status();  // the reference itself failed
    cublas.median_us = *us;
    cublas.matches = true;
    trials.push_back(cublas);
  }
  for (GemmKernelId id : GemmCandidates(bucket)) {
    GemmTrial trial;
    trial.kernel = id;
    if (!OwnKernelSupports(id, x, w, n, m, k, m)) {
      trial.status = absl::UnimplementedError("shape not supported");
      trials.push_back(trial);
      continue;
    }
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(y, 0xff, n * m * 4, stream));
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(tune.mismatches, 0, 8, stream));
    trial.status = GemmBf16With(id, x, w, y, n, m, k, m);
    if (trial.status.ok()) {
      WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchCountMismatches(
          y, y_ref, n * m, kMatchAtol, kMatchRtol, tune.mismatches, stream));
      unsigned long long bad = 0;
      WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
          &bad, tune.mismatches, 8, cudaMemcpyDeviceToHost, stream));
      // A fault inside our kernel is sticky: it fails WarmUp here.
      WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
      trial.matches = bad == 0;
      if (trial.matches) {
        auto us = time_us(id, y);
        if (!us.ok()) return us.status();
        trial.median_us = *us;
      }
    }
    trials.push_back(trial);
  }
  const GemmKernelId best = ChooseGemmKernel(trials, config_.gemm_min_speedup);
  *speedup = 1.0;
  for (const GemmTrial& t : trials) {
    if (t.kernel == best && t.median_us > 0) {
      *speedup = trials[0].median_us / t.median_us;
    }
  }
  return best;
}

absl::Status CudaBackend::WarmUp(std::string* report) {
  if (config_.gemm != GemmPolicy::kAutotune || gemm_shapes_.empty()) {
    return absl::OkStatus();
  }
  const std::vector<int64_t> buckets = GemmTunedBuckets(config_.max_num_tokens);
  if (buckets.empty()) return absl::OkStatus();
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  cudaStream_t stream = AsStream(stream_);

  int64_t max_m = 0, max_k = 0;
  for (const GemmShape& s : gemm_shapes_) {
    max_m = std::max(max_m, s.m);
    max_k = std::max(max_k, s.k);
  }
  const int64_t max_rows =
      std::min<int64_t>(buckets.back(), config_.max_num_tokens);
  // x: random bf16 in the MatMul scratch, which holds max_num_tokens rows
  // of the widest weight row.
  const int64_t x_elements = std::min(max_rows * max_k, matmul_x_elements_);
  std::vector<uint16_t> x_host(x_elements);
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (uint16_t& v : x_host) v = FloatToBf16(uniform(rng));
  WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(matmul_x_, x_host.data(),
                                            x_elements * 2,
                                            cudaMemcpyHostToDevice, stream));

  TuneScratch tune;
  const int64_t y_bytes =
      std::min(max_rows * max_m * 4, kMaxTuneOutputBytes);
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaMalloc(reinterpret_cast<void**>(&tune.y_ref), y_bytes));
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaMalloc(reinterpret_cast<void**>(&tune.y), y_bytes));
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaMalloc(reinterpret_cast<void**>(&tune.mismatches), 8));
  WEFT_CUDA_RETURN_IF_ERROR(cudaEventCreate(&tune.start));
  WEFT_CUDA_RETURN_IF_ERROR(cudaEventCreate(&tune.stop));

  for (const GemmShape& shape : gemm_shapes_) {
    const void* weight = shape.weight;
    if (shape.w4) {
      // Above kW4SliceMaxRows rows a W4 MatMul dequantizes into the
      // scratch and runs a bf16 GEMM there: tune on that (up to it, the W4
      // kernel always runs).
      WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchW4ToBf16(
          shape.weight, shape.m, shape.k, static_cast<uint16_t*>(w4_scratch_),
          stream));
      weight = w4_scratch_;
    }
    for (int64_t bucket : buckets) {
      if (shape.w4 && bucket <= kW4SliceMaxRows) continue;
      const int64_t n = std::min<int64_t>(bucket, config_.max_num_tokens);
      if (n * shape.m * 4 > y_bytes || n * shape.k > x_elements) continue;
      double speedup = 1.0;
      auto best = TuneGemm(weight, shape.m, shape.k, n, bucket, tune.y_ref,
                           tune.y, &tune, &speedup);
      if (!best.ok()) return best.status();
      gemm_plan_.Set(shape.m, shape.k, bucket, *best, speedup);
    }
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  if (report != nullptr) absl::StrAppend(report, gemm_plan_.Summary());
  return absl::OkStatus();
}

}  // namespace weft
