// weft-bench-cuda-kernels: each CUDA backend kernel's time, achieved
// bandwidth and compute rate, against two ceilings measured in the same run:
// a device-to-device copy (GB/s, bytes read + written) and a large cuBLAS
// bf16 GEMM (TFLOP/s). Shapes are Llama-3-8B's (hidden 4096, 32 query / 8
// KV heads of 128, MLP 14336); weights are random (speed does not depend on
// values). Decode attention is measured at 32 sequences × 4096 tokens of
// context, with and without the split-KV kernel. weft's own GEMM kernels
// run beside cuBLAS on 4096³ and Llama-3-8B prefill shapes; a second table
// gives each as a fraction of cuBLAS on the same shape. Decode GEMVs (1-16
// rows of x): the skinny bf16 and W4 kernels and cuBLAS, counted by weight
// bytes against the copy bandwidth.
//
//   weft-bench-cuda-kernels [--iters 20] [--json out.json]
//
// Times are CUDA-event times on the backend's stream after 3 warm-ups: the
// median of 5 groups of --iters / 5 runs (the mean of each group). Bytes
// are the bytes each kernel must move (counted from its shapes, not
// measured); FLOPs count a multiply-add as 2. A kernel whose data would fit
// the H200's 50 MB L2 reads, run by run, one of several copies of it
// (≥ 256 MiB together), so its GB/s is memory's, not the cache's.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/gemm_wgmma.h"
#include "kernels/cuda/skinny_gemm.h"
#include "kernels/w4_pack.h"

ABSL_FLAG(int, iters, 20, "timed runs per kernel");
ABSL_FLAG(std::string, json, "", "also write the results here as JSON");

namespace weft {
namespace {

struct Result {
  std::string name;
  double us = 0, bytes = 0, flops = 0;
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "weft-bench-cuda-kernels: %s\n", s.ToString().c_str());
  return 1;
}

#define BENCH_CHECK(expr)                            \
  do {                                               \
    if (absl::Status s_ = (expr); !s_.ok()) return s_; \
  } while (0)

class Bench {
 public:
  explicit Bench(CudaBackend* backend) : backend_(backend) {}

