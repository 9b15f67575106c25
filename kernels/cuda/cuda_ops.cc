// CudaBackend's ops: shape and dtype checks on the host (the same rules as
// the CPU reference, kernels/cpu/cpu_backend.cc), then one launcher each.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_matmul.h"
#include "kernels/cuda/cuda_status.h"

namespace weft {
namespace {

cudaStream_t AsStream(void* s) { return static_cast<cudaStream_t>(s); }

absl::Status ShapeError(absl::string_view op, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", what));
}

bool IsF32(const Tensor& t) { return t.dtype == DType::kF32 && t.data != nullptr; }

float* F32(Tensor* t) { return static_cast<float*>(t->data); }
const float* F32(const Tensor& t) { return static_cast<const float*>(t.data); }

}  // namespace

absl::Status CudaBackend::Embedding(const Tensor& table,
                                    const BatchView& batch, Tensor* out) {
  WEFT_RETURN_IF_ERROR_STATUS(CheckStaged(batch, "Embedding"));
  if (!IsF32(*out) || out->cols != table.cols ||
      out->rows < batch.num_tokens ||
      (table.dtype != DType::kBF16 && table.dtype != DType::kF32 &&
       table.dtype != DType::kW4)) {
    return ShapeError("Embedding", "output shape does not match the table");
  }
  for (int32_t id : staged_.host_token_ids) {
    if (id < 0 || id >= table.rows) {
      return ShapeError("Embedding",
                        absl::StrCat("token id ", id, " is outside the ",
                                     table.rows, "-entry table"));
    }
  }
  WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchEmbedding(
      table.dtype, table.data, table.rows, table.cols, batch.token_ids,
      batch.num_tokens, F32(out), AsStream(stream_)));
  return absl::OkStatus();
}

absl::Status CudaBackend::RmsNorm(const Tensor& x, const Tensor& weight,
                                  float eps, Tensor* out) {
  if (!IsF32(x) || !IsF32(weight) || !IsF32(*out) || weight.cols != x.cols ||
      out->cols != x.cols || out->rows < x.rows) {
    return ShapeError("RmsNorm", "shapes or dtypes do not match");
  }
  WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchRmsNorm(nullptr, F32(x), F32(weight),
                                                x.rows, x.cols, eps, F32(out),
                                                AsStream(stream_)));
  return absl::OkStatus();
}

absl::Status CudaBackend::AddRmsNorm(Tensor* residual, const Tensor& x,
                                     const Tensor& weight, float eps,
                                     Tensor* out) {
  if (!IsF32(*residual) || !IsF32(x) || residual->cols != x.cols ||
      residual->rows != x.rows) {
    return ShapeError("AddRmsNorm", "residual and x differ");
  }
  if (!IsF32(weight) || !IsF32(*out) || weight.cols != x.cols ||
      out->cols != x.cols || out->rows < x.rows) {
    return ShapeError("AddRmsNorm", "shapes or dtypes do not match");
  }
  WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchRmsNorm(
      F32(residual), F32(x), F32(weight), x.rows, x.cols, eps, F32(out),
      AsStream(stream_)));
  return absl::OkStatus();
}

