// The CPU backend for serving: the reference CpuBackend's memory, KV cache
// and batch staging, with every op replaced by a vectorized, threaded one.
//
//   MatMul    quantized weights (Q4_0, Q4_1, Q8_0) are repacked at upload
//             into 16-row interleaved blocks (kernels/cpu/cpu_kernels.h)
//             and multiplied against activations quantized to two int8
//             levels per block of 32 (AMX-INT8 for 8+ rows where granted,
//             else AVX-512 VNNI, else AVX2); F16/BF16/F32 weights are
//             repacked k-major in 16-row groups (AVX-512) or used in place
//             (AVX2) with fp32 multiply-adds. Output rows are split across
//             the thread pool; each weight block is read once per tile of
//             activation rows.
//   the rest  RMSNorm, RoPE + KV write, paged attention (query tiles ×
//             KV head), SiLU·mul in fp32 SIMD, threaded over tokens /
//             tiles when there is enough work.
//
// The ISA is picked once, at construction, from what the processor reports
// (AVX-512 F/BW/VL/VNNI, else AVX2+FMA+F16C); one binary runs on any
// x86-64 with AVX2. Every kernel has a parity test against CpuBackend and
// a row's result never depends on the batch (docs/cpu.md,
// tests/kernels/fast_cpu_backend_test.cc).
#ifndef WEFT_KERNELS_CPU_FAST_CPU_BACKEND_H_
#define WEFT_KERNELS_CPU_FAST_CPU_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "kernels/cpu/cpu_backend.h"

namespace weft {

class ThreadPool;

struct CpuBackendConfig {
  int num_threads = 0;  // 0: one per physical core
  // Force the AVX2 kernels even where AVX-512 VNNI is present (tests and
  // benchmarks of the fallback path).
  bool force_avx2 = false;
  // Multiply batches of activation rows by quantized weights with AMX-INT8
  // where the processor and the OS allow it (results are bit-identical to
  // the AVX-512 VNNI kernels; tests turn it off to compare them).
  bool allow_amx = true;
  // Without AVX-512 (or with force_avx2): multiply by quantized weights
  // with AVX-VNNI's 256-bit VPDPBUSD where the processor has it (Intel's
  // client cores from Alder Lake on, E-core Xeons; bit-identical to the
  // AVX2 kernels, which tests and benchmarks of plain AVX2 get by turning
  // it off).
  bool allow_avx_vnni = true;
  // Serve with the reference CpuBackend (one thread, fp32, no SIMD).
  bool reference = false;
  // The KV cache's element type, kF16 or kF32. F16 (llama.cpp's default
  // too) halves the bytes attention reads per token, which bounds batched
  // decode; F32 keeps the cache exact (docs/cpu.md has the measurements).
  DType kv_cache_dtype = DType::kF16;
  // How far ahead (bytes) matmuls software-prefetch each weight stream
  // (cpu_kernels.h, kDecodePrefetchBytes); -1: the distance measured
  // best for this processor's vendor and the kernel (DecodePrefetchBytesFor).
  // Benchmarks set it to compare.
  int64_t decode_prefetch_bytes = -1;
  // The AVX-512 quantized decode tiles' second prefetch, into L2
  // (cpu_kernels.h, kAmdDecodeL2PrefetchBytes); 0: none; -1: the
  // processor's (DecodeL2PrefetchBytesFor). It also switches the rest of
  // the L2 policy (cpu::L2PolicyFor): > 0 on, 0 off.
  int64_t decode_l2_prefetch_bytes = -1;
  // Int8 levels the activations of quantized matmuls are quantized to, per
  // block of 32: 2 (default: within ~1e-2 of the fp32 reference in log-prob,
  // bench/cpu_vs_llamacpp/results.md) or 1, llama.cpp's scheme (errors of
  // llama.cpp's size there: 0.24-1.17 against its 0.25-0.65), which halves
  // the integer work of batched decode and prompts where the kernels skip
  // the second level (AVX-512 VNNI, AVX-VNNI, AVX2's Q4; AVX2's Q8_0 and AMX
  // compute it as zeros: the same bits, no faster). docs/cpu.md has the
  // measurements.
  int activation_levels = 2;

  absl::Status Validate() const;
};

// The --kv_cache_dtype flag: "f16" or "f32", or "auto": F16 for the fast
// kernels, F32 for the reference ones (the fp32 oracle stays exact).
absl::StatusOr<DType> ParseCpuKvCacheDtype(absl::string_view name,
                                           bool reference_kernels);

// Physical cores available to this process (hyperthreads counted once).
int NumPhysicalCores();

class FastCpuBackend;
// The backend weft serves with on the CPU: FastCpuBackend, or the reference
// CpuBackend when `config.reference` is set or the processor lacks AVX2
// (then a line on stderr says so). `description` (optional) receives e.g.
// "cpu (avx512-vnni, 2 threads, KV F16)".
absl::StatusOr<std::unique_ptr<CpuBackend>> MakeCpuBackend(
    const CpuBackendConfig& config, std::string* description = nullptr);

class FastCpuBackend : public CpuBackend {
 public:
  // Fails with FailedPrecondition on a processor without AVX2+FMA+F16C.
  static absl::StatusOr<std::unique_ptr<FastCpuBackend>> Create(
      const CpuBackendConfig& config);
  ~FastCpuBackend() override;