  // Microseconds of one run of `op(run)`: the median over 5 groups of
  // --iters / 5 back-to-back runs of each group's mean (run counts on
  // across warm-ups and groups, so an op that rotates its buffers by it
  // never repeats one twice in a row).
  absl::StatusOr<double> Time(const std::function<absl::Status(int)>& op) {
    auto stream = static_cast<cudaStream_t>(backend_->stream());
    int run = 0;
    for (int i = 0; i < 3; ++i) BENCH_CHECK(op(run++));
    cudaEvent_t start, stop;
    if (cudaEventCreate(&start) != cudaSuccess ||
        cudaEventCreate(&stop) != cudaSuccess) {
      return absl::InternalError("cudaEventCreate failed");
    }
    constexpr int kGroups = 5;
    const int per_group = std::max(1, absl::GetFlag(FLAGS_iters) / kGroups);
    std::vector<double> us;
    absl::Status status;
    for (int g = 0; g < kGroups && status.ok(); ++g) {
      if (cudaEventRecord(start, stream) != cudaSuccess) {
        status = absl::InternalError("cudaEventRecord failed");
        break;
      }
      for (int i = 0; i < per_group && status.ok(); ++i) status = op(run++);
      if (!status.ok()) break;
      float ms = 0;
      if (cudaEventRecord(stop, stream) != cudaSuccess ||
          cudaEventSynchronize(stop) != cudaSuccess ||
          cudaEventElapsedTime(&ms, start, stop) != cudaSuccess || !(ms > 0)) {
        status = absl::InternalError("CUDA event timing failed");
        break;
      }
      us.push_back(1000.0 * ms / per_group);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    if (!status.ok()) return status;
    std::nth_element(us.begin(), us.begin() + kGroups / 2, us.end());
    return us[kGroups / 2];
  }

  // Times `op` and keeps the row; each row is also printed as soon as it
  // is measured, so a later kernel that kills the process (a sticky CUDA
  // error) does not take the earlier rows with it.
  absl::Status Add(const std::string& name, double bytes, double flops,
                   const std::function<absl::Status()>& op) {
    return AddRotating(name, bytes, flops, [&](int) { return op(); });
  }
  // The same for an op given the run's number (to pick a copy of its data).
  absl::Status AddRotating(const std::string& name, double bytes, double flops,
                           const std::function<absl::Status(int)>& op) {
    auto us = Time(op);
    if (!us.ok()) return us.status();
    results_.push_back({name, *us, bytes, flops});
    std::fprintf(stderr, "measured %-40s %10.1f us\n", name.c_str(), *us);
    return absl::OkStatus();
  }

  std::vector<Result>& results() { return results_; }

 private:
  CudaBackend* backend_;
  std::vector<Result> results_;
};

// Copies of a kernel's data that together exceed the L2 several times over
// (one for data of 256 MiB or more).
constexpr int64_t kRotateBytes = int64_t{256} << 20;
int Copies(double bytes) {
  return static_cast<int>(std::max(1.0, std::ceil(kRotateBytes / bytes)));
}

absl::StatusOr<Tensor> RandomF32(CudaBackend& b, int64_t rows, int64_t cols,
                                 std::mt19937& rng) {
  auto t = b.Allocate(DType::kF32, rows, cols);
  if (!t.ok()) return t;
  std::normal_distribution<float> dist(0, 1);
  std::vector<float> v(rows * cols);
  for (float& x : v) x = dist(rng);
  BENCH_CHECK(b.CopyFromHost(v.data(), &*t));
  return t;
}

absl::StatusOr<Tensor> RandomWeight(CudaBackend& b, DType dtype, int64_t rows,
                                    int64_t cols, std::mt19937& rng,
                                    std::vector<std::vector<uint8_t>>* keep) {
  std::vector<uint8_t> bytes(rows * RowBytes(dtype, cols));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& x : bytes) x = static_cast<uint8_t>(byte(rng));
  if (dtype == DType::kQ4_1) {  // sane scales: d, m in [-0.01, 0.01]
    for (size_t at = 0; at < bytes.size(); at += sizeof(BlockQ4_1)) {
      const uint16_t d = FloatToHalf(0.001f), m = FloatToHalf(-0.008f);
      std::memcpy(&bytes[at], &d, 2);
      std::memcpy(&bytes[at + 2], &m, 2);
    }
  }
  keep->push_back(std::move(bytes));
  return b.UploadWeight(dtype, rows, cols, keep->back().data());
}

// A batch of `num_seqs` sequences, each of `context` tokens of which the
// last `query` are this step's, over consecutive blocks.
BatchMetadata Batch(int num_seqs, int context, int query, int block_size) {
  BatchMetadata b;
  b.query_indptr = {0};
  b.kv_indptr = {0};
  int next_block = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int blocks = (context + block_size - 1) / block_size;
    const int first = next_block;
    next_block += blocks;
    for (int p = context - query; p < context; ++p) {
      b.token_ids.push_back(p % 1000);
      b.positions.push_back(p);
      b.slot_mapping.push_back(int64_t{first + p / block_size} * block_size +
                               p % block_size);
    }
    b.query_indptr.push_back(b.num_tokens());
    for (int i = 0; i < blocks; ++i) b.kv_indices.push_back(first + i);
    b.kv_indptr.push_back(static_cast<int>(b.kv_indices.size()));
    b.kv_last_block_len.push_back(context - (blocks - 1) * block_size);
    b.logits_rows.push_back(b.num_tokens() - 1);
  }
  return b;
}