absl::Status CudaBackend::MatMul(const Tensor& x, const Tensor& w,
                                 const Tensor* bias, Tensor* y) {
  if (!IsF32(x) || !IsF32(*y) ||
      (w.dtype != DType::kBF16 && w.dtype != DType::kW4) ||
      x.cols != w.cols || y->cols != w.rows || y->rows < x.rows ||
      (bias != nullptr && (!IsF32(*bias) || bias->cols != w.rows))) {
    return ShapeError("MatMul",
                      absl::StrCat("x [", x.rows, ", ", x.cols, "] · w [",
                                   w.rows, ", ", w.cols, "] ",
                                   DTypeName(w.dtype), "ᵀ → y [", y->rows,
                                   ", ", y->cols, "] do not fit"));
  }
  if (x.rows == 0) return absl::OkStatus();
  if (x.num_elements() > matmul_x_elements_) {
    return ShapeError("MatMul", absl::StrCat("x has more elements (",
                                             x.num_elements(),
                                             ") than planned (",
                                             matmul_x_elements_, ")"));
  }
  cudaStream_t stream = AsStream(stream_);
  auto* x_bf16 = static_cast<uint16_t*>(matmul_x_);
  WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchToBf16(DType::kF32, x.data,
                                               x.num_elements(), x_bf16,
                                               stream));
  if (w.dtype == DType::kW4) {
    WEFT_RETURN_IF_ERROR_STATUS(MatMulW4(x_bf16, w, x.rows, y));
  } else {
    WEFT_RETURN_IF_ERROR_STATUS(GemmBf16With(
        GemmKernelFor(x_bf16, w.data, x.rows, w.rows, w.cols, y->cols),
        x_bf16, w.data, F32(y), x.rows, w.rows, w.cols, y->cols));
  }
  if (bias != nullptr) {
    WEFT_CUDA_RETURN_IF_ERROR(
        cuda::LaunchAddBias(F32(y), F32(*bias), x.rows, y->cols, stream));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::RopeAndWriteKv(const RopeParams& rope,
                                         const AttentionParams& attention,
                                         const BatchView& batch, Tensor* q,
                                         Tensor* k, const Tensor& v,
                                         KvLayerView layer) {
  WEFT_RETURN_IF_ERROR_STATUS(CheckStaged(batch, "RopeAndWriteKv"));
  const int head_dim = attention.head_dim;
  const int half = rope.rotary_dim / 2;
  if (head_dim != kv_shape_.head_dim ||
      attention.num_kv_heads != kv_shape_.num_kv_heads ||
      rope.rotary_dim > head_dim || rope.rotary_dim % 2 != 0 ||
      rope.rotary_dim < 0 || rope.inv_freq.cols < half ||
      (half > 0 && !IsF32(rope.inv_freq)) || !IsF32(*q) || !IsF32(*k) ||
      !IsF32(v) || q->cols != int64_t{attention.num_q_heads} * head_dim ||
      k->cols != int64_t{attention.num_kv_heads} * head_dim ||
      v.cols != k->cols || q->rows < batch.num_tokens ||
      k->rows < batch.num_tokens || v.rows < batch.num_tokens ||
      layer.k == nullptr || layer.v == nullptr) {
    return ShapeError("RopeAndWriteKv", "shapes do not match the cache");
  }
  cuda::RopeKvArgs args;
  args.q = F32(q);
  args.k = F32(k);
  args.v = F32(v);
  args.q_stride = q->cols;
  args.k_stride = k->cols;
  args.v_stride = v.cols;
  args.k_cache = static_cast<uint16_t*>(layer.k);
  args.v_cache = static_cast<uint16_t*>(layer.v);
  args.positions = batch.positions;
  args.slot_mapping = batch.slot_mapping;
  args.inv_freq = F32(rope.inv_freq);
  args.num_tokens = batch.num_tokens;
  args.num_q_heads = attention.num_q_heads;
  args.num_kv_heads = attention.num_kv_heads;
  args.head_dim = head_dim;
  args.rotary_dim = rope.rotary_dim;
  args.block_size = kv_shape_.block_size;
  args.num_blocks = kv_shape_.num_blocks;
  args.neox = rope.style == RopeStyle::kNeox;
  WEFT_CUDA_RETURN_IF_ERROR(
      cuda::LaunchRopeAndWriteKv(args, AsStream(stream_)));
  return absl::OkStatus();
}

absl::Status CudaBackend::PagedAttention(const AttentionParams& attention,
                                         const BatchView& batch,
                                         const Tensor& q, KvLayerView layer,
                                         Tensor* out) {
  WEFT_RETURN_IF_ERROR_STATUS(CheckStaged(batch, "PagedAttention"));
  const int head_dim = attention.head_dim;
  if (attention.num_kv_heads <= 0 ||
      attention.num_q_heads % attention.num_kv_heads != 0 ||
      attention.num_kv_heads != kv_shape_.num_kv_heads ||
      head_dim != kv_shape_.head_dim || !IsF32(q) || !IsF32(*out) ||
      q.cols != int64_t{attention.num_q_heads} * head_dim ||
      out->cols != q.cols || out->rows < batch.num_tokens ||
      q.rows < batch.num_tokens || layer.k == nullptr || layer.v == nullptr) {
    return ShapeError("PagedAttention", "shapes do not match the cache");
  }
  if (out->data == q.data) {
    return ShapeError("PagedAttention", "out must not alias q");
  }
  cudaStream_t stream = AsStream(stream_);
  cuda::AttentionArgs args;
  args.q = F32(q);
  args.out = F32(out);
  args.q_stride = q.cols;
  args.out_stride = out->cols;
  args.k_cache = static_cast<const uint16_t*>(layer.k);
  args.v_cache = static_cast<const uint16_t*>(layer.v);
  args.query_indptr = batch.query_indptr;
  args.kv_indptr = batch.kv_indptr;
  args.kv_indices = batch.kv_indices;
  args.kv_last_block_len = batch.kv_last_block_len;
  args.num_q_heads = attention.num_q_heads;
  args.num_kv_heads = attention.num_kv_heads;
  args.head_dim = head_dim;
  args.block_size = kv_shape_.block_size;
  args.num_blocks = kv_shape_.num_blocks;
  args.scale = attention.scale;

  if (staged_.num_decode_items > 0) {
    // The grid's split count is the most any decode token of this batch
    // needs; a token needing fewer gets empty splits, which the merge skips,
    // so its result does not depend on the rest of the batch.
    const int splits = cuda::NumDecodeSplits(staged_.max_decode_context,
                                             config_.split_chunk_tokens,
                                             config_.max_decode_splits);
    cuda::DecodeArgs decode;
    decode.token_seq = staged_.token_seq;
    decode.split_chunk = splits > 1 ? config_.split_chunk_tokens : 0;
    decode.max_splits = splits;
    int64_t per_launch = 65535;  // grid.y limit
    if (splits > 1) {
      const int64_t floats_per_item =
          int64_t{attention.num_q_heads} * splits * (head_dim + 1);
      per_launch = std::min(per_launch, split_scratch_floats_ / floats_per_item);
      if (per_launch < 1) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "PagedAttention: split-KV scratch of ", split_scratch_floats_ * 4,
            " bytes holds no query token's ", splits, " splits"));
      }
    }
    for (int first = 0; first < staged_.num_decode_items; first += per_launch) {
      decode.items = staged_.decode_items + first;
      decode.num_items = static_cast<int>(
          std::min<int64_t>(per_launch, staged_.num_decode_items - first));
      if (splits > 1) {
        decode.partial_out = split_scratch_;
        decode.partial_lse = split_scratch_ + int64_t{decode.num_items} *
                                                  attention.num_q_heads *
                                                  splits * head_dim;
      }
      WEFT_CUDA_RETURN_IF_ERROR(
          cuda::LaunchDecodeAttention(args, decode, stream));
    }
  }
  if (staged_.num_prefill_tiles > 0) {
    WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchPrefillAttention(
        args, staged_.prefill_tiles, staged_.num_prefill_tiles, stream));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::SiluMul(const Tensor& gate, const Tensor& up,
                                  Tensor* out) {
  if (!IsF32(gate) || !IsF32(up) || !IsF32(*out) || gate.cols != up.cols ||
      gate.rows != up.rows || out->cols != gate.cols ||
      out->rows < gate.rows) {
    return ShapeError("SiluMul", "shapes do not match");
  }
  WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchSiluMul(
      F32(gate), F32(up), gate.num_elements(), F32(out), AsStream(stream_)));
  return absl::OkStatus();
}

absl::Status CudaBackend::GatherRows(const Tensor& x, const BatchView& batch,
                                     Tensor* out) {
  WEFT_RETURN_IF_ERROR_STATUS(CheckStaged(batch, "GatherRows"));
  if (!IsF32(x) || !IsF32(*out) || out->cols != x.cols ||
      out->rows < batch.num_logits || x.rows < batch.num_tokens) {
    return ShapeError("GatherRows", "shapes do not match");
  }
  WEFT_CUDA_RETURN_IF_ERROR(
      cuda::LaunchGatherRows(F32(x), x.cols, batch.logits_rows,
                             batch.num_logits, F32(out), AsStream(stream_)));
  return absl::OkStatus();
}

}  // namespace weft
