// The CUDA backend: kernels/backend.h on one NVIDIA GPU, one stream.
//
//   activations  F32 (the residual stream, norms, RoPE, softmax and logits
//                stay fp32; see docs/cuda.md for why).
//   weights      BF16 on the device: F32/F16/BF16 converted, GGUF Q4_0, Q4_1
//                and Q8_0 dequantized by a kernel at upload; with
//                weight_format kInt4, Q4_0/Q4_1 matrices are repacked to W4
//                instead (W4A16). 1-row F32 tensors (norm weights, biases,
//                RoPE frequencies) stay F32.
//   KV cache     BF16, the layout of kernels/paged_kv.h.
//   MatMul       x is rounded to BF16 into planned scratch, then one bf16
//                GEMM with fp32 accumulation and fp32 output: cuBLAS
//                (kernels/cuda/cuda_matmul.h) or weft's own tiled kernel
//                (kernels/cuda/gemm_bf16.cu), as WarmUp's autotune chose
//                per weight shape and row bucket (kernels/gemm_plan.h).
//   attention    decode: paged, GQA-grouped, optionally split over the
//                context (flash-decoding) plus a reduction kernel; prefill:
//                causal, tensor cores (mma.sync bf16 → fp32), online softmax.
//
// Memory: weights, the KV cache, the staged batch, the split-KV partials and
// cuBLAS's workspace are allocated at load (UploadWeight, Allocate,
// AllocateKvCache); no op allocates. Every CUDA and cuBLAS call is checked and
// its failure returned as a Status (Internal; a sticky error such as an
// illegal address makes every later call fail too).
//
// This header includes no CUDA header, so code built without nvcc can name
// the backend (only kernels/factory links it, and only with WEFT_HAVE_CUDA).
#ifndef WEFT_KERNELS_CUDA_CUDA_BACKEND_H_
#define WEFT_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/backend.h"
#include "kernels/gemm_plan.h"

namespace weft {

// How the CUDA backend keeps GGUF Q4_0/Q4_1 matrices (--weight_dtype).
enum class CudaWeightFormat : uint8_t {
  // Dequantized to bf16 at upload, like every other weight (part 1).
  kBf16,
  // Q4_0/Q4_1 repacked to W4 (kernels/dtype.h, 5 bits a weight,
  // lossless) and F32/F16/BF16 matrices quantized to it (round to nearest,
  // per 32-element group: lossy, e.g. for synthetic models), multiplied by
  // the W4A16 kernels: the skinny kernel up to 64 rows of x (16 at a time),
  // dequantize to a planned bf16 scratch + GEMM above (at every row count
  // with GemmPolicy::kInvariant). Q8_0, one-row
  // tensors and matrices whose row length is not a multiple of 64 stay
  // bf16. Every matrix UploadWeight gets is taken for a weight: tests that
  // upload activations with it must not use kInt4.
  kInt4,
};
// "bf16" or "int4"; InvalidArgument otherwise.
inline absl::StatusOr<CudaWeightFormat> ParseCudaWeightFormat(
    absl::string_view name) {
  if (name == "bf16") return CudaWeightFormat::kBf16;
  if (name == "int4") return CudaWeightFormat::kInt4;
  return absl::InvalidArgumentError(
      "--weight_dtype must be bf16 or int4");
}

struct CudaBackendConfig {
  int device = 0;
  // The largest step the caller will stage: tokens, sequences and block-table
  // entries (0: max_num_seqs × the cache's blocks, at most 16M). StageBatch
  // rejects larger batches with InvalidArgument.
  int max_num_tokens = 512;
  int max_num_seqs = 256;
  int64_t max_kv_indices = 0;
  // Sequences with at least this many query tokens in a step take the
  // tensor-core prefill kernel; shorter ones the decode kernel, one query
  // token at a time (tests set 1 or a large value to force either kernel).
  int prefill_min_query_len = 2;
  // Split-KV decode: a query whose visible context is longer than
  // split_chunk_tokens is split into ceil(context / chunk) parts (at most
  // max_decode_splits), each attended by its own thread block, then merged.
  // The split depends only on the sequence, never on the rest of the batch.
  // 0 disables splitting.
  int split_chunk_tokens = 256;
  int max_decode_splits = 32;
  // Device memory for the partial results of split decode (≥ 4 bytes while
  // splitting is on).
  int64_t split_scratch_bytes = int64_t{64} << 20;
  // cuBLAS workspace (set explicitly so cuBLAS allocates nothing in a step;
  // > 0).
  int64_t cublas_workspace_bytes = int64_t{32} << 20;
  // Which GEMM each bf16 MatMul runs (kernels/gemm_plan.h): with kAutotune,
  // WarmUp times weft's tiled kernels against cuBLAS for every weight shape
  // and row bucket and keeps the faster (cuBLAS until WarmUp has run).
  GemmPolicy gemm = GemmPolicy::kAutotune;
  // One of ours must beat cuBLAS by this factor to be chosen.
  double gemm_min_speedup = 1.03;
  CudaWeightFormat weight_format = CudaWeightFormat::kBf16;

