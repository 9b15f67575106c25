// The one interface between the model's forward pass and the hardware.
// kernels/cpu implements it plainly in fp32 (the reference every fast kernel
// is tested against); kernels/cuda implements it on NVIDIA GPUs. The backend
// is chosen once at startup; nothing above this header knows which runs.
//
// Ops are coarse (one call per transformer sub-step) and every one returns
// absl::Status. All tensors are 2-D, row-major, on the backend's device:
// activations in the backend's activation dtype (F32 on the CPU), weights in
// whatever dtype UploadWeight kept. Memory comes from the backend:
// weights through UploadWeight, activations and scratch through Allocate,
// which the model calls once, at load, for the largest batch it will run,
// so that no op allocates during a step. Every op is required but
// ArgMaxRowsToHost, MatMuls, WarmUp and the graph entry points, which have
// defaults.
#ifndef WEFT_KERNELS_BACKEND_H_
#define WEFT_KERNELS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/dtype.h"
#include "kernels/paged_kv.h"

namespace weft {

// A view of device memory owned by the backend (or, for CPU weights, by the
// mapped model file). rows × cols, row-major; for quantized dtypes a row is
// cols / 32 blocks.
struct Tensor {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  void* data = nullptr;

  int64_t num_elements() const { return rows * cols; }
  // A view of rows [first, first + count).
  Tensor Rows(int64_t first, int64_t count) const {
    return Tensor{dtype, count, cols,
                  static_cast<uint8_t*>(data) + first * RowBytes(dtype, cols)};
  }
};

enum class RopeStyle : uint8_t {
  // Rotate pairs (x[2i], x[2i+1]): the layout of GGUF llama weights, whose
  // Q/K rows llama.cpp's converter permutes from the HF checkpoint.
  kInterleaved,
  // Rotate pairs (x[i], x[i + rotary_dim/2]) ("rotate half"): HF
  // checkpoints, and GGUF qwen2 whose weights are not permuted.
  kNeox,
};

struct RopeParams {
  RopeStyle style = RopeStyle::kNeox;
  int head_dim = 0;
  int rotary_dim = 0;  // the first rotary_dim dims of each head are rotated
  // [1, rotary_dim / 2] F32: angle of pair i at position p is p * inv_freq[i]
  // (any frequency scaling such as Llama 3's is already applied).
  Tensor inv_freq;
};

struct AttentionParams {
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 0;  // usually 1 / sqrt(head_dim)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual absl::string_view name() const = 0;
  // The dtype of activations this backend computes in.
  virtual DType activation_dtype() const = 0;
  // The dtype the backend keeps its KV cache in (the model asks for a cache
  // of this dtype). The CPU backend keeps it in its activation dtype; the
  // CUDA backend computes in F32 and stores K and V in BF16.
  virtual DType kv_cache_dtype() const { return activation_dtype(); }

  // --- Memory -------------------------------------------------------------
  // A weight for use by the ops. `host` points at rows × cols elements of
  // `dtype` in host memory that stays valid for the backend's lifetime (the
  // mapped model file); the CPU backend may use it in place.
  virtual absl::StatusOr<Tensor> UploadWeight(DType dtype, int64_t rows,
                                              int64_t cols,
                                              const void* host) = 0;
  // Uninitialized device memory, owned by the backend until it is destroyed.
  virtual absl::StatusOr<Tensor> Allocate(DType dtype, int64_t rows,
                                          int64_t cols) = 0;
  virtual absl::Status CopyToHost(const Tensor& src, float* dst) = 0;
  // ids[r] = the index of the largest value of row r of x (the activation
  // dtype, [rows, cols]), the lowest such index on ties; -1 when the row
  // holds a NaN (the caller decides what that means). Waits for the result,
  // like CopyToHost. What greedy sampling needs of the logits: the CUDA
  // backend reduces on the GPU and copies 4 bytes a row instead of the
  // whole vocabulary. Optional: the default copies x to the host and scans.
  virtual absl::Status ArgMaxRowsToHost(const Tensor& x, int32_t* ids);
  virtual absl::Status CopyFromHost(const float* src, Tensor* dst) = 0;

  // The KV cache of `shape`, zero-filled; the backend owns it.
  virtual absl::Status AllocateKvCache(const KvCacheShape& shape) = 0;
  virtual KvLayerView kv_layer(int layer) const = 0;
  virtual const KvCacheShape& kv_shape() const = 0;

  // Copies whole KV blocks, every layer, K and V: block src[i] → dst[i],
  // in order (a later copy may read a block an earlier one wrote). Used for
  // copy-on-write when sequences that share a block diverge.
  virtual absl::Status CopyKvBlocks(absl::Span<const int32_t> src,
                                    absl::Span<const int32_t> dst) = 0;

  // Copies the step's metadata to the device. Fails with InvalidArgument
  // when it is inconsistent (see ValidateBatch) or larger than planned.
  virtual absl::StatusOr<BatchView> StageBatch(const BatchMetadata& batch) = 0;

  // --- Ops ----------------------------------------------------------------
  // out[t, :] = table[token_ids[t], :].  table [vocab, hidden] (any dtype),
  // out [num_tokens, hidden].
  virtual absl::Status Embedding(const Tensor& table, const BatchView& batch,
                                 Tensor* out) = 0;

  // out = x / rms(x) * weight, row by row. x, out [n, hidden]; weight
  // [1, hidden] F32.
  virtual absl::Status RmsNorm(const Tensor& x, const Tensor& weight,
                               float eps, Tensor* out) = 0;
  // residual += x, then out = RmsNorm(residual). residual, x, out [n, hidden].
  virtual absl::Status AddRmsNorm(Tensor* residual, const Tensor& x,
                                  const Tensor& weight, float eps,
                                  Tensor* out) = 0;

