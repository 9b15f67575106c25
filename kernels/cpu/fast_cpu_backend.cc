#include "kernels/cpu/fast_cpu_backend.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/huge_page_buffer.h"
#include "kernels/cpu/thread_pool.h"

namespace weft {
namespace {

// Below these amounts of work an op runs on the calling thread: waking the
// pool costs about a microsecond, more than a decode step's small ops take.
constexpr int64_t kMinParallelElements = 1 << 13;
// Quantizing activations costs more per element than the other small ops
// (two levels, sums): worth a second thread from a few rows.
constexpr int64_t kMinParallelQuantizeElements = 1 << 12;
constexpr int64_t kMinParallelAttentionMacs = 1 << 16;
// Query tokens of one sequence attend in tiles of up to this many
// (AttendQueryTile), which share each transposed block of keys.
constexpr int kAttentionTileTokens = 32;
constexpr int64_t kAttentionTileScores = 1 << 15;  // 128 KiB of scores

bool HasF16c() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_F16C) != 0;
}

bool HasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         HasF16c();
}

// Batches of at least this many activation rows use AMX (fewer rows leave
// most of a 16-row tile idle; the VNNI kernel is as fast there).
constexpr int64_t kMinAmxRows = 8;

bool IsFloatWeight(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

float* F32(Tensor* t) { return static_cast<float*>(t->data); }

// Shapes and dtypes the fast matmuls take (others go to the reference op,
// which reports what is wrong).
bool MatMulShapesOk(const Tensor& x, const Tensor& w, const Tensor* bias,
                    const Tensor& y) {
  return x.dtype == DType::kF32 && y.dtype == DType::kF32 && x.cols == w.cols &&
         y.cols == w.rows && y.rows >= x.rows &&
         (bias == nullptr || (bias->dtype == DType::kF32 && bias->cols == w.rows));
}
const float* F32(const Tensor& t) { return static_cast<const float*>(t.data); }

// n elements of src into an F32 or F16 cache at element `at`.
void WriteKvRow(bool f16, const float* src, int64_t n, void* cache, int64_t at) {
  if (f16) {
    cpu::avx2::FloatsToHalves(src, n, static_cast<uint16_t*>(cache) + at);
  } else {
    std::memcpy(static_cast<float*>(cache) + at, src, n * sizeof(float));
  }
}

}  // namespace

absl::StatusOr<DType> ParseCpuKvCacheDtype(absl::string_view name,
                                           bool reference_kernels) {
  if (name == "auto") return reference_kernels ? DType::kF32 : DType::kF16;
  if (name == "f16") return DType::kF16;
  if (name == "f32") return DType::kF32;
  return absl::InvalidArgumentError(absl::StrCat(
      "--kv_cache_dtype must be auto, f16 or f32, got '", name, "'"));
}

absl::Status CpuBackendConfig::Validate() const {
  if (num_threads < 0 || num_threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threads must be in [0, 1024] (0: one per physical core), got ",
        num_threads));
  }
  if (kv_cache_dtype != DType::kF16 && kv_cache_dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("the CPU KV cache dtype must be f16 or f32, got ",
                     DTypeName(kv_cache_dtype)));
  }
  if (decode_prefetch_bytes < -1 || decode_prefetch_bytes > (1 << 16)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the decode prefetch distance must be in [0, 65536] bytes (-1: for "
        "the processor), got ", decode_prefetch_bytes));
  }
  if (decode_l2_prefetch_bytes < -1 || decode_l2_prefetch_bytes > (1 << 16)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the decode L2 prefetch distance must be in [0, 65536] bytes (0: "
        "none, -1: for the processor), got ", decode_l2_prefetch_bytes));
  }
  if (activation_levels != 1 && activation_levels != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "activation levels must be 2 (default) or 1 (llama.cpp's scheme), got ",
        activation_levels));
  }
  return absl::OkStatus();
}

struct FastCpuBackend::PackedWeight {
  std::unique_ptr<HugePageBuffer> bytes;
  bool is_float = false;
  cpu::PackedQuant packed;        // quantized weights
  cpu::PackedFloat packed_float;  // F32/F16/BF16 weights
  int64_t rows() const { return is_float ? packed_float.rows : packed.rows; }
  int64_t cols() const { return is_float ? packed_float.cols : packed.cols; }
  DType dtype() const { return is_float ? packed_float.dtype : packed.dtype; }
};

