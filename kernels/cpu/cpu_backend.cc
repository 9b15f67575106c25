#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace weft {
namespace {

absl::Status ShapeError(absl::string_view op, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", what));
}

bool IsF32(const Tensor& t) { return t.dtype == DType::kF32; }

float* F32(Tensor* t) { return static_cast<float*>(t->data); }
const float* F32(const Tensor& t) { return static_cast<const float*>(t.data); }

// Sum of a[i] * b[i] with eight independent partial sums, so the compiler
// can keep several multiply-adds in flight.
float Dot(const float* a, const float* b, int64_t n) {
  float partial[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += a[i + j] * b[i + j];
  }
  float sum = 0;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (float p : partial) sum += p;
  return sum;
}

// KV rows: `n` elements at element index `at` of an F32 or F16 cache.
void WriteKvRow(DType dtype, const float* src, int64_t n, void* cache, int64_t at) {
  if (dtype == DType::kF16) {
    uint16_t* dst = static_cast<uint16_t*>(cache) + at;
    for (int64_t i = 0; i < n; ++i) dst[i] = FloatToHalf(src[i]);
  } else {
    std::memcpy(static_cast<float*>(cache) + at, src, n * sizeof(float));
  }
}

// The row as fp32: in place for F32, widened into `scratch` for F16.
const float* ReadKvRow(DType dtype, const void* cache, int64_t at, int64_t n,
                       float* scratch) {
  if (dtype != DType::kF16) return static_cast<const float*>(cache) + at;
  const uint16_t* src = static_cast<const uint16_t*>(cache) + at;
  for (int64_t i = 0; i < n; ++i) scratch[i] = HalfToFloat(src[i]);
  return scratch;
}

void RmsNormRow(const float* x, const float* weight, int64_t n, float eps,
                float* out) {
  double sum_squares = 0;
  for (int64_t i = 0; i < n; ++i) sum_squares += double{x[i]} * x[i];
  const float inv_rms =
      1.0f / std::sqrt(static_cast<float>(sum_squares / n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv_rms * weight[i];
}

}  // namespace

absl::StatusOr<Tensor> CpuBackend::UploadWeight(DType dtype, int64_t rows,
                                                int64_t cols,
                                                const void* host) {
  if (rows <= 0 || cols <= 0 || cols % DTypeBlockElements(dtype) != 0) {
    return ShapeError("UploadWeight",
                      absl::StrCat("bad shape ", rows, "x", cols, " for ",
                                   DTypeName(dtype)));
  }
  if (static_cast<int64_t>(row_scratch_.size()) < cols) {
    row_scratch_.resize(cols);
  }
  return Tensor{dtype, rows, cols, const_cast<void*>(host)};
}

absl::StatusOr<Tensor> CpuBackend::Allocate(DType dtype, int64_t rows,
                                            int64_t cols) {
  if (rows <= 0 || cols <= 0 || cols % DTypeBlockElements(dtype) != 0) {
    return ShapeError("Allocate", absl::StrCat("bad shape ", rows, "x", cols));
  }
  const int64_t bytes = rows * RowBytes(dtype, cols);
  auto buffer = std::make_unique<uint8_t[]>(bytes);
  Tensor tensor{dtype, rows, cols, buffer.get()};
  buffers_.push_back(std::move(buffer));
  return tensor;
}

absl::Status CpuBackend::CopyToHost(const Tensor& src, float* dst) {
  for (int64_t r = 0; r < src.rows; ++r) {
    DequantizeRow(src.dtype, src.Rows(r, 1).data, dst + r * src.cols,
                  src.cols);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::ArgMaxRowsToHost(const Tensor& x, int32_t* ids) {
  if (x.dtype != DType::kF32) return Backend::ArgMaxRowsToHost(x, ids);
  ArgMaxRows(static_cast<const float*>(x.data), x.rows, x.cols, ids);
  return absl::OkStatus();
}

absl::Status CpuBackend::CopyFromHost(const float* src, Tensor* dst) {
  if (!IsF32(*dst)) return ShapeError("CopyFromHost", "destination not F32");
  std::memcpy(dst->data, src, dst->num_elements() * sizeof(float));
  return absl::OkStatus();
}

absl::Status CpuBackend::AllocateKvCache(const KvCacheShape& shape) {
  if (shape.dtype != DType::kF32 && shape.dtype != DType::kF16) {
    return absl::UnimplementedError(
        absl::StrCat("the CPU backend keeps its KV cache in F32 or F16, not ",
                     DTypeName(shape.dtype)));
  }
  if (shape.num_layers <= 0 || shape.num_blocks <= 0 ||
      shape.block_size <= 0 || shape.num_kv_heads <= 0 ||
      shape.head_dim <= 0) {
    return ShapeError("AllocateKvCache", "every dimension must be positive");
  }
  const int64_t bytes = shape.total_elements() * DTypeBlockBytes(shape.dtype);
  kv_cache_.reset();  // before mapping the new one
  kv_shape_ = KvCacheShape{};
  kv_cache_ = std::make_unique<HugePageBuffer>(bytes);
  if (kv_cache_->data() == nullptr) {
    kv_cache_.reset();
    return absl::ResourceExhaustedError(
        absl::StrCat("AllocateKvCache: cannot map ", bytes, " bytes"));
  }
  // Touch every page now (already zero) so no step pays for faulting in
  // the cache.
  std::memset(kv_cache_->data(), 0, bytes);
  kv_shape_ = shape;
  score_scratch_.assign(int64_t{shape.num_blocks} * shape.block_size, 0.0f);
  kv_row_scratch_.assign(shape.head_dim, 0.0f);
  return absl::OkStatus();
}

KvLayerView CpuBackend::kv_layer(int layer) const {
  const int64_t layer_bytes =
      kv_shape_.layer_elements() * DTypeBlockBytes(kv_shape_.dtype);
  uint8_t* base = kv_cache_->data() + 2 * layer * layer_bytes;
  return KvLayerView{base, base + layer_bytes};
}

absl::Status CpuBackend::CopyKvBlocks(absl::Span<const int32_t> src,
                                      absl::Span<const int32_t> dst) {
  if (src.size() != dst.size()) {
    return ShapeError("CopyKvBlocks", "src and dst differ in length");
  }
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] < 0 || src[i] >= kv_shape_.num_blocks || dst[i] < 0 ||
        dst[i] >= kv_shape_.num_blocks) {
      return ShapeError("CopyKvBlocks", "block id out of range");
    }
  }
  const int64_t block = kv_shape_.block_elements() * DTypeBlockBytes(kv_shape_.dtype);
  for (int layer = 0; layer < kv_shape_.num_layers; ++layer) {
    const KvLayerView view = kv_layer(layer);
    for (uint8_t* base : {static_cast<uint8_t*>(view.k), static_cast<uint8_t*>(view.v)}) {
      for (size_t i = 0; i < src.size(); ++i) {
        if (src[i] == dst[i]) continue;  // memcpy onto itself is undefined
        std::memcpy(base + dst[i] * block, base + src[i] * block, block);
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BatchView> CpuBackend::StageBatch(const BatchMetadata& batch) {
  if (kv_cache_ == nullptr) {
    return absl::FailedPreconditionError("StageBatch before AllocateKvCache");
  }
  if (auto status = ValidateBatch(batch, kv_shape_); !status.ok()) {
    return status;
  }
  BatchView view;
  view.num_tokens = batch.num_tokens();
  view.num_seqs = batch.num_seqs();
  view.num_logits = static_cast<int>(batch.logits_rows.size());
  for (int s = 0; s < view.num_seqs; ++s) {
    const int q_len = batch.query_indptr[s + 1] - batch.query_indptr[s];
    const int context_len =
        (batch.kv_indptr[s + 1] - batch.kv_indptr[s] - 1) *
            kv_shape_.block_size +
        batch.kv_last_block_len[s];
    view.max_query_len = std::max(view.max_query_len, q_len);
    view.max_context_len = std::max(view.max_context_len, context_len);
  }
  view.token_ids = batch.token_ids.data();
  view.positions = batch.positions.data();
  view.slot_mapping = batch.slot_mapping.data();
  view.query_indptr = batch.query_indptr.data();
  view.kv_indptr = batch.kv_indptr.data();
  view.kv_indices = batch.kv_indices.data();
  view.kv_last_block_len = batch.kv_last_block_len.data();
  view.logits_rows = batch.logits_rows.data();
  return view;
}

absl::Status CpuBackend::Embedding(const Tensor& table, const BatchView& batch,
                                   Tensor* out) {
  if (!IsF32(*out) || out->cols != table.cols || out->rows < batch.num_tokens) {
    return ShapeError("Embedding", "output shape does not match the table");
  }
  for (int t = 0; t < batch.num_tokens; ++t) {
    const int32_t id = batch.token_ids[t];
    if (id < 0 || id >= table.rows) {
      return ShapeError("Embedding",
                        absl::StrCat("token id ", id, " is outside the ",
                                     table.rows, "-entry table"));
    }
    DequantizeRow(table.dtype, table.Rows(id, 1).data, F32(out) + t * out->cols,
                  table.cols);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::RmsNorm(const Tensor& x, const Tensor& weight,
                                 float eps, Tensor* out) {
  if (!IsF32(x) || !IsF32(weight) || !IsF32(*out) || weight.cols != x.cols ||
      out->cols != x.cols || out->rows < x.rows) {
    return ShapeError("RmsNorm", "shapes or dtypes do not match");
  }
  for (int64_t r = 0; r < x.rows; ++r) {
    RmsNormRow(F32(x) + r * x.cols, F32(weight), x.cols, eps,
               F32(out) + r * x.cols);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::AddRmsNorm(Tensor* residual, const Tensor& x,
                                    const Tensor& weight, float eps,
                                    Tensor* out) {
  if (!IsF32(*residual) || !IsF32(x) || residual->cols != x.cols ||
      residual->rows != x.rows) {
    return ShapeError("AddRmsNorm", "residual and x differ");
  }
  // RmsNorm's checks first: a refused call leaves the residual as it was.
  if (!IsF32(weight) || !IsF32(*out) || weight.cols != x.cols || out->cols != x.cols ||
      out->rows < x.rows) {
    return ShapeError("AddRmsNorm", "weight or out does not match");
  }
  float* r = F32(residual);
  const float* xs = F32(x);
  for (int64_t i = 0; i < x.num_elements(); ++i) r[i] += xs[i];
  return RmsNorm(*residual, weight, eps, out);
}

absl::Status CpuBackend::MatMul(const Tensor& x, const Tensor& w,
                                const Tensor* bias, Tensor* y) {
  if (!IsF32(x) || !IsF32(*y) || x.cols != w.cols || y->cols != w.rows ||
      y->rows < x.rows || (bias != nullptr && (!IsF32(*bias) ||
                                               bias->cols != w.rows))) {
    return ShapeError("MatMul",
                      absl::StrCat("x [", x.rows, ", ", x.cols, "] · w [",
                                   w.rows, ", ", w.cols, "]ᵀ → y [", y->rows,
                                   ", ", y->cols, "] do not fit"));
  }
  if (static_cast<int64_t>(row_scratch_.size()) < w.cols) {
    return ShapeError("MatMul", "weight was not uploaded through this backend");
  }
  // Dequantize each weight row once and use it for every row of x.
  float* w_row = row_scratch_.data();
  for (int64_t m = 0; m < w.rows; ++m) {
    DequantizeRow(w.dtype, w.Rows(m, 1).data, w_row, w.cols);
    const float b = bias != nullptr ? F32(*bias)[m] : 0.0f;
    for (int64_t n = 0; n < x.rows; ++n) {
      F32(y)[n * y->cols + m] = Dot(F32(x) + n * x.cols, w_row, w.cols) + b;
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::RopeAndWriteKv(const RopeParams& rope,
                                        const AttentionParams& attention,
                                        const BatchView& batch, Tensor* q,
                                        Tensor* k, const Tensor& v,
                                        KvLayerView layer) {
  const int head_dim = attention.head_dim;
  const int half = rope.rotary_dim / 2;
  if (head_dim != kv_shape_.head_dim ||
      attention.num_kv_heads != kv_shape_.num_kv_heads ||
      rope.rotary_dim > head_dim || rope.rotary_dim % 2 != 0 ||
      rope.inv_freq.cols < half ||
      q->cols != int64_t{attention.num_q_heads} * head_dim ||
      k->cols != int64_t{attention.num_kv_heads} * head_dim ||
      v.cols != k->cols || q->rows < batch.num_tokens ||
      k->rows < batch.num_tokens || v.rows < batch.num_tokens) {
    return ShapeError("RopeAndWriteKv", "shapes do not match the cache");
  }
  const float* inv_freq = F32(rope.inv_freq);
  auto rotate = [&](float* head, int32_t position) {
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(position) * inv_freq[i];
      const float c = std::cos(angle), s = std::sin(angle);
      const int a = rope.style == RopeStyle::kNeox ? i : 2 * i;
      const int b = rope.style == RopeStyle::kNeox ? i + half : 2 * i + 1;
      const float x1 = head[a], x2 = head[b];
      head[a] = x1 * c - x2 * s;
      head[b] = x2 * c + x1 * s;
    }
  };
  const int64_t block_size = kv_shape_.block_size;
  for (int t = 0; t < batch.num_tokens; ++t) {
    const int32_t position = batch.positions[t];
    for (int h = 0; h < attention.num_q_heads; ++h) {
      rotate(F32(q) + t * q->cols + h * head_dim, position);
    }
    const int64_t block = batch.slot_mapping[t] / block_size;
    const int64_t offset = batch.slot_mapping[t] % block_size;
    for (int h = 0; h < attention.num_kv_heads; ++h) {
      float* k_head = F32(k) + t * k->cols + h * head_dim;
      rotate(k_head, position);
      const int64_t dst =
          ((block * attention.num_kv_heads + h) * block_size + offset) *
          head_dim;
      WriteKvRow(kv_shape_.dtype, k_head, head_dim, layer.k, dst);
      WriteKvRow(kv_shape_.dtype, F32(v) + t * v.cols + h * head_dim, head_dim,
                 layer.v, dst);
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::PagedAttention(const AttentionParams& attention,
                                        const BatchView& batch,
                                        const Tensor& q, KvLayerView layer,
                                        Tensor* out) {
  const int head_dim = attention.head_dim;
  // The cache's head count too: another would index past each block.
  if (attention.num_kv_heads <= 0 || attention.num_q_heads <= 0 ||
      attention.num_kv_heads != kv_shape_.num_kv_heads ||
      attention.num_q_heads % attention.num_kv_heads != 0 ||
      head_dim != kv_shape_.head_dim ||
      q.cols != int64_t{attention.num_q_heads} * head_dim || q.rows < batch.num_tokens ||
      out->cols != q.cols || out->rows < batch.num_tokens) {
    return ShapeError("PagedAttention", "shapes do not match the cache");
  }
  const int group = attention.num_q_heads / attention.num_kv_heads;
  const int64_t block_size = kv_shape_.block_size;
  float* scores = score_scratch_.data();
  float* kv_row = kv_row_scratch_.data();
  auto read = [&](const void* cache, int64_t at) {
    return ReadKvRow(kv_shape_.dtype, cache, at, head_dim, kv_row);
  };
  for (int s = 0; s < batch.num_seqs; ++s) {
    const int q_begin = batch.query_indptr[s];
    const int q_len = batch.query_indptr[s + 1] - q_begin;
    const int32_t* blocks = batch.kv_indices + batch.kv_indptr[s];
    const int num_blocks = batch.kv_indptr[s + 1] - batch.kv_indptr[s];
    const int context_len =
        (num_blocks - 1) * block_size + batch.kv_last_block_len[s];
    for (int i = 0; i < q_len; ++i) {
      const int t = q_begin + i;
      const int visible = context_len - q_len + i + 1;  // causal
      for (int h = 0; h < attention.num_q_heads; ++h) {
        const int kv_head = h / group;
        const float* q_head = F32(q) + t * q.cols + h * head_dim;
        auto slot = [&](int position) {
          return ((blocks[position / block_size] * int64_t{attention.num_kv_heads} +
                   kv_head) * block_size + position % block_size) * head_dim;
        };
        float max_score = -INFINITY;
        for (int j = 0; j < visible; ++j) {
          scores[j] = Dot(q_head, read(layer.k, slot(j)), head_dim) * attention.scale;
          max_score = std::max(max_score, scores[j]);
        }
        double denominator = 0;
        for (int j = 0; j < visible; ++j) {
          scores[j] = std::exp(scores[j] - max_score);
          denominator += scores[j];
        }
        float* o = F32(out) + t * out->cols + h * head_dim;
        std::fill(o, o + head_dim, 0.0f);
        const float inv = static_cast<float>(1.0 / denominator);
        for (int j = 0; j < visible; ++j) {
          const float weight = scores[j] * inv;
          const float* v_row = read(layer.v, slot(j));
          for (int d = 0; d < head_dim; ++d) o[d] += weight * v_row[d];
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::SiluMul(const Tensor& gate, const Tensor& up,
                                 Tensor* out) {
  if (!IsF32(gate) || !IsF32(up) || !IsF32(*out) || gate.cols != up.cols ||
      gate.rows != up.rows || out->cols != gate.cols || out->rows < gate.rows) {
    return ShapeError("SiluMul", "shapes do not match");
  }
  const float* g = F32(gate);
  const float* u = F32(up);
  for (int64_t i = 0; i < gate.num_elements(); ++i) {
    F32(out)[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::GatherRows(const Tensor& x, const BatchView& batch,
                                    Tensor* out) {
  if (!IsF32(x) || !IsF32(*out) || out->cols != x.cols ||
      out->rows < batch.num_logits || x.rows < batch.num_tokens) {
    return ShapeError("GatherRows", "shapes do not match");
  }
  for (int i = 0; i < batch.num_logits; ++i) {
    std::memcpy(F32(out) + i * x.cols, F32(x) + batch.logits_rows[i] * x.cols,
                x.cols * sizeof(float));
  }
  return absl::OkStatus();
}

}  // namespace weft
