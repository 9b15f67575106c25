// CudaBackend: creation, memory (weights, activations, KV cache), batch
// staging and the host-side plans of the attention kernels. The ops are in
// cuda_ops.cc.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/w4_pack.h"

namespace weft {
namespace {

cudaStream_t AsStream(void* s) { return static_cast<cudaStream_t>(s); }

int64_t AlignUp(int64_t bytes) { return (bytes + 15) / 16 * 16; }

// Where each array of a staged batch lies in the staging buffers, for the
// given counts (the same function sizes the buffers from the capacities).
struct StagingLayout {
  int64_t token_ids, positions, slot_mapping, query_indptr, kv_indptr,
      kv_indices, kv_last_block_len, logits_rows, token_seq, decode_items,
      prefill_tiles, total;
};

StagingLayout LayoutFor(int64_t num_tokens, int64_t num_seqs,
                        int64_t num_kv_indices, int64_t num_logits,
                        int64_t num_decode_items, int64_t num_tiles) {
  StagingLayout l;
  int64_t at = 0;
  auto place = [&](int64_t bytes) {
    const int64_t offset = at;
    at += AlignUp(bytes);
    return offset;
  };
  l.token_ids = place(num_tokens * 4);
  l.positions = place(num_tokens * 4);
  l.slot_mapping = place(num_tokens * 8);
  l.query_indptr = place((num_seqs + 1) * 4);
  l.kv_indptr = place((num_seqs + 1) * 4);
  l.kv_indices = place(num_kv_indices * 4);
  l.kv_last_block_len = place(num_seqs * 4);
  l.logits_rows = place(num_logits * 4);
  l.token_seq = place(num_tokens * 4);
  l.decode_items = place(num_decode_items * 4);
  l.prefill_tiles = place(num_tiles * 2 * 4);
  l.total = at;
  return l;
}

int64_t MaxPrefillTiles(int64_t num_tokens, int64_t num_seqs) {
  return num_tokens / cuda::kPrefillTileRows + num_seqs + 1;
}

void FreeDevice(void*& p) {
  if (p != nullptr) cudaFree(p);  // teardown: nothing to report to
  p = nullptr;
}

}  // namespace

absl::Status CudaBackendConfig::Validate() const {
  if (device < 0 || max_num_tokens <= 0 || max_num_seqs <= 0 ||
      max_kv_indices < 0 || prefill_min_query_len < 1 ||
      split_chunk_tokens < 0 || max_decode_splits < 1 ||
      max_decode_splits > 1024 || split_scratch_bytes < 0 ||
      cublas_workspace_bytes < 0 || !(gemm_min_speedup >= 1.0)) {
    return absl::InvalidArgumentError("CudaBackendConfig: a size is out of range");
  }
  // With splitting on, a long context needs the split scratch (PagedAttention
  // fails without it, and so does capturing the split graph variant).
  if (split_chunk_tokens > 0 && max_decode_splits > 1 && split_scratch_bytes < 4) {
    return absl::InvalidArgumentError(
        "CudaBackendConfig: split decode needs split_scratch_bytes >= 4 "
        "(or split_chunk_tokens 0 to turn splitting off)");
  }
  // Without a workspace of its own cuBLAS allocates one in a step, which a
  // graph capture does not allow.
  if (cublas_workspace_bytes == 0) {
    return absl::InvalidArgumentError(
        "CudaBackendConfig: cublas_workspace_bytes must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const CudaBackendConfig& config) {
  WEFT_RETURN_IF_ERROR_STATUS(config.Validate());
  auto info = QueryCudaDevice(config.device);
  if (!info.ok()) return info.status();
  std::unique_ptr<CudaBackend> backend(new CudaBackend(config));
  backend->num_sms_ = info->multiprocessors;
  backend->description_ = absl::StrFormat(
      "cuda (%s, sm_%d%d, %d SMs, %.0f GiB)", info->name, info->compute_major,
      info->compute_minor, info->multiprocessors,
      info->total_memory_bytes / double(int64_t{1} << 30));
  WEFT_RETURN_IF_ERROR_STATUS(backend->Init());
  return backend;
}

absl::Status CudaBackend::Init() {
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  cudaStream_t stream;
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
  cudaEvent_t event;
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  staged_event_ = event;
  cublasHandle_t handle;
  WEFT_CUBLAS_RETURN_IF_ERROR(cublasCreate(&handle));
  cublas_ = handle;
  WEFT_CUBLAS_RETURN_IF_ERROR(cublasSetStream(handle, stream));
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaMalloc(&cublas_workspace_, config_.cublas_workspace_bytes));
  WEFT_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(
      handle, cublas_workspace_, config_.cublas_workspace_bytes));
  return absl::OkStatus();
}

CudaBackend::~CudaBackend() {
  // Teardown: errors have nowhere to go; a sticky error makes these no-ops.
  if (capturing_) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(AsStream(stream_), &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
  if (stream_ != nullptr) cudaStreamSynchronize(AsStream(stream_));
  for (auto& [key, graph] : graphs_) {
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph.exec));
  }
  if (cublas_ != nullptr) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  for (void*& p : allocations_) FreeDevice(p);
  FreeDevice(cublas_workspace_);
  FreeDevice(upload_staging_);
  FreeDevice(matmul_x_);
  FreeDevice(w4_scratch_);
  FreeDevice(kv_cache_);
  FreeDevice(staging_device_);
  void* split = split_scratch_;
  FreeDevice(split);
  void* argmax = argmax_ids_;
  FreeDevice(argmax);
  if (staging_host_ != nullptr) cudaFreeHost(staging_host_);
  if (staged_event_ != nullptr) {
    cudaEventDestroy(static_cast<cudaEvent_t>(staged_event_));
  }
  if (stream_ != nullptr) cudaStreamDestroy(AsStream(stream_));
}