FastCpuBackend::FastCpuBackend(const CpuBackendConfig& config)
    : CpuBackend(config.kv_cache_dtype) {
  use_avx512_ = !config.force_avx2 && cpu::HasAvx512Vnni();
  use_amx_ = use_avx512_ && config.allow_amx && cpu::EnableAmx();
  use_avx_vnni_ = !use_avx512_ && config.allow_avx_vnni && cpu::HasAvxVnni();
  decode_prefetch_bytes_ = config.decode_prefetch_bytes;
  decode_l2_prefetch_bytes_ = config.decode_l2_prefetch_bytes;
  one_level_ = config.activation_levels == 1;
  isa_ = use_amx_       ? "avx512-vnni+amx"
         : use_avx512_  ? "avx512-vnni"
         : use_avx_vnni_ ? "avx2+avx-vnni"
                        : "avx2";
  const int threads =
      config.num_threads > 0 ? config.num_threads : NumPhysicalCores();
  pool_ = std::make_unique<ThreadPool>(threads);
  thread_scores_.resize(threads);
  thread_partials_.resize(threads);
}

FastCpuBackend::~FastCpuBackend() = default;

absl::StatusOr<std::unique_ptr<FastCpuBackend>> FastCpuBackend::Create(
    const CpuBackendConfig& config) {
  if (auto status = config.Validate(); !status.ok()) return status;
  if (!HasAvx2()) {
    return absl::FailedPreconditionError(
        "the fast CPU backend needs AVX2, FMA and F16C; this processor lacks "
        "one of them (use the reference backend)");
  }
  return std::unique_ptr<FastCpuBackend>(new FastCpuBackend(config));
}

absl::StatusOr<std::unique_ptr<CpuBackend>> MakeCpuBackend(
    const CpuBackendConfig& config, std::string* description) {
  if (auto status = config.Validate(); !status.ok()) return status;
  if (!config.reference) {
    auto fast = FastCpuBackend::Create(config);
    if (fast.ok()) {
      if (description != nullptr) {
        *description = absl::StrCat(
            "cpu (", (*fast)->isa(), ", ", (*fast)->num_threads(), " threads, KV ",
            DTypeName(config.kv_cache_dtype),
            config.activation_levels == 1 ? ", one activation level" : "", ")");
      }
      return std::unique_ptr<CpuBackend>(std::move(*fast));
    }
    std::fprintf(stderr, "weft: %s; serving with the reference CPU kernels\n",
                 std::string(fast.status().message()).c_str());
  }
  if (description != nullptr) {
    *description = absl::StrCat("cpu (reference, 1 thread, KV ",
                                DTypeName(config.kv_cache_dtype), ")");
  }
  return std::make_unique<CpuBackend>(config.kv_cache_dtype);
}

int FastCpuBackend::num_threads() const { return pool_->num_threads(); }

absl::StatusOr<Tensor> FastCpuBackend::UploadWeight(DType dtype, int64_t rows,
                                                    int64_t cols,
                                                    const void* host) {
  if (dtype == DType::kW4) {
    // The CUDA backend's repacking; no fast CPU kernel reads it (the
    // reference CpuBackend does, row by row).
    return absl::UnimplementedError(
        "UploadWeight: the fast CPU backend has no W4 kernels");
  }
  auto tensor = CpuBackend::UploadWeight(dtype, rows, cols, host);
  if (!tensor.ok()) return tensor;
  // Float weights are packed too (16-row groups, column-major: every
  // output one multiply-add chain, on AVX2 as on AVX-512).
  const bool is_float = IsFloatWeight(dtype);
  if (!IsQuantized(dtype) && !is_float) return tensor;
  // The same weight uploaded twice (tied embeddings) is packed once.
  if (auto found = packed_.find(host);
      found != packed_.end() && found->second->dtype() == dtype &&
      found->second->rows() == rows && found->second->cols() == cols) {
    return tensor;
  }
  auto weight = std::make_unique<PackedWeight>();
  weight->is_float = is_float;
  const int64_t bytes = is_float ? cpu::PackedFloatBytes(dtype, rows, cols)
                                 : cpu::PackedQuantBytes(dtype, rows, cols);
  weight->bytes = std::make_unique<HugePageBuffer>(bytes);
  if (weight->bytes->data() == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot map ", bytes, " bytes for a packed ", DTypeName(dtype),
        " weight [", rows, ", ", cols, "]"));
  }
  const int64_t prefetch_bytes =
      decode_prefetch_bytes_ >= 0
          ? decode_prefetch_bytes_
          : cpu::DecodePrefetchBytesFor(/*quantized=*/!is_float, use_avx512_);
  if (is_float) {
    weight->packed_float =
        cpu::PackFloat(dtype, rows, cols, host, weight->bytes->data());
    weight->packed_float.prefetch_bytes = prefetch_bytes;
    weight->packed_float.next_tile_into_l2 =
        use_avx512_ && (decode_l2_prefetch_bytes_ >= 0 ? decode_l2_prefetch_bytes_ > 0
                                                       : cpu::L2PolicyFor(use_avx512_));
  } else {
    // VPDPBUSD multiplies unsigned by signed bytes: the VNNI kernels read
    // Q8_0 weights as q + 128.
    weight->packed = cpu::PackQuant(dtype, rows, cols, host,
                                    use_avx512_ || use_avx_vnni_,
                                    weight->bytes->data());
    weight->packed.prefetch_bytes = prefetch_bytes;
    weight->packed.l2_prefetch_bytes =
        decode_l2_prefetch_bytes_ >= 0
            ? decode_l2_prefetch_bytes_
            : cpu::DecodeL2PrefetchBytesFor(/*quantized=*/true, use_avx512_);
  }
  packed_[host] = std::move(weight);
  return tensor;
}

