// The CPU backend: every op written plainly in fp32, one thread, no SIMD
// intrinsics. It is the reference that every fast kernel (CPU or CUDA) is
// tested against, so clarity wins over speed here. Quantized weights are
// dequantized one row at a time (kernels/dtype.h) and used in place from
// the mapped model file. The KV cache is F32 or F16 (whatever the shape
// given to AllocateKvCache says; kv_cache_dtype() is what it asks models
// for): F16 rows are widened to fp32 when read and rounded to nearest
// even when written.
#ifndef WEFT_KERNELS_CPU_CPU_BACKEND_H_
#define WEFT_KERNELS_CPU_CPU_BACKEND_H_

#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/huge_page_buffer.h"

namespace weft {

class CpuBackend : public Backend {
 public:
  // `kv_cache_dtype`: kF32 (the reference default) or kF16.
  explicit CpuBackend(DType kv_cache_dtype = DType::kF32)
      : kv_cache_dtype_(kv_cache_dtype) {}

  absl::string_view name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::kF32; }
  DType kv_cache_dtype() const override { return kv_cache_dtype_; }

  absl::StatusOr<Tensor> UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                      const void* host) override;
  absl::StatusOr<Tensor> Allocate(DType dtype, int64_t rows,
                                  int64_t cols) override;
  absl::Status CopyToHost(const Tensor& src, float* dst) override;
  // Scans the host tensor in place (F32 activations; others are copied).
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
  absl::Status Synchronize() override { return absl::OkStatus(); }

 private:
  std::vector<std::unique_ptr<uint8_t[]>> buffers_;
  DType kv_cache_dtype_;
  std::unique_ptr<HugePageBuffer> kv_cache_;  // F32 or F16 elements
  KvCacheShape kv_shape_;
  // Planned once (AllocateKvCache / first MatMul of a row length), reused.
  std::vector<float> row_scratch_;    // one dequantized weight row
  std::vector<float> score_scratch_;  // one query's attention scores
  std::vector<float> kv_row_scratch_;  // one K or V row widened to fp32
};

}  // namespace weft

#endif  // WEFT_KERNELS_CPU_CPU_BACKEND_H_