absl::StatusOr<void*> CudaBackend::DeviceAlloc(int64_t bytes) {
  void* p = nullptr;
  WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<int64_t>(bytes, 16)));
  allocations_.push_back(p);
  return p;
}

absl::StatusOr<Tensor> CudaBackend::UploadWeight(DType dtype, int64_t rows,
                                                 int64_t cols,
                                                 const void* host) {
  if (rows <= 0 || cols <= 0 || cols % DTypeBlockElements(dtype) != 0 ||
      host == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("UploadWeight: bad shape ", rows, "x", cols, " for ",
                     DTypeName(dtype)));
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  if (config_.weight_format == CudaWeightFormat::kInt4 && rows > 1 &&
      cols % 64 == 0 &&
      (CanRepackToW4(dtype) || dtype == DType::kF32 || dtype == DType::kF16 ||
       dtype == DType::kBF16)) {
    return UploadW4(dtype, rows, cols, host);
  }
  cudaStream_t stream = AsStream(stream_);
  const int64_t host_bytes = rows * RowBytes(dtype, cols);
  if (dtype == DType::kF32 && rows == 1) {
    // Norm weights, biases and RoPE frequencies: read by the ops in fp32.
    auto p = DeviceAlloc(host_bytes);
    if (!p.ok()) return p.status();
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(*p, host, host_bytes,
                                              cudaMemcpyHostToDevice, stream));
    WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return Tensor{DType::kF32, rows, cols, *p};
  }
  auto dst = DeviceAlloc(rows * cols * 2);
  if (!dst.ok()) return dst.status();
  if (dtype == DType::kBF16) {
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(*dst, host, host_bytes,
                                              cudaMemcpyHostToDevice, stream));
  } else {
    if (upload_staging_bytes_ < host_bytes) {
      WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
      FreeDevice(upload_staging_);
      upload_staging_bytes_ = 0;
      WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&upload_staging_, host_bytes));
      upload_staging_bytes_ = host_bytes;
    }
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(upload_staging_, host,
                                              host_bytes,
                                              cudaMemcpyHostToDevice, stream));
    WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchToBf16(
        dtype, upload_staging_, rows * cols, static_cast<uint16_t*>(*dst),
        stream));
  }
  WEFT_RETURN_IF_ERROR_STATUS(PlanMatMulX(cols));
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  RegisterGemmShape(rows, cols, *dst, /*w4=*/false);
  return Tensor{DType::kBF16, rows, cols, *dst};
}