  absl::Status Validate() const;
};

// What the batch staged last needs beyond the BatchView: the work lists of
// the two attention kernels, and a host copy of the token ids.
struct CudaStagedBatch {
  BatchView view;
  int num_decode_items = 0;       // query tokens taken by the decode kernel
  int max_decode_context = 0;     // longest context one of them sees
  int num_prefill_tiles = 0;      // 64-query tiles of the prefill kernel
  const int32_t* token_seq = nullptr;      // device [num_tokens]
  const int32_t* decode_items = nullptr;   // device [num_decode_items]
  const int32_t* prefill_tiles = nullptr;  // device [num_prefill_tiles][2]
  std::vector<int32_t> host_token_ids;
  // Staged by StageBatchForGraph (the planned layout a graph reads).
  bool for_graph = false;
};

// The sizes a captured graph bakes into its launches: a replay is valid
// only for a graph-staged batch of the same sizes.
struct GraphStagedSizes {
  int num_tokens = 0, num_seqs = 0, num_logits = 0;
  int num_decode_items = 0, num_prefill_tiles = 0;
  bool operator==(const GraphStagedSizes&) const = default;
};

// Head sizes the CUDA attention kernels are built for.
inline constexpr bool CudaAttentionSupportsHeadDim(int head_dim) {
  return head_dim == 64 || head_dim == 128;
}

class CudaBackend : public Backend {
 public:
  // NotFound without a usable GPU; Internal when CUDA or cuBLAS fails.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(
      const CudaBackendConfig& config);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  absl::string_view name() const override { return "cuda"; }
  DType activation_dtype() const override { return DType::kF32; }
  DType kv_cache_dtype() const override { return DType::kBF16; }
  // e.g. "cuda (NVIDIA H200, sm_90, 132 SMs)".
  const std::string& description() const { return description_; }
  int num_multiprocessors() const { return num_sms_; }