  // y = x · wᵀ (+ bias). x [n, k], w [m, k] (any dtype), bias [1, m] F32 or
  // nullptr, y [n, m].
  virtual absl::Status MatMul(const Tensor& x, const Tensor& w,
                              const Tensor* bias, Tensor* y) = 0;

  // Several matmuls of one input, as MatMul each: a layer's q, k and v
  // projections, or its gate and up. Outputs must not alias x. The default
  // calls MatMul per target; a backend overrides it to share work (the
  // fast CPU backend quantizes x once and splits all the weights' rows
  // over its threads in one job). Results equal the separate MatMuls'.
  struct MatMulTarget {
    const Tensor* w = nullptr;
    const Tensor* bias = nullptr;  // may be nullptr
    Tensor* y = nullptr;
  };
  virtual absl::Status MatMuls(const Tensor& x,
                               absl::Span<const MatMulTarget> targets);

  // Rotates q [n, num_q_heads * head_dim] in place and k [n, num_kv_heads *
  // head_dim] by each token's position, then writes k and v (same shape as
  // k) into `layer` at each token's slot.
  virtual absl::Status RopeAndWriteKv(const RopeParams& rope,
                                      const AttentionParams& attention,
                                      const BatchView& batch, Tensor* q,
                                      Tensor* k, const Tensor& v,
                                      KvLayerView layer) = 0;

  // Causal attention of each sequence's query tokens over its paged context
  // (prefill chunks and decodes in one call). A query token at position p
  // attends to context positions 0..p. q, out [n, num_q_heads * head_dim];
  // query head h reads KV head h / (num_q_heads / num_kv_heads).
  virtual absl::Status PagedAttention(const AttentionParams& attention,
                                      const BatchView& batch, const Tensor& q,
                                      KvLayerView layer, Tensor* out) = 0;

  // out = silu(gate) * up. gate, up, out [n, intermediate]; out may be gate.
  virtual absl::Status SiluMul(const Tensor& gate, const Tensor& up,
                               Tensor* out) = 0;

  // out[i, :] = x[batch.logits_rows[i], :]. x [n, hidden], out [num_logits,
  // hidden].
  virtual absl::Status GatherRows(const Tensor& x, const BatchView& batch,
                                  Tensor* out) = 0;

  // Waits for queued work; errors of asynchronous work surface here.
  virtual absl::Status Synchronize() = 0;

  // Called once after the model's weights, scratch and KV cache are in
  // place and before the first step: the backend may time and choose its
  // kernels here (the CUDA backend autotunes its GEMMs). Appends what it
  // chose to `report` (for the log; may be left empty). Optional: the
  // default does nothing, and a backend never warmed up still computes
  // correctly.
  virtual absl::Status WarmUp(std::string* /*report*/) {
    return absl::OkStatus();
  }

  // --- Graphs (optional: the CUDA backend's CUDA graphs) -----------------
  // A backend that can record the ops of a step once and replay them says
  // so. The model then captures one decode step per batch-size bucket
  // (StageBatchForGraph, BeginCapture, the step's ops, EndCapture(key)) and
  // replays it for later steps of that bucket (StageBatchForGraph, then
  // Replay(key)); see runtime/model/decode_graphs.h.
  virtual bool SupportsGraphs() const { return false; }
  // Graphs per key: a backend may need more than one shape of the same
  // step (the CUDA backend: decode attention without and with split-KV,
  // chosen by the batch's longest context). The model captures each.
  virtual int NumGraphVariants() const { return 1; }
  // StageBatch into buffers whose device addresses are the same at every
  // call, with launch shapes that depend only on the batch's sizes and the
  // variant, never on its contents (what a replayed graph reads).
  // `variant` in [0, NumGraphVariants()) stages for that variant (capture);
  // -1 picks the variant the batch needs (replay).
  virtual absl::StatusOr<BatchView> StageBatchForGraph(
      const BatchMetadata& /*batch*/, int /*variant*/) {
    return absl::UnimplementedError("this backend has no graphs");
  }
  // Ops issued between BeginCapture and EndCapture are recorded, not run.
  // EndCapture(key ≥ 0) keeps them as graph `key` of the variant staged
  // last (replacing one with the same key and variant); EndCapture(-1)
  // discards them (after a failed op).
  virtual absl::Status BeginCapture() {
    return absl::UnimplementedError("this backend has no graphs");
  }
  virtual absl::Status EndCapture(int /*key*/) {
    return absl::UnimplementedError("this backend has no graphs");
  }
  // Runs graph `key` of the variant staged last on the batch staged last
  // (NotFound if never captured).
  virtual absl::Status Replay(int /*key*/) {
    return absl::UnimplementedError("this backend has no graphs");
  }
};

// The host scan behind Backend::ArgMaxRowsToHost's contract, over a
// row-major fp32 [rows, cols] array (the CPU backends' and the reference of
// the CUDA kernel's tests).
void ArgMaxRows(const float* x, int64_t rows, int64_t cols, int32_t* ids);

// Checks a batch against the cache it will run on: CSR arrays consistent,
// block ids in range, no block twice in one table, positions match the
// block tables, slots inside each sequence's own blocks, no block written
// by two sequences (but CUDA graph padding's dummy block), logits rows in
// range.
absl::Status ValidateBatch(const BatchMetadata& batch,
                           const KvCacheShape& shape);

}  // namespace weft

#endif  // WEFT_KERNELS_BACKEND_H_