absl::Status FastCpuBackend::RmsNorm(const Tensor& x, const Tensor& weight,
                                     float eps, Tensor* out) {
  if (x.dtype != DType::kF32 || weight.dtype != DType::kF32 ||
      out->dtype != DType::kF32 || weight.cols != x.cols ||
      out->cols != x.cols || out->rows < x.rows) {
    return CpuBackend::RmsNorm(x, weight, eps, out);  // reports the error
  }
  auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      cpu::avx2::RmsNormRow(F32(x) + r * x.cols, F32(weight), x.cols, eps,
                            F32(out) + r * x.cols);
    }
  };
  if (x.num_elements() < kMinParallelElements) {
    rows(0, x.rows);
  } else {
    pool_->ParallelFor(x.rows, rows);
  }
  return absl::OkStatus();
}

absl::Status FastCpuBackend::AddRmsNorm(Tensor* residual, const Tensor& x,
                                        const Tensor& weight, float eps,
                                        Tensor* out) {
  if (residual->dtype != DType::kF32 || x.dtype != DType::kF32 ||
      weight.dtype != DType::kF32 || out->dtype != DType::kF32 ||
      residual->cols != x.cols || residual->rows != x.rows ||
      weight.cols != x.cols || out->cols != x.cols || out->rows < x.rows) {
    return CpuBackend::AddRmsNorm(residual, x, weight, eps, out);
  }
  auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      cpu::avx2::AddRmsNormRow(F32(residual) + r * x.cols, F32(x) + r * x.cols,
                               F32(weight), x.cols, eps, F32(out) + r * x.cols);
    }
  };
  if (x.num_elements() < kMinParallelElements) {
    rows(0, x.rows);
  } else {
    pool_->ParallelFor(x.rows, rows);
  }
  return absl::OkStatus();
}

absl::Status FastCpuBackend::MatMul(const Tensor& x, const Tensor& w,
                                    const Tensor* bias, Tensor* y) {
  const MatMulTarget target{&w, bias, y};
  return MatMuls(x, absl::MakeConstSpan(&target, 1));
}

const FastCpuBackend::PackedWeight* FastCpuBackend::FindPacked(
    const Tensor& w) const {
  auto found = packed_.find(w.data);
  if (found == packed_.end() || found->second->dtype() != w.dtype ||
      found->second->rows() != w.rows || found->second->cols() != w.cols) {
    return nullptr;  // e.g. a view of some rows of a weight
  }
  return found->second.get();
}