absl::StatusOr<Tensor> CudaBackend::Allocate(DType dtype, int64_t rows,
                                             int64_t cols) {
  if (rows <= 0 || cols <= 0 || cols % DTypeBlockElements(dtype) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Allocate: bad shape ", rows, "x", cols));
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  auto p = DeviceAlloc(rows * RowBytes(dtype, cols));
  if (!p.ok()) return p.status();
  return Tensor{dtype, rows, cols, *p};
}

absl::Status CudaBackend::CopyToHost(const Tensor& src, float* dst) {
  cudaStream_t stream = AsStream(stream_);
  const int64_t n = src.num_elements();
  if (src.dtype == DType::kF32) {
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src.data, n * 4,
                                              cudaMemcpyDeviceToHost, stream));
  } else if (src.dtype == DType::kBF16) {
    std::vector<uint16_t> bits(n);
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(bits.data(), src.data, n * 2,
                                              cudaMemcpyDeviceToHost, stream));
    WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(bits[i]);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "CopyToHost: the CUDA backend holds no ", DTypeName(src.dtype)));
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return absl::OkStatus();
}

absl::Status CudaBackend::ArgMaxRowsToHost(const Tensor& x, int32_t* ids) {
  if (x.dtype != DType::kF32 || x.cols < 1) {
    return absl::InvalidArgumentError("ArgMaxRowsToHost: x must be F32");
  }
  if (argmax_ids_ == nullptr || x.rows > config_.max_num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ArgMaxRowsToHost: ", x.rows, " rows, planned for ",
        argmax_ids_ == nullptr ? 0 : config_.max_num_tokens));
  }
  if (x.rows == 0) return absl::OkStatus();
  cudaStream_t stream = AsStream(stream_);
  WEFT_CUDA_RETURN_IF_ERROR(cuda::LaunchArgMaxRows(
      static_cast<const float*>(x.data), x.rows, x.cols, argmax_ids_, stream));
  WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(ids, argmax_ids_, x.rows * 4,
                                            cudaMemcpyDeviceToHost, stream));
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return absl::OkStatus();
}

absl::Status CudaBackend::CopyFromHost(const float* src, Tensor* dst) {
  cudaStream_t stream = AsStream(stream_);
  const int64_t n = dst->num_elements();
  if (dst->dtype == DType::kF32) {
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst->data, src, n * 4,
                                              cudaMemcpyHostToDevice, stream));
  } else if (dst->dtype == DType::kBF16) {
    std::vector<uint16_t> bits(n);
    for (int64_t i = 0; i < n; ++i) bits[i] = FloatToBf16(src[i]);
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst->data, bits.data(), n * 2,
                                              cudaMemcpyHostToDevice, stream));
    WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  } else {
    return absl::InvalidArgumentError("CopyFromHost: destination not F32/BF16");
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return absl::OkStatus();
}

absl::Status CudaBackend::AllocateKvCache(const KvCacheShape& shape) {
  if (shape.dtype != DType::kBF16) {
    return absl::UnimplementedError(
        "the CUDA backend keeps its KV cache in BF16");
  }
  if (shape.num_layers <= 0 || shape.num_blocks <= 0 ||
      shape.block_size <= 0 || shape.num_kv_heads <= 0 ||
      shape.head_dim <= 0) {
    return absl::InvalidArgumentError(
        "AllocateKvCache: every dimension must be positive");
  }
  if (!CudaAttentionSupportsHeadDim(shape.head_dim)) {
    return absl::UnimplementedError(absl::StrCat(
        "the CUDA attention kernels support head_dim 64 and 128, not ",
        shape.head_dim));
  }
  WEFT_RETURN_IF_ERROR_STATUS(CheckNoGraphs("AllocateKvCache"));
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  cudaStream_t stream = AsStream(stream_);
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  FreeDevice(kv_cache_);
  FreeDevice(upload_staging_);  // loading is over
  upload_staging_bytes_ = 0;
  const int64_t bytes = shape.total_elements() * 2;
  WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&kv_cache_, bytes));
  WEFT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(kv_cache_, 0, bytes, stream));
  kv_shape_ = shape;
  WEFT_RETURN_IF_ERROR_STATUS(PlanStaging());
  void* split = split_scratch_;
  FreeDevice(split);
  split_scratch_ = nullptr;
  split_scratch_floats_ = config_.split_scratch_bytes / 4;
  if (split_scratch_floats_ > 0) {
    WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&split, split_scratch_floats_ * 4));
    split_scratch_ = static_cast<float*>(split);
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return absl::OkStatus();
}