absl::Status Run(std::vector<Result>* out) {
  constexpr int kHidden = 4096, kInter = 14336, kHeads = 32, kKvHeads = 8;
  constexpr int kHeadDim = 128, kBlock = 16, kVocab = 32000;
  constexpr int kDecodeSeqs = 32, kDecodeContext = 4096, kPrefill = 512;
  const int num_blocks = kDecodeSeqs * kDecodeContext / kBlock + 64;

  CudaBackendConfig config;
  config.max_num_tokens = 8192;
  config.max_num_seqs = 64;
  auto created = CudaBackend::Create(config);
  if (!created.ok()) return created.status();
  CudaBackend& b = **created;
  std::printf("device: %s\n", b.description().c_str());
  Bench bench(&b);
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> host_weights;

  // Ceilings: copy bandwidth and cuBLAS bf16 GEMM rate, on random data.
  const int64_t g = 8192;
  auto random = RandomF32(b, g, g, rng);  // 256 MiB
  auto copy_dst = b.Allocate(DType::kF32, g, g);
  auto ga = b.Allocate(DType::kBF16, g, g);
  auto gc = b.Allocate(DType::kF32, g, g);
  if (!random.ok() || !copy_dst.ok() || !ga.ok() || !gc.ok()) {
    return absl::InternalError("ceiling buffers: allocation failed");
  }
  const int64_t copy_bytes = g * g * 4;
  BENCH_CHECK(bench.Add("d2d copy 256 MiB (ceiling)", 2.0 * copy_bytes, 0, [&] {
    return b.CopyDeviceToDevice(copy_dst->data, random->data, copy_bytes);
  }));
  if (cuda::LaunchToBf16(DType::kF32, random->data, g * g,
                         static_cast<uint16_t*>(ga->data),
                         static_cast<cudaStream_t>(b.stream())) != cudaSuccess) {
    return absl::InternalError("LaunchToBf16 failed");
  }
  BENCH_CHECK(bench.Add("cublas bf16 gemm 8192^3 (ceiling)",
                        2.0 * g * g * 2 + g * g * 4.0, 2.0 * g * g * g, [&] {
    return b.GemmBf16(ga->data, ga->data, static_cast<float*>(gc->data), g, g, g);
  }));
  const Tensor* copy_src = &*random;

  // weft's GEMM kernels against cuBLAS on the same shape: 4096³ and
  // Llama-3-8B's prefill projections at 2048 tokens (q/o, k/v, gate/up,
  // down). x and w are two different random bf16 buffers.
  auto gb = b.Allocate(DType::kBF16, g, g);
  if (!gb.ok()) return gb.status();
  BENCH_CHECK(b.CopyDeviceToDevice(gb->data, ga->data, g * g * 2));
  struct GemmShape {
    int64_t n, m, k;
  };
  for (const GemmShape& shape :
       {GemmShape{4096, 4096, 4096}, GemmShape{2048, 4096, 4096},
        GemmShape{2048, 1024, 4096}, GemmShape{2048, 14336, 4096},
        GemmShape{2048, 4096, 14336}}) {
    std::vector<GemmKernelId> kernels = {GemmKernelId::kCublas};
    for (GemmKernelId kernel : kOwnGemmKernels) {
      // Not Hopper, or WEFT_NO_WGMMA set.
      if (IsWgmmaGemm(kernel) && !cuda::WgmmaAvailable()) continue;
      kernels.push_back(kernel);
    }
    for (GemmKernelId kernel : kernels) {
      const double bytes = 2.0 * (shape.n + shape.m) * shape.k + 4.0 * shape.n * shape.m;
      BENCH_CHECK(bench.Add(
          absl::StrFormat("gemm %s %dx%dx%d", GemmKernelName(kernel), shape.n,
                          shape.m, shape.k),
          bytes, 2.0 * shape.n * shape.m * shape.k, [&] {
            return b.GemmBf16With(kernel, ga->data, gb->data,
                                  static_cast<float*>(gc->data), shape.n,
                                  shape.m, shape.k, shape.m);
          }));
    }
  }

  // Decode GEMV (n ≤ 16 rows of x): the skinny kernels and cuBLAS on
  // Llama-3-8B's widest weights; the bytes are the weights' (x and y are
  // < 1%). W4 is the same random Q4_1 data repacked (5 bits a weight: 20
  // bytes per 32). Each run reads one of Copies() copies of the weight
  // from `pool` (384 MiB of random bf16).
  struct GemvShape {
    int64_t n, m, k;
  };
  auto pool = b.Allocate(DType::kBF16, 3 * g, g);
  if (!pool.ok()) return pool.status();
  for (int i = 0; i < 3; ++i) {
    BENCH_CHECK(b.CopyDeviceToDevice(static_cast<uint8_t*>(pool->data) + i * g * g * 2,
                                     gb->data, g * g * 2));
  }
  const auto* pool_bf16 = static_cast<const uint16_t*>(pool->data);
  std::vector<uint8_t> w4_host;
  for (const GemvShape& shape :
       {GemvShape{1, 4096, 4096}, GemvShape{1, 14336, 4096},
        GemvShape{1, 4096, 14336}, GemvShape{8, 14336, 4096},
        GemvShape{16, 14336, 4096}}) {
    const double w_bytes = 2.0 * shape.m * shape.k;
    const int bf16_copies =
        std::min<int>(Copies(w_bytes), 3 * g * g / (shape.m * shape.k));
    for (GemmKernelId kernel : {GemmKernelId::kCublas, GemmKernelId::kSkinny}) {
      BENCH_CHECK(bench.AddRotating(
          absl::StrFormat("gemv %s bf16 %dx%dx%d",
                          kernel == GemmKernelId::kCublas ? "cublas" : "skinny",
                          shape.n, shape.m, shape.k),
          w_bytes, 2.0 * shape.n * shape.m * shape.k, [&](int run) {
            return b.GemmBf16With(
                kernel, ga->data,
                pool_bf16 + (run % bf16_copies) * shape.m * shape.k,
                static_cast<float*>(gc->data), shape.n, shape.m, shape.k,
                shape.m);
          }));
    }
    std::vector<uint8_t> q4(shape.m * RowBytes(DType::kQ4_1, shape.k));
    for (size_t i = 0; i < q4.size(); ++i) q4[i] = static_cast<uint8_t>(rng());
    for (size_t at = 0; at < q4.size(); at += sizeof(BlockQ4_1)) {
      const uint16_t d = FloatToHalf(0.001f), m = FloatToHalf(-0.008f);
      std::memcpy(&q4[at], &d, 2);
      std::memcpy(&q4[at + 2], &m, 2);
    }
    w4_host.resize(shape.m * RowBytes(DType::kW4, shape.k));
    BENCH_CHECK(RepackToW4(DType::kQ4_1, q4.data(), shape.m, shape.k,
                           w4_host.data()));
    const int w4_copies = Copies(static_cast<double>(w4_host.size()));
    auto w4 = b.Allocate(DType::kW4, shape.m * w4_copies, shape.k);
    if (!w4.ok()) return w4.status();
    for (int c = 0; c < w4_copies; ++c) {
      if (cudaMemcpy(static_cast<uint8_t*>(w4->data) + c * w4_host.size(),
                     w4_host.data(), w4_host.size(),
                     cudaMemcpyHostToDevice) != cudaSuccess) {
        return absl::InternalError("W4 upload failed");
      }
    }
    BENCH_CHECK(bench.AddRotating(
        absl::StrFormat("gemv skinny w4 %dx%dx%d", shape.n, shape.m, shape.k),
        static_cast<double>(w4_host.size()), 2.0 * shape.n * shape.m * shape.k,
        [&](int run) {
          const cudaError_t e = cuda::LaunchSkinnyW4(
              static_cast<const uint16_t*>(ga->data),
              static_cast<const uint8_t*>(w4->data) +
                  (run % w4_copies) * w4_host.size(),
              static_cast<float*>(gc->data), shape.n, shape.m, shape.k,
              shape.m, static_cast<cudaStream_t>(b.stream()));
          return e == cudaSuccess ? absl::OkStatus()
                                  : absl::InternalError("LaunchSkinnyW4");
        }));
  }

  // Weights and activations.
  // Copies of the 4096 × 4096 weight (33.5 MB in bf16 each) for the matmul
  // rows: Copies() of them.
  std::vector<Tensor> w_q4s;
  for (int c = 0; c < Copies(2.0 * kHidden * kHidden); ++c) {
    auto w = RandomWeight(b, DType::kQ4_1, kHidden, kHidden, rng, &host_weights);
    if (!w.ok()) return w.status();
    w_q4s.push_back(*w);
  }
  auto w_up = RandomWeight(b, DType::kQ4_1, kInter, kHidden, rng, &host_weights);
  auto embed = RandomWeight(b, DType::kQ4_1, kVocab, kHidden, rng, &host_weights);
  if (!w_up.ok()) return w_up.status();
  if (!embed.ok()) return embed.status();
  std::vector<float> ones(kHidden, 1.0f);
  auto norm_w = b.UploadWeight(DType::kF32, 1, kHidden, ones.data());
  if (!norm_w.ok()) return norm_w.status();
  auto x = RandomF32(b, kPrefill, kHidden, rng);
  auto residual = RandomF32(b, kPrefill, kHidden, rng);
  auto normed = RandomF32(b, kPrefill, kHidden, rng);
  auto gate = RandomF32(b, kPrefill, kInter, rng);
  auto up = RandomF32(b, kPrefill, kInter, rng);
  auto y = b.Allocate(DType::kF32, kPrefill, kInter);
  if (!x.ok() || !residual.ok() || !normed.ok() || !gate.ok() || !up.ok() ||
      !y.ok()) {
    return absl::InternalError("activation allocation failed");
  }
  const double n = kPrefill;

  // Q4_1 → bf16 dequantization (the upload kernel), on device data.
  const double q4_bytes = double(kHidden) * RowBytes(DType::kQ4_1, kHidden);
  // Sources: Q4_1-sized slices of the 256 MiB random buffer; destinations:
  // slices of the bf16 pool (random scales: speed does not depend on them).
  const int deq_copies = Copies(q4_bytes + 2.0 * kHidden * kHidden);
  BENCH_CHECK(bench.AddRotating("dequant q4_1->bf16 4096x4096",
                                q4_bytes + 2.0 * kHidden * kHidden, 0, [&](int run) {
    const int c = run % deq_copies;
    const cudaError_t e = cuda::LaunchToBf16(
        DType::kQ4_1, static_cast<const uint8_t*>(copy_src->data) + c * int64_t(q4_bytes),
        int64_t{kHidden} * kHidden,
        static_cast<uint16_t*>(pool->data) + c * int64_t{kHidden} * kHidden,
        static_cast<cudaStream_t>(b.stream()));
    return e == cudaSuccess ? absl::OkStatus() : absl::InternalError("launch");
  }));

  Tensor xr = *residual;
  // x and residual read, residual and normed written.
  BENCH_CHECK(bench.Add("add_rmsnorm 512x4096", 4.0 * n * kHidden * 4, 0, [&] {
    return b.AddRmsNorm(&xr, *x, *norm_w, 1e-5f, &*normed);
  }));
  Tensor g_t = *gate;
  BENCH_CHECK(bench.Add("silu_mul 512x14336", 3.0 * n * kInter * 4, 0, [&] {
    return b.SiluMul(*gate, *up, &g_t);
  }));
  for (int rows : {1, 32, kPrefill}) {
    Tensor xs = x->Rows(0, rows), ys = y->Rows(0, rows);
    ys.cols = kHidden;
    BENCH_CHECK(bench.AddRotating(
        absl::StrFormat("matmul %dx4096x4096 (bf16 w)", rows),
        2.0 * kHidden * kHidden + rows * kHidden * 10.0,
        2.0 * rows * kHidden * kHidden, [&](int run) {
          return b.MatMul(xs, w_q4s[run % w_q4s.size()], nullptr, &ys);
        }));
  }
  {
    Tensor ys = *y;
    BENCH_CHECK(bench.Add("matmul 512x14336x4096 (bf16 w)",
                          2.0 * kInter * kHidden + n * (kHidden * 6.0 + kInter * 4.0),
                          2.0 * n * kInter * kHidden,
                          [&] { return b.MatMul(*x, *w_up, nullptr, &ys); }));
  }

  // Paged KV: room for 32 × 4096 tokens, one layer.
  BENCH_CHECK(b.AllocateKvCache(
      {1, num_blocks, kBlock, kKvHeads, kHeadDim, DType::kBF16}));
  const int q_cols = kHeads * kHeadDim, kv_cols = kKvHeads * kHeadDim;
  auto q = RandomF32(b, kPrefill, q_cols, rng);
  auto k = RandomF32(b, kPrefill, kv_cols, rng);
  auto v = RandomF32(b, kPrefill, kv_cols, rng);
  auto attn = b.Allocate(DType::kF32, kPrefill, q_cols);
  std::vector<float> inv_freq(kHeadDim / 2);
  for (int i = 0; i < kHeadDim / 2; ++i) inv_freq[i] = std::pow(5e5f, -2.0f * i / kHeadDim);
  auto freq = b.UploadWeight(DType::kF32, 1, kHeadDim / 2, inv_freq.data());
  if (!q.ok() || !k.ok() || !v.ok() || !attn.ok() || !freq.ok()) {
    return absl::InternalError("attention allocation failed");
  }
  AttentionParams attention{kHeads, kKvHeads, kHeadDim, 1.0f / std::sqrt(128.0f)};
  RopeParams rope{RopeStyle::kNeox, kHeadDim, kHeadDim, *freq};

  // Prefill chunk of 512 after 1536 cached tokens, one sequence.
  {
    BatchMetadata prefill = Batch(1, 2048, kPrefill, kBlock);
    auto view = b.StageBatch(prefill);
    if (!view.ok()) return view.status();
    Tensor qt = *q, kt = *k;
    BENCH_CHECK(bench.Add("rope+kv write 512 tok",
                          n * (2.0 * q_cols * 4 + 2.0 * kv_cols * 4 + kv_cols * 4 +
                               2.0 * kv_cols * 2),
                          0, [&] {
      return b.RopeAndWriteKv(rope, attention, *view, &qt, &kt, *v, b.kv_layer(0));
    }));
    double visible = 0;
    for (int i = 0; i < kPrefill; ++i) visible += 2048 - kPrefill + i + 1;
    Tensor out = *attn;
    BENCH_CHECK(bench.Add("prefill attn 512q over 2048 ctx (mma)",
                          2.0 * 2048 * kv_cols * 2 + 2.0 * n * q_cols * 4,
                          4.0 * kHeads * kHeadDim * visible, [&] {
      return b.PagedAttention(attention, *view, *q, b.kv_layer(0), &out);
    }));
  }
  // Causal prefill of two 4096-token prompts from an empty cache (the
  // shape FlashAttention's benchmarks report: 8k tokens, head dim 128).
  {
    constexpr int kLong = 4096, kLongSeqs = 2;
    BatchMetadata prefill = Batch(kLongSeqs, kLong, kLong, kBlock);
    auto view = b.StageBatch(prefill);
    if (!view.ok()) return view.status();
    auto q_long = RandomF32(b, kLongSeqs * kLong, q_cols, rng);
    auto out_long = b.Allocate(DType::kF32, kLongSeqs * kLong, q_cols);
    if (!q_long.ok() || !out_long.ok()) return q_long.status();
    const double visible = kLongSeqs * 0.5 * kLong * (kLong + 1.0);
    BENCH_CHECK(bench.Add("prefill attn 2x4096 causal (mma)",
                          2.0 * kLongSeqs * kLong * kv_cols * 2 +
                              2.0 * kLongSeqs * kLong * q_cols * 4,
                          4.0 * kHeads * kHeadDim * visible, [&] {
      return b.PagedAttention(attention, *view, *q_long, b.kv_layer(0),
                              &*out_long);
    }));
  }
  // Decode: 32 sequences × 4096 context.
  const double kv_bytes = 2.0 * kDecodeSeqs * kDecodeContext * kv_cols * 2;
  const double decode_flops = 4.0 * kDecodeSeqs * kHeads * kHeadDim * kDecodeContext;
  {
    BatchMetadata decode = Batch(kDecodeSeqs, kDecodeContext, 1, kBlock);
    auto view = b.StageBatch(decode);
    if (!view.ok()) return view.status();
    Tensor out = attn->Rows(0, kDecodeSeqs);
    Tensor qd = q->Rows(0, kDecodeSeqs);
    BENCH_CHECK(bench.Add("decode attn 32x4096 split-kv", kv_bytes, decode_flops,
                          [&] {
      return b.PagedAttention(attention, *view, qd, b.kv_layer(0), &out);
    }));
  }
  {
    CudaBackendConfig no_split = config;
    no_split.split_chunk_tokens = 0;
    auto b2 = CudaBackend::Create(no_split);
    if (!b2.ok()) return b2.status();
    Bench bench2(b2->get());
    BENCH_CHECK((*b2)->AllocateKvCache(
        {1, num_blocks, kBlock, kKvHeads, kHeadDim, DType::kBF16}));
    auto q2 = RandomF32(**b2, kDecodeSeqs, q_cols, rng);
    auto out2 = (*b2)->Allocate(DType::kF32, kDecodeSeqs, q_cols);
    if (!q2.ok() || !out2.ok()) return q2.status();
    auto view = (*b2)->StageBatch(Batch(kDecodeSeqs, kDecodeContext, 1, kBlock));
    if (!view.ok()) return view.status();
    BENCH_CHECK(bench2.Add("decode attn 32x4096 no split", kv_bytes, decode_flops,
                           [&] {
      return (*b2)->PagedAttention(attention, *view, *q2, (*b2)->kv_layer(0), &*out2);
    }));
    bench.results().push_back(bench2.results().back());
  }
  *out = bench.results();
  return absl::OkStatus();
}