absl::Status FastCpuBackend::MatMuls(const Tensor& x,
                                     absl::Span<const MatMulTarget> targets) {
  // What every target needs: the packed quantized kernels (then x is
  // quantized once for all), the packed float ones, or a path of its own.
  if (targets.size() > kMaxMatMulTargets) {
    for (size_t i = 0; i < targets.size(); i += kMaxMatMulTargets) {
      if (absl::Status status = MatMuls(
              x, targets.subspan(i, kMaxMatMulTargets));
          !status.ok()) {
        return status;
      }
    }
    return absl::OkStatus();
  }
  if (targets.empty()) return absl::OkStatus();
  const PackedWeight* packed[kMaxMatMulTargets] = {};
  bool all_quant = true;
  bool all_float = true;
  for (size_t i = 0; i < targets.size() && (all_quant || all_float); ++i) {
    const MatMulTarget& t = targets[i];
    packed[i] =
        MatMulShapesOk(x, *t.w, t.bias, *t.y) ? FindPacked(*t.w) : nullptr;
    all_quant = all_quant && packed[i] != nullptr && !packed[i]->is_float;
    all_float = all_float && packed[i] != nullptr && packed[i]->is_float;
  }
  if (!all_quant && !all_float) {
    // Mixed kinds: each target on its own.
    for (const MatMulTarget& t : targets) {
      absl::Status status = targets.size() == 1
                                ? UnpackedMatMul(x, *t.w, t.bias, t.y)
                                : MatMuls(x, absl::MakeConstSpan(&t, 1));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  // One job over the concatenated weight groups of all targets.
  int64_t group_end[kMaxMatMulTargets];
  int64_t total_groups = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    total_groups += all_quant ? packed[i]->packed.num_groups
                              : packed[i]->packed_float.num_groups;
    group_end[i] = total_groups;
  }
  auto for_each_target = [&](int64_t begin, int64_t end, auto run) {
    int64_t first = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
      const int64_t b = std::max(begin, first) - first;
      const int64_t e = std::min(end, group_end[i]) - first;
      if (b < e) {
        const float* bias =
            targets[i].bias != nullptr ? F32(*targets[i].bias) : nullptr;
        run(*packed[i], b, e, bias, cpu::OutputRows{F32(targets[i].y),
                                                    targets[i].y->cols});
      }
      first = group_end[i];
    }
  };
  if (all_float) {
    pool_->ParallelFor(total_groups, [&](int64_t begin, int64_t end) {
      for_each_target(begin, end, [&](const PackedWeight& w, int64_t b,
                                      int64_t e, const float* bias,
                                      cpu::OutputRows out) {
        (use_avx512_ ? cpu::avx512::PackedFloatMatMul : cpu::avx2::PackedFloatMatMul)(
            w.packed_float, F32(x), x.rows, x.cols, b, e, bias, out);
      });
    }, use_avx512_ ? cpu::avx512::FloatDecodeTileGroups(x.rows)
                   : cpu::avx2::FloatDecodeTileGroups(x.rows));
    return absl::OkStatus();
  }

  // Quantize the activations once (two int8 levels per block of 32).
  const int64_t blocks = x.cols / kQuantBlockSize;
  const bool amx = use_amx_ && x.rows >= kMinAmxRows;
  // AMX and AVX-512's kernel of several rows read the activations in the
  // tile order (both levels in q, rows padded to a multiple of 16).
  const bool tile_order =
      amx || (use_avx512_ && x.rows >= cpu::avx512::kMinTileOrderRows);
  const size_t q_size = static_cast<size_t>(
      tile_order ? cpu::AmxTileBytes(x.rows, x.cols) / 2 : x.rows * x.cols);
  const size_t meta_size = static_cast<size_t>(x.rows * blocks);
  if (x_quant_.size() < 2 * q_size) x_quant_.resize(2 * q_size);
  if (x_scales_.size() < 3 * meta_size) x_scales_.resize(3 * meta_size);
  if (x_sums_.size() < 2 * meta_size) x_sums_.resize(2 * meta_size);
  int8_t* q = x_quant_.data();
  int8_t* r = tile_order ? nullptr : q + q_size;
  float* scale = x_scales_.data();
  float* scaled_sum = scale + meta_size;
  float* fine_scale = scaled_sum + meta_size;
  int32_t* sum_q = x_sums_.data();
  int32_t* sum_r = sum_q + meta_size;
  auto quantize = [&](int64_t begin, int64_t end) {
    if (use_avx512_) {
      cpu::avx512::QuantizeRows(F32(x), x.cols, x.cols, begin, end, q, r,
                                scale, scaled_sum, sum_q, sum_r, fine_scale,
                                tile_order);
    } else {
      cpu::avx2::QuantizeRows(F32(x), x.cols, x.cols, begin, end, q, r, scale,
                              scaled_sum, sum_q, sum_r, fine_scale, tile_order);
    }
    if (one_level_) {
      cpu::DropSecondLevel(x.cols, begin, end, q, r, scale, scaled_sum, sum_q, sum_r,
                           tile_order);
    }
  };
  if (x.rows < 2 || x.num_elements() < kMinParallelQuantizeElements) {
    quantize(0, x.rows);
  } else {
    pool_->ParallelFor(x.rows, quantize);
  }
  const cpu::QuantizedRows rows{x.rows,     x.cols, q,     r,          scale,
                                scaled_sum, sum_q,  sum_r, fine_scale, tile_order,
                                one_level_};
  // Ranges of whole decode tiles (in a 2-thread decode the tail tiles of
  // ranges of any size held ~15% of the samples); AMX and the kernels of
  // several rows take one group at a time.
  const int64_t grain = amx           ? 1
                       : use_avx512_ ? cpu::avx512::QuantDecodeTileGroups(x.rows)
                                     : cpu::avx2::QuantDecodeTileGroups(x.rows);
  pool_->ParallelFor(total_groups, [&](int64_t begin, int64_t end) {
    for_each_target(begin, end, [&](const PackedWeight& w, int64_t b, int64_t e,
                                    const float* bias, cpu::OutputRows out) {
      if (amx) {
        cpu::amx::QuantMatMul(w.packed, rows, b, e, bias, out);
      } else if (use_avx512_) {
        cpu::avx512::QuantMatMul(w.packed, rows, b, e, bias, out);
      } else if (use_avx_vnni_) {
        cpu::avx_vnni::QuantMatMul(w.packed, rows, b, e, bias, out);
      } else {
        cpu::avx2::QuantMatMul(w.packed, rows, b, e, bias, out);
      }
    });
  }, grain);
  return absl::OkStatus();
}