absl::Status CudaBackend::PlanStaging() {
  max_kv_indices_ = config_.max_kv_indices;
  if (max_kv_indices_ == 0) {
    max_kv_indices_ = std::min<int64_t>(
        int64_t{config_.max_num_seqs} * kv_shape_.num_blocks, int64_t{1} << 24);
  }
  const int64_t t = config_.max_num_tokens, s = config_.max_num_seqs;
  const StagingLayout layout =
      LayoutFor(t, s, max_kv_indices_, t, t, MaxPrefillTiles(t, s));
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaEventSynchronize(static_cast<cudaEvent_t>(staged_event_)));
  FreeDevice(staging_device_);
  if (staging_host_ != nullptr) {
    WEFT_CUDA_RETURN_IF_ERROR(cudaFreeHost(staging_host_));
    staging_host_ = nullptr;
  }
  staging_bytes_ = 0;
  WEFT_CUDA_RETURN_IF_ERROR(cudaMallocHost(&staging_host_, layout.total));
  WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&staging_device_, layout.total));
  staging_bytes_ = layout.total;
  void* argmax = argmax_ids_;
  FreeDevice(argmax);
  argmax_ids_ = nullptr;
  WEFT_CUDA_RETURN_IF_ERROR(cudaMalloc(&argmax, t * 4));
  argmax_ids_ = static_cast<int32_t*>(argmax);
  staged_ = CudaStagedBatch();
  staged_.host_token_ids.reserve(t);
  return absl::OkStatus();
}

KvLayerView CudaBackend::kv_layer(int layer) const {
  if (kv_cache_ == nullptr || layer < 0 || layer >= kv_shape_.num_layers) {
    return KvLayerView{};
  }
  uint16_t* base = static_cast<uint16_t*>(kv_cache_) +
                   2 * int64_t{layer} * kv_shape_.layer_elements();
  return KvLayerView{base, base + kv_shape_.layer_elements()};
}

