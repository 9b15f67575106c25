// weft-bench-cpu-kernels: one quantized matmul kernel on one thread, a
// weight matrix of the default model's shapes kept hot in cache, so the
// kernel's own cost shows (not the memory's): median time per call and
// GMAC/s over --reps repetitions, one JSON line per (kernel, dtype, m).
//
//   build/bench/weft-bench-cpu-kernels --m 1,4,16,64 --kernels vnni,amx
//
// Kernels: avx2, avx_vnni (AVX2 + AVX-VNNI), vnni (AVX-512 VNNI), amx
// (AMX-INT8); those the processor lacks are skipped with a line on stderr.
// Float weights (--dtypes f32, f16, bf16) run the packed float matmul:
// kernel avx2 (AVX2 + FMA + F16C) or vnni (AVX-512); avx_vnni and amx have
// no float kernel of their own and skip them.
// `--kernels attention` instead times the AVX-512 paged attention of one
// batched decode step of the default model's shape (30 layers ×
// --attention_seqs sequences × 3 KV heads, 3 query heads each, head dim
// 64, F16 cache in blocks of 16) over a context of --attention_context
// tokens, longer ones in chunks of keys as
// the backend runs them: the cache is larger than the L2, as in serving,
// so this measures how well the kernel keeps memory busy
// (--attention_avx2: the AVX2 three-pass kernel instead).
// `--kernels quantize` times the activation quantization (two int8 levels
// per block of 32, AVX2 and AVX-512) of --m rows × --cols.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fast_cpu_backend.h"

ABSL_FLAG(std::string, kernels, "avx2,vnni,amx",
          "comma-separated: avx2, avx_vnni, vnni, amx (or attention, quantize)");
ABSL_FLAG(std::string, dtypes, "q4_0,q4_1,q8_0", "comma-separated weight types");
ABSL_FLAG(std::string, m, "1,4,16,64", "activation rows, comma-separated");
ABSL_FLAG(int64_t, rows, 1536, "weight rows (outputs); default: SmolLM2's FFN up");
ABSL_FLAG(int64_t, cols, 576, "weight columns (inputs), a multiple of 32");
ABSL_FLAG(int, reps, 200, "timed repetitions (each the median of 10 calls)");
ABSL_FLAG(int, activation_levels, 2,
          "int8 levels of the quantized kernels' activations: 2, or 1 (llama.cpp's "
          "scheme, cpu::DropSecondLevel)");
ABSL_FLAG(int64_t, weight_mb, 0,
          "copies of the packed weight filling at least this many MB, one per "
          "call in turn, so the weights come from L3 or DRAM as in a model's "
          "forward (0: one copy, hot in L1/L2)");
ABSL_FLAG(bool, float_next_tile_l2, true,
          "vnni float kernels of several rows: fetch the next tile's weights "
          "into L2 on the first pass where the processor's L2 policy says so "
          "(PackedFloat::next_tile_into_l2; false: never)");
ABSL_FLAG(int, attention_context, 192, "context tokens per sequence (--kernels attention)");
ABSL_FLAG(int, attention_seqs, 16, "sequences of the decode step (--kernels attention)");
ABSL_FLAG(bool, attention_avx2, false,
          "time the AVX2 three-pass kernel instead of the AVX-512 one (--kernels attention)");
ABSL_FLAG(bool, attention_next, true,
          "fetch the next task's keys while summing values (AttentionTileTask::next), as "
          "the backend does (--kernels attention)");
ABSL_FLAG(bool, attention_chunked, true,
          "contexts over kAttentionKeyChunk keys in chunks + MergeKeyChunks, as the "
          "backend runs them (--kernels attention)");