absl::Status FastCpuBackend::UnpackedMatMul(const Tensor& x, const Tensor& w,
                                            const Tensor* bias, Tensor* y) {
  if (!MatMulShapesOk(x, w, bias, *y) || !IsFloatWeight(w.dtype)) {
    // Reports bad shapes; computes views this backend did not pack.
    return CpuBackend::MatMul(x, w, bias, y);
  }
  // Float weights in place (a view of rows of a packed weight).
  const float* bias_data = bias != nullptr ? F32(*bias) : nullptr;
  const cpu::OutputRows out{F32(y), y->cols};
  pool_->ParallelFor(w.rows, [&](int64_t begin, int64_t end) {
    if (use_avx512_) {
      cpu::avx512::FloatMatMul(w.dtype, w.data, w.cols, begin, end, F32(x),
                               x.rows, x.cols, bias_data, out);
    } else {
      cpu::avx2::FloatMatMul(w.dtype, w.data, w.cols, begin, end, F32(x),
                             x.rows, x.cols, bias_data, out);
    }
  });
  return absl::OkStatus();
}

absl::Status FastCpuBackend::RopeAndWriteKv(const RopeParams& rope,
                                            const AttentionParams& attention,
                                            const BatchView& batch, Tensor* q,
                                            Tensor* k, const Tensor& v,
                                            KvLayerView layer) {
  const KvCacheShape& shape = kv_shape();
  const int head_dim = attention.head_dim;
  const int half = rope.rotary_dim / 2;
  if (head_dim != shape.head_dim || attention.num_kv_heads != shape.num_kv_heads ||
      rope.rotary_dim > head_dim || rope.rotary_dim % 2 != 0 ||
      rope.inv_freq.cols < half ||
      q->cols != int64_t{attention.num_q_heads} * head_dim ||
      k->cols != int64_t{attention.num_kv_heads} * head_dim ||
      v.cols != k->cols || q->rows < batch.num_tokens ||
      k->rows < batch.num_tokens || v.rows < batch.num_tokens) {
    return CpuBackend::RopeAndWriteKv(rope, attention, batch, q, k, v, layer);
  }
  const float* inv_freq = F32(rope.inv_freq);
  const bool neox = rope.style == RopeStyle::kNeox;
  const int64_t block_size = shape.block_size;
  const bool f16 = shape.dtype == DType::kF16;
  auto tokens = [&](int64_t begin, int64_t end) {
    // cos/sin once per token for all heads (the same values the reference
    // computes per head).
    float cos_sin[2 * 256];
    float* cosines = cos_sin;
    float* sines = cos_sin + 256;
    for (int64_t t = begin; t < end; ++t) {
      const int32_t position = batch.positions[t];
      for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(position) * inv_freq[i];
        cosines[i] = std::cos(angle);
        sines[i] = std::sin(angle);
      }
      auto rotate = [&](float* head) {
        for (int i = 0; i < half; ++i) {
          const int a = neox ? i : 2 * i;
          const int b = neox ? i + half : 2 * i + 1;
          const float x1 = head[a], x2 = head[b];
          head[a] = x1 * cosines[i] - x2 * sines[i];
          head[b] = x2 * cosines[i] + x1 * sines[i];
        }
      };
      for (int h = 0; h < attention.num_q_heads; ++h) {
        rotate(F32(q) + t * q->cols + h * head_dim);
      }
      const int64_t block = batch.slot_mapping[t] / block_size;
      const int64_t offset = batch.slot_mapping[t] % block_size;
      for (int h = 0; h < attention.num_kv_heads; ++h) {
        float* k_head = F32(k) + t * k->cols + h * head_dim;
        rotate(k_head);
        const int64_t dst =
            ((block * attention.num_kv_heads + h) * block_size + offset) *
            head_dim;
        WriteKvRow(f16, k_head, head_dim, layer.k, dst);
        WriteKvRow(f16, F32(v) + t * v.cols + h * head_dim, head_dim, layer.v,
                   dst);
      }
    }
  };
  if (half > 256) {
    return CpuBackend::RopeAndWriteKv(rope, attention, batch, q, k, v, layer);
  }
  if (int64_t{batch.num_tokens} * q->cols < kMinParallelElements) {
    tokens(0, batch.num_tokens);
  } else {
    pool_->ParallelFor(batch.num_tokens, tokens);
  }
  return absl::OkStatus();
}