int Main() {
  std::vector<Result> results;
  if (absl::Status s = Run(&results); !s.ok()) return Fail(s);
  const double copy_gbs = results[0].bytes / results[0].us / 1e3;
  const double gemm_tfs = results[1].flops / results[1].us / 1e6;
  std::printf("\n%-40s %10s %9s %6s %9s %6s\n", "kernel", "time us", "GB/s",
              "%copy", "TFLOP/s", "%gemm");
  std::string json = "{\"copy_gb_s\": " + std::to_string(copy_gbs) +
                     ", \"gemm_tflop_s\": " + std::to_string(gemm_tfs) +
                     ", \"kernels\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const double gbs = r.bytes / r.us / 1e3, tfs = r.flops / r.us / 1e6;
    std::printf("%-40s %10.1f %9.0f %5.0f%% %9.1f %5.0f%%\n", r.name.c_str(),
                r.us, gbs, 100 * gbs / copy_gbs, tfs, 100 * tfs / gemm_tfs);
    json += absl::StrFormat(
        "%s{\"name\": \"%s\", \"us\": %.3f, \"gb_s\": %.1f, \"tflop_s\": %.2f}",
        i ? ", " : "", r.name, r.us, gbs, tfs);
  }
  json += "]";
  // Each of our GEMM kernels as a fraction of cuBLAS on the same shape.
  std::printf("\n%-40s %9s %9s\n", "gemm (same shape as cublas)", "TFLOP/s",
              "%cublas");
  json += ", \"gemm_vs_cublas\": [";
  double cublas_us = 0;
  bool first = true;
  for (const Result& r : results) {
    if (r.name.rfind("gemm ", 0) != 0) continue;
    if (r.name.rfind("gemm cublas ", 0) == 0) {
      cublas_us = r.us;
      continue;
    }
    if (cublas_us <= 0) continue;
    std::printf("%-40s %9.1f %8.0f%%\n", r.name.c_str(), r.flops / r.us / 1e6,
                100 * cublas_us / r.us);
    json += absl::StrFormat("%s{\"name\": \"%s\", \"fraction_of_cublas\": %.3f}",
                            first ? "" : ", ", r.name, cublas_us / r.us);
    first = false;
  }
  json += "]}\n";
  if (!absl::GetFlag(FLAGS_json).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json)) << json;
  }
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return weft::Main();
}