namespace weft {
namespace {

// Random GGML blocks with small positive scales.
std::vector<uint8_t> RandomBlocks(DType dtype, int64_t rows, int64_t cols,
                                  std::mt19937& rng) {
  const int64_t block_bytes = DTypeBlockBytes(dtype);
  const int64_t blocks = rows * cols / kQuantBlockSize;
  std::vector<uint8_t> bytes(blocks * block_bytes);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  for (int64_t i = 0; i < blocks; ++i) {
    const uint16_t d = FloatToHalf(scale(rng));
    std::memcpy(&bytes[i * block_bytes], &d, 2);
    if (dtype == DType::kQ4_1) {
      const uint16_t m = FloatToHalf(-8 * scale(rng));
      std::memcpy(&bytes[i * block_bytes + 2], &m, 2);
    }
  }
  return bytes;
}

// One decode step's attention, all layers, on one thread.
int RunAttention() {
  constexpr int kLayers = 30, kKvHeads = 3, kGroup = 3, kHeadDim = 64, kBlock = 16;
  constexpr int kChunk = cpu::kAttentionKeyChunk;
  const int kSeqs = absl::GetFlag(FLAGS_attention_seqs);
  const int context = absl::GetFlag(FLAGS_attention_context);
  const int chunks =
      absl::GetFlag(FLAGS_attention_chunked) ? (context + kChunk - 1) / kChunk : 1;
  const bool avx2 = absl::GetFlag(FLAGS_attention_avx2);
  if (context <= 0 || kSeqs <= 0 || (!avx2 && !cpu::HasAvx512Vnni())) {
    std::fprintf(stderr,
                 "weft-bench-cpu-kernels: attention needs AVX-512 (or --attention_avx2) "
                 "and a context > 0\n");
    return 1;
  }
  const auto attend = avx2 ? cpu::avx2::AttendThreePass : cpu::avx512::AttendQueryTile;
  const auto merge = avx2 ? cpu::avx2::MergeKeyChunks : cpu::avx512::MergeKeyChunks;
  const int blocks_per_seq = (context + kBlock - 1) / kBlock;
  const int64_t block_elements = int64_t{kKvHeads} * kBlock * kHeadDim;
  const int64_t layer_blocks = int64_t{kSeqs} * blocks_per_seq;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<uint16_t> k(kLayers * layer_blocks * block_elements), v(k.size());
  for (uint16_t& e : k) e = FloatToHalf(value(rng));
  for (uint16_t& e : v) e = FloatToHalf(value(rng));
  std::vector<int32_t> blocks(layer_blocks);
  for (int64_t i = 0; i < layer_blocks; ++i) blocks[i] = static_cast<int32_t>(i);
  std::vector<float> q(kSeqs * kKvHeads * kGroup * kHeadDim), out(q.size());
  for (float& e : q) e = value(rng);
  const int span = chunks > 1 ? kChunk : context;
  std::vector<float> scratch(
      avx2 ? cpu::avx2::ThreePassAttentionScratch(1, kGroup, kHeadDim, span)
           : cpu::avx512::Avx512AttentionScratch(1, kGroup, kHeadDim, span));
  const int64_t chunk_floats = cpu::AttentionPartialFloats(kGroup, kHeadDim);
  std::vector<float> partials(chunks * chunk_floats);
  const bool fetch_next = absl::GetFlag(FLAGS_attention_next);
  auto step = [&] {
    for (int l = 0; l < kLayers; ++l) {
      const uint16_t* k_layer = k.data() + l * layer_blocks * block_elements;
      const uint16_t* v_layer = v.data() + l * layer_blocks * block_elements;
      for (int s = 0; s < kSeqs; ++s) {
        for (int h = 0; h < kKvHeads; ++h) {
          cpu::AttentionTileTask a;
          a.q = q.data() + (s * kKvHeads + h) * kGroup * kHeadDim;
          a.out = out.data() + (s * kKvHeads + h) * kGroup * kHeadDim;
          a.token_stride = kKvHeads * kGroup * kHeadDim;
          a.num_tokens = 1;
          a.group = kGroup;
          a.head_dim = kHeadDim;
          a.first_visible = context;
          a.scale = 0.125f;
          a.k_base = k_layer + h * kBlock * kHeadDim;
          a.v_base = v_layer + h * kBlock * kHeadDim;
          a.kv_dtype = DType::kF16;
          a.blocks = blocks.data() + s * blocks_per_seq;
          a.block_stride = block_elements;
          a.block_size = kBlock;
          // The backend's next task on this thread: the next KV head, then
          // the next sequence, within the layer; its first chunk's keys.
          cpu::AttentionNextKeys next;
          if (fetch_next && (h + 1 < kKvHeads || s + 1 < kSeqs)) {
            const int nh = (h + 1) % kKvHeads;
            const int ns = h + 1 < kKvHeads ? s : s + 1;
            next.k_base = k_layer + nh * kBlock * kHeadDim;
            next.v_base = v_layer + nh * kBlock * kHeadDim;
            next.blocks = blocks.data() + ns * blocks_per_seq;
            next.key_end = std::min(context, kChunk);
          }
          if (chunks == 1) {
            a.next = next;
            attend(a, scratch.data());
            continue;
          }
          for (int c = 0; c < chunks; ++c) {
            a.key_begin = c * kChunk;
            a.key_end = std::min((c + 1) * kChunk, context);
            a.partial = partials.data() + c * chunk_floats;
            if (c + 1 == chunks) a.next = next;
            attend(a, scratch.data());
          }
          merge(partials.data(), chunks, chunk_floats, kGroup,
                                      kGroup, kHeadDim, a.out, a.token_stride);
        }
      }
    }
  };
  step();
  std::vector<double> seconds;
  for (int rep = 0; rep < absl::GetFlag(FLAGS_reps); ++rep) {
    const auto start = std::chrono::steady_clock::now();
    step();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double bytes = 2.0 * kLayers * kSeqs * context * kKvHeads * kHeadDim * 2;
  std::printf(
      "{\"bench\":\"weft-bench-cpu-kernels\",\"kernel\":\"attention\",\"seqs\":%d,"
      "\"context\":%d,\"chunks\":%d,"
      "\"kv_mb\":%.1f,\"median_ms\":%.3f,\"min_ms\":%.3f,\"gb_per_s\":%.2f}\n",
      kSeqs, context, chunks, bytes / 1e6, seconds[seconds.size() / 2] * 1e3, seconds[0] * 1e3,
      bytes / seconds[seconds.size() / 2] / 1e9);
  return 0;
}

// Median seconds per call of `call` over --reps repetitions of 10 calls.
template <typename Call>
std::pair<double, double> TimeCalls(Call call) {
  call();  // warm-up: caches and the kernels' scratch
  std::vector<double> seconds;
  for (int rep = 0; rep < absl::GetFlag(FLAGS_reps); ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) call();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
        10);
  }
  std::sort(seconds.begin(), seconds.end());
  return {seconds[seconds.size() / 2], seconds[0]};
}

// Copies of a packed weight of `packed_size` bytes that fill --weight_mb
// (at least one), one per call in turn: pack(dst) packs one into `bytes`.
template <typename Pack>
auto PackCopies(int64_t packed_size, std::vector<uint8_t>* bytes, Pack pack) {
  const int64_t copies = std::max<int64_t>(
      1, (absl::GetFlag(FLAGS_weight_mb) * (int64_t{1} << 20) + packed_size - 1) /
             packed_size);
  bytes->resize(copies * packed_size);
  std::vector<decltype(pack(bytes->data()))> weights;
  for (int64_t c = 0; c < copies; ++c) weights.push_back(pack(bytes->data() + c * packed_size));
  return weights;
}

// The packed float matmul (avx2 or AVX-512) of random --rows × --cols
// weights of `dtype` in [-1, 1], one JSON line per m.
void RunFloat(bool avx512, DType dtype, absl::string_view name,
              const std::vector<int64_t>& ms, int64_t rows, int64_t cols,
              std::mt19937& rng) {
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const int64_t element = dtype == DType::kF32 ? 4 : 2;
  std::vector<uint8_t> src(rows * cols * element);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = value(rng);
    if (dtype == DType::kF32) {
      std::memcpy(src.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = dtype == DType::kF16 ? FloatToHalf(v) : FloatToBf16(v);
      std::memcpy(src.data() + 2 * i, &h, 2);
    }
  }
  std::vector<uint8_t> packed_bytes;
  const std::vector<cpu::PackedFloat> weights = PackCopies(
      cpu::PackedFloatBytes(dtype, rows, cols), &packed_bytes, [&](uint8_t* dst) {
        cpu::PackedFloat w = cpu::PackFloat(dtype, rows, cols, src.data(), dst);
        w.prefetch_bytes = cpu::DecodePrefetchBytesFor(/*quantized=*/false, avx512);
        w.next_tile_into_l2 =
            avx512 && absl::GetFlag(FLAGS_float_next_tile_l2) && cpu::L2PolicyFor(avx512);
        return w;
      });
  size_t next_copy = 0;
  for (int64_t m : ms) {
    std::vector<float> x(m * cols);
    for (float& v : x) v = value(rng);
    std::vector<float> y(m * rows);
    const cpu::OutputRows out{y.data(), rows};
    auto call = [&] {
      const cpu::PackedFloat& w = weights[next_copy];
      next_copy = (next_copy + 1) % weights.size();
      (avx512 ? cpu::avx512::PackedFloatMatMul : cpu::avx2::PackedFloatMatMul)(
          w, x.data(), m, cols, 0, w.num_groups, nullptr, out);
    };
    const auto [median, min] = TimeCalls(call);
    std::printf(
        "{\"bench\":\"weft-bench-cpu-kernels\",\"kernel\":\"%s\",\"dtype\":\"%s\","
        "\"m\":%ld,\"rows\":%ld,\"cols\":%ld,\"median_us\":%.2f,\"min_us\":%.2f,"
        "\"gmac_per_s\":%.1f}\n",
        avx512 ? "vnni" : "avx2", std::string(name).c_str(), m, rows, cols,
        median * 1e6, min * 1e6, double(m) * rows * cols / median / 1e9);
    std::fflush(stdout);
  }
}

int RunQuantize(const std::vector<int64_t>& ms, int64_t cols) {
  std::mt19937 rng(1);
  for (const bool avx512 : {false, true}) {
    if (avx512 && !cpu::HasAvx512Vnni()) {
      std::fprintf(stderr, "skipping avx512 quantize: no AVX-512\n");
      continue;
    }
    for (int64_t m : ms) {
      const int64_t padded = (m + 15) / 16 * 16;
      std::vector<float> x(padded * cols);
      std::uniform_real_distribution<float> value(-1.0f, 1.0f);
      for (float& v : x) v = value(rng);
      const int64_t metas = padded * cols / kQuantBlockSize;
      std::vector<int8_t> q(2 * padded * cols), r(padded * cols);
      std::vector<float> floats(3 * metas);
      std::vector<int32_t> sums(2 * metas);
      // The order the backend quantizes into (AVX2 only ever runs row-major).
      const bool tiles = avx512 && m >= cpu::avx512::kMinTileOrderRows;
      auto call = [&] {
        (avx512 ? cpu::avx512::QuantizeRows : cpu::avx2::QuantizeRows)(
            x.data(), cols, cols, 0, m, q.data(), r.data(), floats.data(),
            floats.data() + metas, sums.data(), sums.data() + metas,
            floats.data() + 2 * metas, tiles);
      };
      const auto [median, min] = TimeCalls(call);
      std::printf(
          "{\"bench\":\"weft-bench-cpu-kernels\",\"kernel\":\"quantize\",\"isa\":\"%s\","
          "\"m\":%ld,\"cols\":%ld,\"median_us\":%.3f,\"min_us\":%.3f,"
          "\"ns_per_block\":%.2f}\n",
          avx512 ? "avx512" : "avx2", m, cols, median * 1e6, min * 1e6,
          median * 1e9 / (m * cols / kQuantBlockSize));
      std::fflush(stdout);
    }
  }
  return 0;
}

int Run() {
  if (absl::GetFlag(FLAGS_kernels) == "attention") return RunAttention();
  const int64_t rows = absl::GetFlag(FLAGS_rows), cols = absl::GetFlag(FLAGS_cols);
  if (rows <= 0 || cols <= 0 || cols % kQuantBlockSize != 0) {
    std::fprintf(stderr, "weft-bench-cpu-kernels: --rows > 0, --cols a multiple of 32\n");
    return 1;
  }
  if (const int levels = absl::GetFlag(FLAGS_activation_levels); levels != 1 && levels != 2) {
    std::fprintf(stderr, "weft-bench-cpu-kernels: --activation_levels must be 1 or 2\n");
    return 1;
  }
  std::vector<int64_t> ms;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_m), ',')) {
    int64_t m;
    if (!absl::SimpleAtoi(s, &m) || m <= 0) {
      std::fprintf(stderr, "weft-bench-cpu-kernels: bad --m entry '%s'\n",
                   std::string(s).c_str());
      return 1;
    }
    ms.push_back(m);
  }
  if (absl::GetFlag(FLAGS_kernels) == "quantize") return RunQuantize(ms, cols);
  std::mt19937 rng(1);
  for (absl::string_view kernel : absl::StrSplit(absl::GetFlag(FLAGS_kernels), ',')) {
    const bool avx512 = kernel == "vnni" || kernel == "amx";
    if (avx512 && !cpu::HasAvx512Vnni()) {
      std::fprintf(stderr, "skipping %s: no AVX-512 VNNI\n", std::string(kernel).c_str());
      continue;
    }
    if (kernel == "avx_vnni" && !cpu::HasAvxVnni()) {
      std::fprintf(stderr, "skipping avx_vnni: no AVX-VNNI\n");
      continue;
    }
    if (kernel == "amx" && !cpu::EnableAmx()) {
      std::fprintf(stderr, "skipping amx: no AMX-INT8 or no permission\n");
      continue;
    }
    if (kernel != "avx2" && kernel != "avx_vnni" && kernel != "vnni" && kernel != "amx") {
      std::fprintf(stderr, "weft-bench-cpu-kernels: unknown kernel '%s'\n",
                   std::string(kernel).c_str());
      return 1;
    }
    for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_dtypes), ',')) {
      DType dtype;
      if (name == "q4_0") dtype = DType::kQ4_0;
      else if (name == "q4_1") dtype = DType::kQ4_1;
      else if (name == "q8_0") dtype = DType::kQ8_0;
      else if (name == "f32") dtype = DType::kF32;
      else if (name == "f16") dtype = DType::kF16;
      else if (name == "bf16") dtype = DType::kBF16;
      else {
        std::fprintf(stderr, "weft-bench-cpu-kernels: unknown dtype '%s'\n",
                     std::string(name).c_str());
        return 1;
      }
      if (!IsQuantized(dtype)) {
        if (kernel == "avx_vnni" || kernel == "amx") {
          std::fprintf(stderr, "skipping %s %s: float weights run avx2 or vnni\n",
                       std::string(kernel).c_str(), std::string(name).c_str());
          continue;
        }
        RunFloat(kernel == "vnni", dtype, name, ms, rows, cols, rng);
        continue;
      }
      const std::vector<uint8_t> blocks = RandomBlocks(dtype, rows, cols, rng);
      std::vector<uint8_t> packed_bytes;
      const std::vector<cpu::PackedQuant> weights = PackCopies(
          cpu::PackedQuantBytes(dtype, rows, cols), &packed_bytes, [&](uint8_t* dst) {
            cpu::PackedQuant w = cpu::PackQuant(dtype, rows, cols, blocks.data(),
                                                /*unsigned_q8=*/kernel != "avx2", dst);
            w.prefetch_bytes = cpu::DecodePrefetchBytesFor(/*quantized=*/true, avx512);
            w.l2_prefetch_bytes = cpu::DecodeL2PrefetchBytesFor(/*quantized=*/true, avx512);
            return w;
          });
      size_t next_copy = 0;
      for (int64_t m : ms) {
        const int64_t padded = (m + 15) / 16 * 16;  // AMX reads 16-row tiles
        std::vector<float> x(padded * cols);
        std::uniform_real_distribution<float> value(-1.0f, 1.0f);
        for (float& v : x) v = value(rng);
        const int64_t metas = padded * cols / kQuantBlockSize;
        std::vector<int8_t> q(2 * padded * cols), r(padded * cols);
        std::vector<float> scale(metas), scaled_sum(metas), fine_scale(metas);
        std::vector<int32_t> sum_q(metas), sum_r(metas);
        // The AMX kernel reads its own tile order (both levels in q).
        const bool tiles =
            kernel == "amx" || (kernel == "vnni" && m >= cpu::avx512::kMinTileOrderRows);
        cpu::avx2::QuantizeRows(x.data(), cols, cols, 0, padded, q.data(), r.data(),
                                scale.data(), scaled_sum.data(), sum_q.data(),
                                sum_r.data(), fine_scale.data(), tiles);
        const bool one_level = absl::GetFlag(FLAGS_activation_levels) == 1;
        if (one_level) {
          cpu::DropSecondLevel(cols, 0, padded, q.data(), r.data(), scale.data(),
                               scaled_sum.data(), sum_q.data(), sum_r.data(), tiles);
        }
        const cpu::QuantizedRows xq{m,           cols,
                                    q.data(),    r.data(),
                                    scale.data(), scaled_sum.data(),
                                    sum_q.data(), sum_r.data(),
                                    fine_scale.data(), tiles,
                                    one_level};
        std::vector<float> y(m * rows);
        const cpu::OutputRows out{y.data(), rows};
        auto call = [&] {
          const cpu::PackedQuant& w = weights[next_copy];
          next_copy = (next_copy + 1) % weights.size();
          if (kernel == "amx") {
            cpu::amx::QuantMatMul(w, xq, 0, w.num_groups, nullptr, out);
          } else if (kernel == "vnni") {
            cpu::avx512::QuantMatMul(w, xq, 0, w.num_groups, nullptr, out);
          } else if (kernel == "avx_vnni") {
            cpu::avx_vnni::QuantMatMul(w, xq, 0, w.num_groups, nullptr, out);
          } else {
            cpu::avx2::QuantMatMul(w, xq, 0, w.num_groups, nullptr, out);
          }
        };
        const auto [median, min] = TimeCalls(call);
        std::printf(
            "{\"bench\":\"weft-bench-cpu-kernels\",\"kernel\":\"%s\",\"dtype\":\"%s\","
            "\"levels\":%d,\"m\":%ld,\"rows\":%ld,\"cols\":%ld,\"median_us\":%.2f,"
            "\"min_us\":%.2f,\"gmac_per_s\":%.1f}\n",
            std::string(kernel).c_str(), std::string(name).c_str(), one_level ? 1 : 2, m,
            rows, cols,
            median * 1e6, min * 1e6, double(m) * rows * cols / median / 1e9);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return weft::Run();
}