absl::Status FastCpuBackend::PagedAttention(const AttentionParams& attention,
                                            const BatchView& batch,
                                            const Tensor& q, KvLayerView layer,
                                            Tensor* out) {
  const KvCacheShape& shape = kv_shape();
  const int head_dim = attention.head_dim;
  // The cache's head count too: another would index past each block.
  if (attention.num_kv_heads <= 0 || attention.num_q_heads <= 0 ||
      attention.num_kv_heads != shape.num_kv_heads ||
      attention.num_q_heads % attention.num_kv_heads != 0 ||
      head_dim != shape.head_dim ||
      q.cols != int64_t{attention.num_q_heads} * head_dim || q.rows < batch.num_tokens ||
      out->cols != q.cols || out->rows < batch.num_tokens) {
    return CpuBackend::PagedAttention(attention, batch, q, layer, out);
  }
  const int group = attention.num_q_heads / attention.num_kv_heads;
  const int num_kv_heads = attention.num_kv_heads;
  // The three-pass kernels: AVX-512 (head sizes multiple of 16 up to 128),
  // else AVX2 (cpu::avx2::ThreePassHeadDim); other head sizes the AVX2
  // flash-style one. Which kernel runs depends on the model and the
  // processor only, never on the batch.
  const bool avx512 = use_avx512_ && head_dim % 16 == 0 && head_dim <= 128;
  const bool three_pass = avx512 || cpu::avx2::ThreePassHeadDim(head_dim);
  const auto attend = avx512 ? cpu::avx512::AttendQueryTile : cpu::avx2::AttendThreePass;
  const auto merge_chunks =
      avx512 ? cpu::avx512::MergeKeyChunks : cpu::avx2::MergeKeyChunks;
  // Tasks: up to kAttentionTileTokens query tokens of one sequence × one KV
  // head (a decode is a tile of one token). The three-pass kernel keeps a
  // score row per query row: its tiles are cut to about
  // kAttentionTileScores scores (tiling never changes a row's result).
  attention_tasks_.clear();
  attention_merges_.clear();
  constexpr int kChunk = cpu::kAttentionKeyChunk;
  int64_t macs = 0;
  int64_t scratch_floats = 0;
  int64_t thread_partial_floats = 0;
  for (int s = 0; s < batch.num_seqs; ++s) {
    const int q_begin = batch.query_indptr[s];
    const int q_len = batch.query_indptr[s + 1] - q_begin;
    const int num_blocks = batch.kv_indptr[s + 1] - batch.kv_indptr[s];
    const int context_len =
        (num_blocks - 1) * shape.block_size + batch.kv_last_block_len[s];
    macs += int64_t{q_len} * context_len * attention.num_q_heads * head_dim * 2;
    int tile = kAttentionTileTokens;
    if (three_pass) {
      const int64_t per_token =
          int64_t{group} * (std::min(context_len, kChunk) + 16);
      tile = static_cast<int>(std::clamp<int64_t>(
          kAttentionTileScores / per_token, 1, kAttentionTileTokens));
    }
    for (int t = 0; t < q_len; t += tile) {
      const int tokens = std::min(tile, q_len - t);
      const int first_visible = context_len - q_len + t + 1;
      const int last_visible = first_visible + tokens - 1;
      // Three passes: a tile whose rows see more than kChunk keys attends
      // in chunks of keys (cpu_kernels.h, kAttentionKeyChunk).
      const int chunks = three_pass ? (last_visible + kChunk - 1) / kChunk : 1;
      const int span = chunks > 1 ? kChunk : last_visible;
      scratch_floats = std::max(
          scratch_floats,
          avx512       ? cpu::avx512::Avx512AttentionScratch(tokens, group, head_dim, span)
          : three_pass ? cpu::avx2::ThreePassAttentionScratch(tokens, group, head_dim, span)
                       : cpu::avx2::AttentionTileScratch(tokens, group, head_dim));
      if (chunks > 1) {
        thread_partial_floats = std::max(
            thread_partial_floats,
            chunks * cpu::AttentionPartialFloats(tokens * group, head_dim));
      }
      for (int h = 0; h < num_kv_heads; ++h) {
        attention_tasks_.push_back(
            AttentionWork{s, h, q_begin + t, tokens, first_visible, chunks});
      }
    }
  }
  // Too few tasks to keep the threads busy (a decode of one or two
  // sequences is one task per KV head): each chunk of a long context
  // becomes a task of its own, and a merge pass follows. The arithmetic is
  // the same either way, so this depends on the batch freely.
  int64_t partial_floats = 0;
  if (three_pass && pool_->num_threads() > 1 &&
      attention_tasks_.size() < 4 * static_cast<size_t>(pool_->num_threads())) {
    attention_split_.clear();
    for (const AttentionWork& work : attention_tasks_) {
      if (work.chunks == 1) {
        attention_split_.push_back(work);
        continue;
      }
      const int64_t chunk_floats =
          cpu::AttentionPartialFloats(work.num_tokens * group, head_dim);
      attention_merges_.push_back(AttentionMerge{work.kv_head, work.first_token,
                                                 work.num_tokens, work.chunks,
                                                 partial_floats, chunk_floats});
      for (int c = 0; c < work.chunks; ++c) {
        AttentionWork part = work;
        part.chunk = c;
        part.partial = partial_floats;
        attention_split_.push_back(part);
        partial_floats += chunk_floats;
      }
    }
    attention_tasks_.swap(attention_split_);
  }
  if (attention_partials_.size() < static_cast<size_t>(partial_floats)) {
    attention_partials_.resize(static_cast<size_t>(partial_floats));
  }
  for (auto& scratch : thread_scores_) {
    if (scratch.size() < static_cast<size_t>(scratch_floats)) {
      scratch.resize(static_cast<size_t>(scratch_floats));
    }
  }
  for (auto& partials : thread_partials_) {
    if (partials.size() < static_cast<size_t>(thread_partial_floats)) {
      partials.resize(static_cast<size_t>(thread_partial_floats));
    }
  }
  const int64_t block_stride = shape.block_elements();
  const int64_t element_bytes = DTypeBlockBytes(shape.dtype);
  auto head_base = [&](const void* base, const AttentionWork& work) {
    return static_cast<const uint8_t*>(base) +
           int64_t{work.kv_head} * shape.block_size * head_dim * element_bytes;
  };
  // The keys task i starts on (its chunk's, or its first chunk's).
  auto first_keys = [&](int64_t i) {
    const AttentionWork& work = attention_tasks_[i];
    cpu::AttentionNextKeys keys;
    keys.k_base = head_base(layer.k, work);
    keys.v_base = head_base(layer.v, work);
    keys.blocks = batch.kv_indices + batch.kv_indptr[work.seq];
    const int last_visible = work.first_visible + work.num_tokens - 1;
    keys.key_begin = work.chunk >= 0 ? work.chunk * kChunk : 0;
    keys.key_end = work.chunks > 1 ? std::min(keys.key_begin + kChunk, last_visible)
                                   : last_visible;
    return keys;
  };
  auto run = [&](int thread, int64_t begin, int64_t end) {
    float* scratch = thread_scores_[thread].data();
    for (int64_t i = begin; i < end; ++i) {
      const AttentionWork& work = attention_tasks_[i];
      const int s = work.seq;
      const void* k_base = head_base(layer.k, work);
      const void* v_base = head_base(layer.v, work);
      const int64_t head_offset = int64_t{work.kv_head} * group * head_dim;
      const int32_t* blocks = batch.kv_indices + batch.kv_indptr[s];
      // This thread's next task, whose keys the AVX-512 kernel fetches
      // while it sums this one's values (ranges are contiguous).
      const cpu::AttentionNextKeys next =
          i + 1 < end ? first_keys(i + 1) : cpu::AttentionNextKeys{};
      cpu::AttentionTileTask a;
      a.q = F32(q) + int64_t{work.first_token} * q.cols + head_offset;
      a.out = F32(out) + int64_t{work.first_token} * out->cols + head_offset;
      a.token_stride = q.cols;
      a.num_tokens = work.num_tokens;
      a.group = group;
      a.head_dim = head_dim;
      a.first_visible = work.first_visible;
      a.scale = attention.scale;
      a.k_base = k_base;
      a.v_base = v_base;
      a.kv_dtype = shape.dtype;
      a.blocks = blocks;
      a.block_stride = block_stride;
      a.block_size = shape.block_size;
      if (!three_pass) {
        cpu::avx2::AttendQueryTile(a, scratch);
        continue;
      }
      if (work.chunks == 1) {
        a.next = next;
        attend(a, scratch);
        continue;
      }
      const int last_visible = work.first_visible + work.num_tokens - 1;
      auto attend_chunk = [&](int c, float* partial) {
        a.key_begin = c * kChunk;
        a.key_end = std::min((c + 1) * kChunk, last_visible);
        a.partial = partial;
        // A chunk's own row pointers run on into the next chunk's keys.
        a.next = work.chunk >= 0 || c + 1 == work.chunks ? next : cpu::AttentionNextKeys{};
        attend(a, scratch);
      };
      if (work.chunk >= 0) {
        attend_chunk(work.chunk, attention_partials_.data() + work.partial);
        continue;
      }
      float* partials = thread_partials_[thread].data();
      const int64_t chunk_floats =
          cpu::AttentionPartialFloats(work.num_tokens * group, head_dim);
      for (int c = 0; c < work.chunks; ++c) attend_chunk(c, partials + c * chunk_floats);
      merge_chunks(partials, work.chunks, chunk_floats,
                                  work.num_tokens * group, group, head_dim, a.out,
                                  a.token_stride);
    }
  };
  const int64_t num_tasks = static_cast<int64_t>(attention_tasks_.size());
  if (macs < kMinParallelAttentionMacs || pool_->num_threads() == 1) {
    run(0, 0, num_tasks);
  } else {
    // One contiguous range of about equal cost (query rows × keys) per
    // thread, so the next-task fetch covers every task of a range but its
    // first: the pool's guided ranges had left ~12 tasks a layer starting
    // cold at 2 threads (docs/cpu.md). A thread that finds a range nobody
    // took still takes it.
    const int threads = pool_->num_threads();
    EqualCostRanges(num_tasks, threads, [&](int64_t i) {
      const AttentionWork& work = attention_tasks_[i];
      const int last_visible = work.first_visible + work.num_tokens - 1;
      // One chunk's keys, or all of them for a task that runs every chunk.
      const int keys = work.chunk >= 0
                           ? std::min(kChunk, last_visible - work.chunk * kChunk)
                           : last_visible;
      return int64_t{work.num_tokens} * std::max(1, keys);
    }, &attention_bounds_);
    pool_->ParallelFor(threads, [&](int thread, int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        run(thread, attention_bounds_[r], attention_bounds_[r + 1]);
      }
    });
  }
  auto merge = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const AttentionMerge& m = attention_merges_[i];
      merge_chunks(
          attention_partials_.data() + m.partial, m.chunks, m.chunk_floats,
          m.num_tokens * group, group, head_dim,
          F32(out) + int64_t{m.first_token} * out->cols +
              int64_t{m.kv_head} * group * head_dim,
          out->cols);
    }
  };
  const int64_t num_merges = static_cast<int64_t>(attention_merges_.size());
  if (partial_floats < kMinParallelElements) {
    merge(0, num_merges);
  } else {
    pool_->ParallelFor(num_merges, merge);
  }
  return absl::OkStatus();
}

absl::Status FastCpuBackend::SiluMul(const Tensor& gate, const Tensor& up,
                                     Tensor* out) {
  if (gate.dtype != DType::kF32 || up.dtype != DType::kF32 ||
      out->dtype != DType::kF32 || gate.cols != up.cols ||
      gate.rows != up.rows || out->cols != gate.cols || out->rows < gate.rows) {
    return CpuBackend::SiluMul(gate, up, out);
  }
  // Row by row: the kernel's vector body and scalar tail round e^x
  // differently, so a span of several rows would put a row's last cols % 8
  // elements in the body or the tail depending on its neighbours.
  auto rows = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      cpu::avx2::SiluMul(F32(gate) + r * gate.cols, F32(up) + r * gate.cols, gate.cols,
                         F32(out) + r * gate.cols);
    }
  };
  if (gate.num_elements() < kMinParallelElements) {
    rows(0, gate.rows);
  } else {
    pool_->ParallelFor(gate.rows, rows);
  }
  return absl::OkStatus();
}

}  // namespace weft