absl::Status CudaBackend::CopyKvBlocks(absl::Span<const int32_t> src,
                                       absl::Span<const int32_t> dst) {
  if (src.size() != dst.size()) {
    return absl::InvalidArgumentError("CopyKvBlocks: src and dst differ in length");
  }
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] < 0 || src[i] >= kv_shape_.num_blocks || dst[i] < 0 ||
        dst[i] >= kv_shape_.num_blocks) {
      return absl::InvalidArgumentError("CopyKvBlocks: block id out of range");
    }
  }
  cudaStream_t stream = AsStream(stream_);
  const int64_t block_bytes = kv_shape_.block_elements() * 2;
  // One stream: copy i + 1 starts after copy i, as the interface requires.
  for (int layer = 0; layer < kv_shape_.num_layers; ++layer) {
    const KvLayerView view = kv_layer(layer);
    for (void* base_ptr : {view.k, view.v}) {
      auto* base = static_cast<uint8_t*>(base_ptr);
      for (size_t i = 0; i < src.size(); ++i) {
        WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
            base + dst[i] * block_bytes, base + src[i] * block_bytes,
            block_bytes, cudaMemcpyDeviceToDevice, stream));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BatchView> CudaBackend::StageBatch(const BatchMetadata& batch) {
  return Stage(batch, /*variant=*/-2);
}

absl::StatusOr<BatchView> CudaBackend::StageBatchForGraph(
    const BatchMetadata& batch, int variant) {
  if (variant < -1 || variant >= NumGraphVariants()) {
    return absl::InvalidArgumentError(
        absl::StrCat("StageBatchForGraph: no graph variant ", variant));
  }
  return Stage(batch, variant);
}

absl::StatusOr<BatchView> CudaBackend::Stage(const BatchMetadata& batch,
                                             int variant) {
  const bool for_graph = variant >= -1;
  if (kv_cache_ == nullptr) {
    return absl::FailedPreconditionError("StageBatch before AllocateKvCache");
  }
  if (capturing_) {
    // Its copies would be recorded into the graph, not run now.
    return absl::FailedPreconditionError(
        "StageBatch while a CUDA graph is being captured");
  }
  // From here until this call succeeds no batch is staged: a view from
  // before fails CheckStaged and a failure leaves nothing half-valid (a
  // Replay after a failed StageBatchForGraph cannot rerun the old batch).
  staged_.view = BatchView{};
  staged_.for_graph = false;
  WEFT_RETURN_IF_ERROR_STATUS(ValidateBatch(batch, kv_shape_));
  const int num_tokens = batch.num_tokens();
  const int num_seqs = batch.num_seqs();
  const int64_t num_indices = static_cast<int64_t>(batch.kv_indices.size());
  const int num_logits = static_cast<int>(batch.logits_rows.size());
  if (num_tokens > config_.max_num_tokens || num_seqs > config_.max_num_seqs ||
      num_indices > max_kv_indices_ || num_logits > config_.max_num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch of ", num_tokens, " tokens, ", num_seqs, " sequences, ",
        num_indices, " block-table entries and ", num_logits,
        " logits rows is larger than planned (", config_.max_num_tokens, ", ",
        config_.max_num_seqs, ", ", max_kv_indices_, ", ",
        config_.max_num_tokens, ")"));
  }
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  // The previous batch's copy must have left the pinned buffer.
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaEventSynchronize(static_cast<cudaEvent_t>(staged_event_)));

  // Work lists of the two attention kernels.
  CudaStagedBatch& st = staged_;
  BatchView view;
  view.num_tokens = num_tokens;
  view.num_seqs = num_seqs;
  view.num_logits = num_logits;
  int num_decode = 0, num_tiles = 0, max_decode_context = 0;
  uint8_t* host = static_cast<uint8_t*>(staging_host_);
  // Sizes are only known after counting; count first, then lay out.
  for (int s = 0; s < num_seqs; ++s) {
    const int q_len = batch.query_indptr[s + 1] - batch.query_indptr[s];
    if (q_len >= config_.prefill_min_query_len) {
      num_tiles += (q_len + cuda::kPrefillTileRows - 1) / cuda::kPrefillTileRows;
    } else {
      num_decode += q_len;
    }
  }
  // A graph-staged batch uses the planned (largest) layout, whose offsets
  // never change, and copies each array's used part; otherwise the arrays
  // are packed for their counts and copied in one transfer.
  const int64_t t_cap = config_.max_num_tokens, s_cap = config_.max_num_seqs;
  const StagingLayout layout =
      for_graph ? LayoutFor(t_cap, s_cap, max_kv_indices_, t_cap, t_cap,
                            MaxPrefillTiles(t_cap, s_cap))
                : LayoutFor(num_tokens, num_seqs, num_indices, num_logits,
                            num_decode, num_tiles);
  // (offset, bytes) of each array, copied one by one for a graph.
  std::array<std::pair<int64_t, int64_t>, 11> segments;
  int num_segments = 0;
  auto put = [&](int64_t offset, const void* data, int64_t bytes) {
    if (bytes > 0) std::memcpy(host + offset, data, bytes);
    segments[num_segments++] = {offset, bytes};
  };
  put(layout.token_ids, batch.token_ids.data(), num_tokens * 4);
  put(layout.positions, batch.positions.data(), num_tokens * 4);
  put(layout.slot_mapping, batch.slot_mapping.data(), num_tokens * 8);
  put(layout.query_indptr, batch.query_indptr.data(), (num_seqs + 1) * 4);
  put(layout.kv_indptr, batch.kv_indptr.data(), (num_seqs + 1) * 4);
  put(layout.kv_indices, batch.kv_indices.data(), num_indices * 4);
  put(layout.kv_last_block_len, batch.kv_last_block_len.data(), num_seqs * 4);
  put(layout.logits_rows, batch.logits_rows.data(), num_logits * 4);
  auto* token_seq = reinterpret_cast<int32_t*>(host + layout.token_seq);
  auto* decode_items = reinterpret_cast<int32_t*>(host + layout.decode_items);
  auto* tiles = reinterpret_cast<int32_t*>(host + layout.prefill_tiles);
  int decode_at = 0, tile_at = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int q_begin = batch.query_indptr[s];
    const int q_len = batch.query_indptr[s + 1] - q_begin;
    const int context_len =
        (batch.kv_indptr[s + 1] - batch.kv_indptr[s] - 1) *
            kv_shape_.block_size +
        batch.kv_last_block_len[s];
    view.max_query_len = std::max(view.max_query_len, q_len);
    view.max_context_len = std::max(view.max_context_len, context_len);
    for (int i = 0; i < q_len; ++i) token_seq[q_begin + i] = s;
    if (q_len >= config_.prefill_min_query_len) {
      // Last tile first: later tiles see more context, and starting the
      // longest blocks first shortens the grid's tail.
      const int last_first =
          (q_len - 1) / cuda::kPrefillTileRows * cuda::kPrefillTileRows;
      for (int first = last_first; first >= 0;
           first -= cuda::kPrefillTileRows) {
        tiles[2 * tile_at] = s;
        tiles[2 * tile_at + 1] = first;
        ++tile_at;
      }
    } else {
      for (int i = 0; i < q_len; ++i) decode_items[decode_at++] = q_begin + i;
      max_decode_context = std::max(max_decode_context, context_len);
    }
  }
  cudaStream_t stream = AsStream(stream_);
  if (for_graph) {
    segments[num_segments++] = {layout.token_seq, int64_t{num_tokens} * 4};
    segments[num_segments++] = {layout.decode_items, int64_t{num_decode} * 4};
    segments[num_segments++] = {layout.prefill_tiles, int64_t{num_tiles} * 8};
    for (int i = 0; i < num_segments; ++i) {
      const auto [offset, bytes] = segments[i];
      if (bytes == 0) continue;
      WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
          static_cast<uint8_t*>(staging_device_) + offset, host + offset,
          bytes, cudaMemcpyHostToDevice, stream));
    }
    // The split count a replay launches with must not depend on the
    // batch's contents: one (variant 0) or the most (variant 1).
    if (variant == -1) {
      variant = NumGraphVariants() > 1 &&
                        max_decode_context > config_.split_chunk_tokens
                    ? 1
                    : 0;
    }
    staged_variant_ = variant;
    max_decode_context = variant == 1 ? 1 << 30 : 1;
  } else {
    WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(staging_device_, staging_host_,
                                              layout.total,
                                              cudaMemcpyHostToDevice, stream));
  }
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaEventRecord(static_cast<cudaEvent_t>(staged_event_), stream));

  auto* device = static_cast<uint8_t*>(staging_device_);
  auto at = [&](int64_t offset) {
    return reinterpret_cast<const int32_t*>(device + offset);
  };
  view.token_ids = at(layout.token_ids);
  view.positions = at(layout.positions);
  view.slot_mapping =
      reinterpret_cast<const int64_t*>(device + layout.slot_mapping);
  view.query_indptr = at(layout.query_indptr);
  view.kv_indptr = at(layout.kv_indptr);
  view.kv_indices = at(layout.kv_indices);
  view.kv_last_block_len = at(layout.kv_last_block_len);
  view.logits_rows = at(layout.logits_rows);
  st.view = view;
  st.num_decode_items = num_decode;
  st.max_decode_context = max_decode_context;
  st.num_prefill_tiles = num_tiles;
  st.token_seq = at(layout.token_seq);
  st.decode_items = at(layout.decode_items);
  st.prefill_tiles = at(layout.prefill_tiles);
  st.host_token_ids.assign(batch.token_ids.begin(), batch.token_ids.end());
  st.for_graph = for_graph;
  return view;
}