  absl::string_view name() const override { return "cpu"; }
  int num_threads() const;
  // "avx512-vnni+amx", "avx512-vnni" or "avx2".
  absl::string_view isa() const { return isa_; }

  absl::StatusOr<Tensor> UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                      const void* host) override;
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps,
                       Tensor* out) override;
  absl::Status AddRmsNorm(Tensor* residual, const Tensor& x,
                          const Tensor& weight, float eps,
                          Tensor* out) override;
  absl::Status MatMul(const Tensor& x, const Tensor& w, const Tensor* bias,
                      Tensor* y) override;
  // Packed weights (all quantized, or all float): x quantized once, one
  // job over all the targets' weight groups. Otherwise MatMul each.
  absl::Status MatMuls(const Tensor& x,
                       absl::Span<const MatMulTarget> targets) override;
  absl::Status RopeAndWriteKv(const RopeParams& rope,
                              const AttentionParams& attention,
                              const BatchView& batch, Tensor* q, Tensor* k,
                              const Tensor& v, KvLayerView layer) override;
  absl::Status PagedAttention(const AttentionParams& attention,
                              const BatchView& batch, const Tensor& q,
                              KvLayerView layer, Tensor* out) override;
  absl::Status SiluMul(const Tensor& gate, const Tensor& up,
                       Tensor* out) override;

 private:
  struct PackedWeight;
  explicit FastCpuBackend(const CpuBackendConfig& config);
  // Targets MatMuls takes in one job (a layer's q, k, v is the most).
  static constexpr size_t kMaxMatMulTargets = 4;
  // The packed copy of weight `w`, or nullptr (not packed: a view of some
  // rows, or float weights on AVX2).
  const PackedWeight* FindPacked(const Tensor& w) const;
  // A weight without a packed copy: float weights in place, anything else
  // (and bad shapes, which it reports) the reference op.
  absl::Status UnpackedMatMul(const Tensor& x, const Tensor& w,
                              const Tensor* bias, Tensor* y);

  std::string isa_;
  bool use_avx512_ = false;
  bool use_amx_ = false;
  bool use_avx_vnni_ = false;  // only where use_avx512_ is false
  int64_t decode_prefetch_bytes_ = -1;  // CpuBackendConfig's
  int64_t decode_l2_prefetch_bytes_ = -1;  // CpuBackendConfig's
  bool one_level_ = false;  // CpuBackendConfig::activation_levels == 1
  std::unique_ptr<ThreadPool> pool_;
  // Repacked quantized weights, by the address of the original data (the
  // Tensor handed out keeps pointing at the GGML layout so ops that read a
  // weight row by row — Embedding — work unchanged).
  absl::flat_hash_map<const void*, std::unique_ptr<PackedWeight>> packed_;
  // Planned scratch, grown at UploadWeight/first use of a shape and then
  // reused: quantized activations and per-thread attention scores.
  std::vector<int8_t> x_quant_;
  std::vector<float> x_scales_;  // scale, scaled_sum, fine_scale per row block
  std::vector<int32_t> x_sums_;
  std::vector<std::vector<float>> thread_scores_;  // attention scratch
  struct AttentionWork {
    int seq;
    int kv_head;
    int first_token;    // in the flat batch
    int num_tokens;
    int first_visible;  // context positions the first token sees
    // Chunks of kAttentionKeyChunk keys the tile's context is cut into
    // (1: none). chunk < 0: the task runs all of them, into its thread's
    // thread_partials_, and merges them itself; else only that chunk, into
    // attention_partials_ at `partial`, merged after all tasks ran.
    int chunks = 1;
    int chunk = -1;
    int64_t partial = -1;
  };
  std::vector<AttentionWork> attention_tasks_;
  std::vector<AttentionWork> attention_split_;  // scratch for the split
  // Thread r's tasks: [attention_bounds_[r], attention_bounds_[r + 1]).
  std::vector<int64_t> attention_bounds_;
  // The tiles whose chunks ran as separate tasks, merged after them.
  struct AttentionMerge {
    int kv_head;
    int first_token;
    int num_tokens;
    int chunks;
    int64_t partial;       // chunk 0's results in attention_partials_
    int64_t chunk_floats;  // between consecutive chunks' results
  };
  std::vector<AttentionMerge> attention_merges_;
  std::vector<float> attention_partials_;
  std::vector<std::vector<float>> thread_partials_;
};

}  // namespace weft

#endif  // WEFT_KERNELS_CPU_FAST_CPU_BACKEND_H_