  absl::StatusOr<Tensor> UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                      const void* host) override;
  absl::StatusOr<Tensor> Allocate(DType dtype, int64_t rows,
                                  int64_t cols) override;
  absl::Status CopyToHost(const Tensor& src, float* dst) override;
  // On the GPU (one block a row), then rows × 4 bytes to the host.
  absl::Status ArgMaxRowsToHost(const Tensor& x, int32_t* ids) override;
  absl::Status CopyFromHost(const float* src, Tensor* dst) override;
  absl::Status AllocateKvCache(const KvCacheShape& shape) override;
  KvLayerView kv_layer(int layer) const override;
  const KvCacheShape& kv_shape() const override { return kv_shape_; }
  absl::Status CopyKvBlocks(absl::Span<const int32_t> src,
                            absl::Span<const int32_t> dst) override;
  absl::StatusOr<BatchView> StageBatch(const BatchMetadata& batch) override;

  absl::Status Embedding(const Tensor& table, const BatchView& batch,
                         Tensor* out) override;
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps,
                       Tensor* out) override;
  absl::Status AddRmsNorm(Tensor* residual, const Tensor& x,
                          const Tensor& weight, float eps,
                          Tensor* out) override;
  absl::Status MatMul(const Tensor& x, const Tensor& w, const Tensor* bias,
                      Tensor* y) override;
  absl::Status RopeAndWriteKv(const RopeParams& rope,
                              const AttentionParams& attention,
                              const BatchView& batch, Tensor* q, Tensor* k,
                              const Tensor& v, KvLayerView layer) override;
  absl::Status PagedAttention(const AttentionParams& attention,
                              const BatchView& batch, const Tensor& q,
                              KvLayerView layer, Tensor* out) override;
  absl::Status SiluMul(const Tensor& gate, const Tensor& up,
                       Tensor* out) override;
  absl::Status GatherRows(const Tensor& x, const BatchView& batch,
                          Tensor* out) override;
  absl::Status Synchronize() override;
  // CUDA graphs (kernels/backend.h): stream capture on the backend's one
  // stream; a graph-staged batch lands at the fixed offsets of the staging
  // buffers' full (planned) layout, and its decode attention takes one
  // split (variant 0) or max_decode_splits splits (variant 1; a token
  // needing fewer gets empty ones, as in any batch), so a replay is valid
  // for any batch of the captured sizes.
  bool SupportsGraphs() const override { return true; }
  // Variant 0: every decode token unsplit (a batch whose longest context is
  // at most split_chunk_tokens); 1: the grid at max_decode_splits.
  int NumGraphVariants() const override;
  absl::StatusOr<BatchView> StageBatchForGraph(const BatchMetadata& batch,
                                               int variant) override;
  absl::Status BeginCapture() override;
  absl::Status EndCapture(int key) override;
  absl::Status Replay(int key) override;

  // Autotunes the GEMM of every bf16 weight shape uploaded so far (see
  // CudaBackendConfig::gemm) and appends GemmPlan::Summary() to `report`.
  absl::Status WarmUp(std::string* report) override;
  const GemmPlan& gemm_plan() const { return gemm_plan_; }

  // For benchmarks: device-to-device copy of `bytes` (bytes ≤ the largest
  // Allocate'd buffer is the caller's business), and a plain bf16 GEMM on
  // device buffers, both queued on the backend's stream.
  absl::Status CopyDeviceToDevice(void* dst, const void* src, int64_t bytes);
  absl::Status GemmBf16(const void* x_bf16, const void* w_bf16, float* y,
                        int64_t n, int64_t m, int64_t k);
  // The same GEMM on one chosen kernel (kCublas or one of kOwnGemmKernels).
  absl::Status GemmBf16With(GemmKernelId kernel, const void* x_bf16,
                            const void* w_bf16, float* y, int64_t n,
                            int64_t m, int64_t k, int64_t ldy);
  // The opaque cudaStream_t the backend queues on.
  void* stream() const { return stream_; }

 private:
  explicit CudaBackend(const CudaBackendConfig& config) : config_(config) {}
  absl::Status Init();
  absl::StatusOr<void*> DeviceAlloc(int64_t bytes);
  absl::Status CheckStaged(const BatchView& batch, absl::string_view op) const;
  absl::Status PlanStaging();
  // variant: -2 eager (packed layout); -1 or a variant: for a graph.
  absl::StatusOr<BatchView> Stage(const BatchMetadata& batch, int variant);
  // The kernel MatMul runs for y[n, m] = x[n, k] · w[m, k]ᵀ.
  GemmKernelId GemmKernelFor(const void* x, const void* w, int64_t n,
                             int64_t m, int64_t k, int64_t ldy) const;
  // Times and checks every candidate of `bucket` at one shape and n rows
  // (autotune); `scratch` is cuda_gemm.cc's TuneScratch.
  absl::StatusOr<GemmKernelId> TuneGemm(const void* w, int64_t m, int64_t k,
                                        int64_t n, int64_t bucket,
                                        float* y_ref, float* y, void* scratch,
                                        double* speedup);
  // y = x_bf16 · wᵀ for a W4 weight (MatMul's W4A16 path).
  absl::Status MatMulW4(const void* x_bf16, const Tensor& w, int64_t n,
                        Tensor* y);
  absl::StatusOr<Tensor> UploadW4(DType dtype, int64_t rows, int64_t cols,
                                  const void* host);
  // MatMul's bf16 copy of x: planned for max_num_tokens × the widest row.
  absl::Status PlanMatMulX(int64_t cols);
  // Remembers one weight of each (shape, W4 or not) for the autotune.
  void RegisterGemmShape(int64_t m, int64_t k, const void* weight, bool w4);
  // FailedPrecondition once graphs are captured: they hold the addresses of
  // the buffers a reallocation would free.
  absl::Status CheckNoGraphs(absl::string_view what) const;
  // FailedPrecondition unless the batch staged last came from
  // StageBatchForGraph (what BeginCapture and Replay need).
  absl::Status CheckGraphStaged(absl::string_view op) const;
  // The staged batch's sizes a graph's launches depend on.
  GraphStagedSizes StagedSizes() const;

  CudaBackendConfig config_;
  std::string description_;
  int num_sms_ = 0;
  void* stream_ = nullptr;        // cudaStream_t
  void* cublas_ = nullptr;        // cublasHandle_t
  void* staged_event_ = nullptr;  // cudaEvent_t: the last staging copy done
  std::vector<void*> allocations_;
  void* cublas_workspace_ = nullptr;

  // Upload staging for raw (quantized) weight bytes; freed with the cache.
  void* upload_staging_ = nullptr;
  int64_t upload_staging_bytes_ = 0;
  // x rounded to BF16 for MatMul: max_num_tokens × the widest weight row.
  void* matmul_x_ = nullptr;
  int64_t matmul_x_elements_ = 0;

  void* kv_cache_ = nullptr;  // bf16
  KvCacheShape kv_shape_;

  // The staged batch: one pinned host buffer copied in one transfer to one
  // device buffer of the same layout.
  void* staging_host_ = nullptr;
  void* staging_device_ = nullptr;
  int64_t staging_bytes_ = 0;
  int64_t max_kv_indices_ = 0;
  CudaStagedBatch staged_;

  float* split_scratch_ = nullptr;
  int64_t split_scratch_floats_ = 0;

  // ArgMaxRowsToHost's device result: max_num_tokens int32 (planned with
  // the staging buffers).
  int32_t* argmax_ids_ = nullptr;

  // W4 weights dequantized for MatMuls of more than 64 rows: bf16, as
  // large as the largest W4 weight.
  void* w4_scratch_ = nullptr;
  int64_t w4_scratch_elements_ = 0;

  // One uploaded weight of each distinct shape [m, k], to tune on (a W4
  // weight is tuned on its bf16 dequantization, above 64 rows only).
  struct GemmShape {
    int64_t m = 0, k = 0;
    const void* weight = nullptr;
    bool w4 = false;
  };
  std::vector<GemmShape> gemm_shapes_;
  GemmPlan gemm_plan_;

  // Instantiated graphs (cudaGraphExec_t) by key; capturing_ while a
  // capture is open.
  struct CapturedGraph {
    void* exec = nullptr;     // cudaGraphExec_t
    GraphStagedSizes sizes;   // of the batch staged when it was captured
  };
  absl::flat_hash_map<int, CapturedGraph> graphs_;  // key: graph key × 2 + variant
  bool capturing_ = false;
  int staged_variant_ = 0;  // of the last graph-staged batch
};

// The backend, or NotFound when no GPU is usable. `description` (optional)
// receives e.g. "cuda (NVIDIA H200, sm_90, 132 SMs, 139 GiB)".
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(
    const CudaBackendConfig& config, std::string* description = nullptr);

}  // namespace weft

#endif  // WEFT_KERNELS_CUDA_CUDA_BACKEND_H_