absl::Status CudaBackend::CheckStaged(const BatchView& batch,
                                      absl::string_view op) const {
  // Every array: token_ids sits at offset 0 in both layouts, the others
  // move with the counts of the batch they were laid out for.
  const BatchView& s = staged_.view;
  if (batch.token_ids == nullptr || batch.token_ids != s.token_ids ||
      batch.positions != s.positions || batch.slot_mapping != s.slot_mapping ||
      batch.query_indptr != s.query_indptr || batch.kv_indptr != s.kv_indptr ||
      batch.kv_indices != s.kv_indices ||
      batch.kv_last_block_len != s.kv_last_block_len ||
      batch.logits_rows != s.logits_rows || batch.num_tokens != s.num_tokens ||
      batch.num_seqs != s.num_seqs || batch.num_logits != s.num_logits) {
    return absl::FailedPreconditionError(absl::StrCat(
        op, ": the batch is not the one this backend staged last"));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::Synchronize() {
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(AsStream(stream_)));
  return absl::OkStatus();
}

absl::Status CudaBackend::CopyDeviceToDevice(void* dst, const void* src,
                                             int64_t bytes) {
  WEFT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes,
                                            cudaMemcpyDeviceToDevice,
                                            AsStream(stream_)));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(
    const CudaBackendConfig& config, std::string* description) {
  auto backend = CudaBackend::Create(config);
  if (!backend.ok()) return backend.status();
  if (description != nullptr) *description = (*backend)->description();
  return std::unique_ptr<Backend>(std::move(*backend));
}

}  // namespace weft
