// The fast CPU kernels behind FastCpuBackend, one implementation per ISA
// (cpu_kernels_avx512.cc: AVX-512 F/BW/VL/VNNI; cpu_kernels_avx2.cc:
// AVX2 + FMA + F16C, the baseline). Each ISA file is compiled with its own
// -m flags, so nothing here may be called before the processor has been
// checked (FastCpuBackend::Create does it).
//
// Quantized weights (Q4_0, Q4_1, Q8_0) are repacked once, at upload, into
// groups of kPackRows = 16 output rows. For group g and block b (32 input
// columns) the packed bytes are
//   qs   Q4: 4 × 64 bytes; vector s (0..3), byte 4r + j = the GGML byte
//            qs[4s + j] of row r: low nibble = column 4s + j, high nibble =
//            column 16 + 4s + j.
//        Q8: 8 × 64 bytes; vector s (0..7), byte 4r + j = q of row r,
//            column 4s + j (stored + 128 as unsigned for AVX-512 VNNI,
//            signed for AVX2).
//   d    16 × f16, each row's block scale.
//   m    16 × f16, each row's block minimum (Q4_1 only).
// so one 32-bit lane of a 512-bit vector holds 4 consecutive columns of one
// row: VPDPBUSD against 4 broadcast activation bytes yields 16 rows' partial
// dot products with no horizontal sums. Rows past the matrix end are zero.
//
// Activations are quantized per block of 32 in two int8 levels: with
// dx = max|x| / 127, q = round(x / dx) and r = round((x / dx - q) · 254), so
// x = dx·q + dx/254·r to within dx/508 — the precision of int16, where
// one int8 level (llama.cpp's Q8 activations) errs by up to dx/2 and moved
// the default model's log-probs by up to 0.6 (measured on the golden
// prompts). Each weight vector is multiplied against both levels, so the
// weights are unpacked once for twice the integer multiply-adds. Σq and Σr
// per block serve the weights' offsets (Q4_0: -8, unsigned Q8: -128) and
// minimums (Q4_1).
#ifndef WEFT_KERNELS_CPU_CPU_KERNELS_H_
#define WEFT_KERNELS_CPU_CPU_KERNELS_H_

#include <cstdint>
#include <type_traits>

#include "kernels/dtype.h"

namespace weft::cpu {

inline constexpr int kPackRows = 16;

// How far ahead (bytes) the matmul tiles fetch each of their weight streams
// with software prefetches (decode tiles of one or two activation rows,
// and the VNNI and AVX2 kernels of several rows; AVX-512's tile-order one
// only where l2_prefetch_bytes is 0): a packed weight's prefetch_bytes,
// which the backend sets for the processor and kernel
// (DecodePrefetchBytesFor). On Intel (Sapphire Rapids) 1 KiB ahead made
// generation 6-12% faster than none; on AMD Zen 4 it made generation
// 6-31% slower than 2 lines ahead with the AVX-512 kernels and AVX2's
// float ones (the hardware prefetchers then stream), while AVX2's
// quantized decode was 4% faster with 1 KiB (docs/cpu.md); AVX-VNNI's
// quantized kernels (the same source) follow AVX2's, unmeasured on AMD.
inline constexpr int64_t kDecodePrefetchBytes = 1024;
inline constexpr int64_t kAmdDecodePrefetchBytes = 128;
// PackedQuant::l2_prefetch_bytes, the L2 policy measured on AMD Zen 4
// (0: off, as on Intel, where it is unmeasured). With it, AVX-512's
// quantized decode tiles (one or two activation rows) also fetch each
// weight stream this far ahead into L2: 2 KiB (on top of the 2 lines into
// L1) made Q4_1 and Q8_0 generation 1.16-1.19× faster at 1 thread and
// 1.07-1.15× at 2; 1 and 4 KiB were no better, F16's float tiles and
// AVX2's quantized ones gained nothing. And the tile-order kernel (3+
// rows) fetches the next weight group into L2 on its first pass over a
// group instead of prefetch_bytes ahead into L1 (B=16 generation 1.07×).
// docs/cpu.md and bench/README.md have the measurements.
inline constexpr int64_t kAmdDecodeL2PrefetchBytes = 2048;

struct PackedQuant {
  DType dtype = DType::kQ4_0;  // kQ4_0, kQ4_1 or kQ8_0
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t num_groups = 0;   // ceil(rows / kPackRows)
  int64_t num_blocks = 0;   // cols / 32
  int64_t qs_bytes = 0;     // packed quants of one (group, block)
  int64_t block_bytes = 0;  // qs + d (+ m) of one (group, block)
  bool unsigned_q8 = false;
  const uint8_t* data = nullptr;  // [num_groups][num_blocks][block_bytes]
  int64_t prefetch_bytes = kDecodePrefetchBytes;
  int64_t l2_prefetch_bytes = 0;  // AVX-512's L2 policy (above); 0: off
};

// f(std::integral_constant<DType, t>{}) for the packed quantized type t ==
// dtype (Q4_0, Q4_1, Q8_0); nothing for any other dtype. The kernels'
// QuantMatMul entry points pick their typed templates with it; each passes
// a lambda of its own, so every instantiation belongs to one ISA's file
// and the linker can never merge one ISA's copy into another's callers.
template <typename F>
inline void ForPackedQuantType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kQ4_0:
      return f(std::integral_constant<DType, DType::kQ4_0>{});
    case DType::kQ4_1:
      return f(std::integral_constant<DType, DType::kQ4_1>{});
    case DType::kQ8_0:
      return f(std::integral_constant<DType, DType::kQ8_0>{});
    default:
      return;
  }
}

// Bytes PackQuant writes for a rows × cols matrix.
int64_t PackedQuantBytes(DType dtype, int64_t rows, int64_t cols);
// Repacks GGML blocks `src` (rows × cols) into `dst` (PackedQuantBytes).
PackedQuant PackQuant(DType dtype, int64_t rows, int64_t cols, const void* src,
                      bool unsigned_q8, uint8_t* dst);

// F32/F16/BF16 weights repacked at upload (AVX-512 path) into groups of
// kPackRows output rows, column-major within a group: element (row
// 16g + i, column k) sits at data[(g · cols + k) · 16 + i] (rows past the
// matrix end are zero). A matmul reads the 16 rows' weights of one column
// as one vector and multiplies it by the broadcast activation (outer
// product form: no horizontal sums), and a decode reads each group as one
// sequential run.
struct PackedFloat {
  DType dtype = DType::kF32;  // kF32, kF16 or kBF16 (as in the file)
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t num_groups = 0;  // ceil(rows / kPackRows)
  const uint8_t* data = nullptr;
  int64_t prefetch_bytes = kDecodePrefetchBytes;
  // The L2 policy (L2PolicyFor, AMD): AVX-512's tiles of several rows,
  // which pass over a tile's weight groups once per 6 rows, fetch the next
  // tile's groups into L2 on their first pass (B=16 generation on F16
  // 1.04-1.05× on Zen 4, bench/README.md).
  bool next_tile_into_l2 = false;
};
int64_t PackedFloatBytes(DType dtype, int64_t rows, int64_t cols);
PackedFloat PackFloat(DType dtype, int64_t rows, int64_t cols, const void* src,
                      uint8_t* dst);

// Activations quantized to two int8 levels per block of 32 columns. The
// levels are row-major, or, for the kernels of several rows (tile_order:
// AMX and avx512's from kMinTileOrderRows), in the order AMX's tile loads
// read: for 16-row tile T and block b, the 16 rows' 32 q bytes (row t at
// byte 32t) then their r bytes, at q + (T·blocks + b)·1024, so one A tile
// is 512 contiguous bytes (8 cache lines, not 16 rows of a strided array)
// and the VNNI kernel finds every activation byte of a block at a constant
// offset from one pointer; rows are padded to a multiple of 16 there.
struct QuantizedRows {
  int64_t rows = 0;
  int64_t cols = 0;
  const int8_t* q = nullptr;          // [rows][cols] first level
  const int8_t* r = nullptr;          // [rows][cols] second level (nullptr if tile_order)
  const float* scale = nullptr;       // [rows][cols / 32] dx
  const float* scaled_sum = nullptr;  // [rows][cols / 32] dx·(Σq + Σr/254)
  const int32_t* sum_q = nullptr;     // [rows][cols / 32] Σq
  const int32_t* sum_r = nullptr;     // [rows][cols / 32] Σr
  const float* fine_scale = nullptr;  // [rows][cols / 32] dx/254 (epilogues)
  bool tile_order = false;            // q holds both levels in the tile order
  // The second level is all zero (DropSecondLevel): a kernel may skip its
  // products, which then add nothing, and get the same bits.
  bool one_level = false;
};

// Activations at one int8 level per block of 32, as llama.cpp quantizes
// them (CpuBackendConfig::activation_levels = 1): after QuantizeRows, zeroes
// rows [row_begin, row_end)'s second level (r bytes, Σr) and sets their
// scaled_sum to dx·Σq, which is what QuantizeRows gives an input whose
// second level rounds to zero. Every kernel then computes with x ≈ dx·q.
void DropSecondLevel(int64_t cols, int64_t row_begin, int64_t row_end, int8_t* q,
                     int8_t* r, const float* scale, float* scaled_sum,
                     const int32_t* sum_q, int32_t* sum_r, bool tile_order);

// Bytes of q in the AMX tile order for `rows` rows of `cols` columns.
inline int64_t AmxTileBytes(int64_t rows, int64_t cols) {
  return (rows + 15) / 16 * 16 * cols * 2;
}
// Where row `row`'s q bytes of block `block` (of `blocks` per row) start in
// the AMX tile order; its r bytes follow 512 bytes later.
inline int64_t AmxTileOffset(int64_t row, int64_t block, int64_t blocks) {
  return ((row / 16) * blocks + block) * 1024 + (row % 16) * 32;
}

inline constexpr float kSecondLevel = 254.0f;

// Output of a matmul: y[r][c] for rows r of the activations and columns c
// (= weight rows); `stride` floats between rows.
struct OutputRows {
  float* data = nullptr;
  int64_t stride = 0;
};

// Rows that see more keys than this attend in chunks of this many keys
// (chunk c: keys [c·kAttentionKeyChunk, (c + 1)·kAttentionKeyChunk)) in the
// three-pass kernels, merged by MergeKeyChunks: a decode's few tasks can
// then be split evenly over the threads (one task a chunk), and a prompt
// tile's score rows stay short at any context. A row's result depends on
// how many keys it sees, not on how its chunks were shared out, so batch
// invariance holds.
inline constexpr int kAttentionKeyChunk = 512;
inline constexpr int kAttentionRowsAhead = 160;  // row pointers past the end
// Floats of one chunk's partial results for `rows` rows (the layout of
// AttentionTileTask::partial: max, Σ, then head_dim value sums a row).
inline constexpr int64_t AttentionPartialFloats(int rows, int head_dim) {
  return int64_t{rows} * (head_dim + 2);
}

// Keys of the attention task a thread runs after the current one, of the
// same layer (so the same block_stride, block_size, head_dim and K/V
// type): [key_begin, key_end) of the blocks `blocks` at k_base / v_base.
struct AttentionNextKeys {
  const void* k_base = nullptr;  // null: none known
  const void* v_base = nullptr;
  const int32_t* blocks = nullptr;
  int key_begin = 0;
  int key_end = 0;
};

// Causal attention of consecutive query tokens of one sequence (a decode
// token, or part of a prompt chunk) × the `group` query heads sharing one
// KV head. Query token i (0-based in the tile) sees first_visible + i
// positions. Each row's arithmetic depends only on its own query and
// visible keys — not on the other rows of the tile — so a token's output
// is the same whatever batch or chunk it is computed in. The layer's K/V
// for this KV head: block b's row p is at element
// base + blocks[b] * block_stride + p * head_dim, F32 or F16 (kv_dtype).
struct AttentionTileTask {
  const float* q;    // token i, head g at q + i * token_stride + g * head_dim
  float* out;        // same layout as q
  int64_t token_stride;
  int num_tokens;
  int group;
  int head_dim;
  int first_visible;
  float scale;
  const void* k_base;
  const void* v_base;
  DType kv_dtype;  // kF32 or kF16
  const int32_t* blocks;
  int64_t block_stride;
  int block_size;
  // The three-pass kernels only (avx512::AttendQueryTile,
  // avx2::AttendThreePass): with `partial`, the task covers just the keys
  // [key_begin, key_end) of its rows' context (one chunk of a long one:
  // kAttentionKeyChunk keys) and writes, per row r, to partial + r *
  // (head_dim + 2): the chunk's largest score, Σ e^(s − max) and the
  // unnormalized value sum (a row that sees none of the chunk's keys: −inf,
  // 0, zeros); the ISA's MergeKeyChunks combines the chunks.
  // Without it, every visible key, normalized into out.
  int key_begin = 0;
  int key_end = 0;
  float* partial = nullptr;
  // avx512::AttendQueryTile only, optional: while it sums the values it
  // fetches these keys' K and V rows into L2, so that the next task finds
  // them there instead of waiting on memory at every block.
  AttentionNextKeys next;
};

// --- AVX2 (baseline) ----------------------------------------------------
namespace avx2 {
// x [rows][cols] (x_stride floats apart) → the arrays of a QuantizedRows
// (same shapes), for rows [row_begin, row_end); with tile_order, both levels
// into q in the tile order (r unused).
void QuantizeRows(const float* x, int64_t x_stride, int64_t cols,
                  int64_t row_begin, int64_t row_end, int8_t* q, int8_t* r,
                  float* scale, float* scaled_sum, int32_t* sum_q,
                  int32_t* sum_r, float* fine_scale, bool tile_order);
// y[:, groups [group_begin, group_end) × 16] = x · wᵀ + bias.
void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y);
// Weight groups one decode tile of QuantMatMul (and avx_vnni's) takes
// for `rows` activation rows (1: any), as avx512::QuantDecodeTileGroups.
constexpr int64_t QuantDecodeTileGroups(int64_t rows) { return rows == 1 ? 2 : 1; }
// y[:, [row_begin, row_end)] = x · wᵀ + bias for F32/F16/BF16 w (rows ×
// cols, row-major, used in place).
void FloatMatMul(DType dtype, const void* w, int64_t cols, int64_t row_begin,
                 int64_t row_end, const float* x, int64_t x_rows,
                 int64_t x_stride, const float* bias, OutputRows y);

// avx512::PackedFloatMatMul in 256-bit vectors, bit for bit (each output
// one fp32 multiply-add chain over the columns in order).
void PackedFloatMatMul(const PackedFloat& w, const float* x, int64_t x_rows,
                       int64_t x_stride, int64_t group_begin,
                       int64_t group_end, const float* bias, OutputRows y);
// Weight groups one decode tile of PackedFloatMatMul takes (1: any).
constexpr int64_t FloatDecodeTileGroups(int64_t rows) { return rows == 1 ? 4 : 1; }

// out = x / rms(x) * weight over n elements.
void RmsNormRow(const float* x, const float* weight, int64_t n, float eps,
                float* out);
// residual += x; out = RmsNorm(residual).
void AddRmsNormRow(float* residual, const float* x, const float* weight,
                   int64_t n, float eps, float* out);
// out[i] = silu(gate[i]) * up[i].
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
// dst[i] = src[i] as IEEE half, rounded to nearest even (F16C): the same
// bits as FloatToHalf (kernels/dtype.h).
void FloatsToHalves(const float* src, int64_t n, uint16_t* dst);

// Flash-style: keys 8 at a time (F16 ones widened to fp32 first),
// transposed once for all the tile's rows, each row keeping a running max,
// denominator and output (online softmax). Floats of scratch it needs.
// (static: no inline function of this header may be shared between TUs
// built for different ISAs.)
static inline int64_t AttentionTileScratch(int num_tokens, int group, int head_dim) {
  return int64_t{num_tokens} * group * (head_dim + 2) + 24 * int64_t{head_dim};
}
void AttendQueryTile(const AttentionTileTask& task, float* scratch);
// Three passes (scores, softmax, values; attention_avx2.cc) for the head
// sizes ThreePassHeadDim accepts: returns false, doing nothing, for others.
// Chunks of long contexts as avx512::AttendQueryTile. Scratch: floats of
// ThreePassAttentionScratch for the tile's rows and its span.
constexpr bool ThreePassHeadDim(int head_dim) {
  return head_dim == 8 || head_dim == 16 || head_dim == 32 || head_dim == 64 ||
         head_dim == 96 || head_dim == 128;
}
bool AttendThreePass(const AttentionTileTask& task, float* scratch);
static inline int64_t ThreePassAttentionScratch(int num_tokens, int group,
                                                int head_dim, int max_visible) {
  const int64_t stride = (int64_t{max_visible} + 7) / 8 * 8;  // keys
  return head_dim + 4 * (stride + kAttentionRowsAhead) +
         int64_t{num_tokens} * group * stride;
}
// avx512::MergeKeyChunks in 256-bit vectors.
void MergeKeyChunks(const float* partials, int chunks, int64_t chunk_stride,
                    int rows, int group, int head_dim, float* out,
                    int64_t token_stride);
}  // namespace avx2

// --- AVX2 + AVX-VNNI (VEX-encoded VPDPBUSD; Intel Alder Lake and later) ---
namespace avx_vnni {
// avx2::QuantMatMul with the byte products summed by VPDPBUSD, bit for
// bit; reads Q8_0 weights packed with unsigned_q8 (avx2's reads them
// signed).
void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y);
}  // namespace avx_vnni

// --- AVX-512 F/BW/VL/VNNI -------------------------------------------------
namespace avx512 {
// avx2::QuantizeRows, bit for bit, in 512-bit vectors.
void QuantizeRows(const float* x, int64_t x_stride, int64_t cols,
                  int64_t row_begin, int64_t row_end, int8_t* q, int8_t* r,
                  float* scale, float* scaled_sum, int32_t* sum_q,
                  int32_t* sum_r, float* fine_scale, bool tile_order);
void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y);
// Weight groups one decode tile of QuantMatMul / PackedFloatMatMul takes
// for `rows` activation rows (1: any). A group range that is not a
// multiple of it leaves its last groups to slower narrow tiles, so the
// backend cuts its thread ranges into multiples of it.
constexpr int64_t QuantDecodeTileGroups(int64_t rows) {
  return rows == 1 ? 4 : rows == 2 ? 2 : 1;
}
// QuantMatMul of this many rows or more reads x in the tile order
// (QuantizedRows::tile_order); of fewer rows, row-major.
inline constexpr int64_t kMinTileOrderRows = 3;
constexpr int64_t FloatDecodeTileGroups(int64_t rows) { return rows == 1 ? 8 : 1; }
// F32/F16/BF16 weights in place (weights this backend did not pack).
void FloatMatMul(DType dtype, const void* w, int64_t cols, int64_t row_begin,
                 int64_t row_end, const float* x, int64_t x_rows,
                 int64_t x_stride, const float* bias, OutputRows y);
// y[:, groups [group_begin, group_end) × 16] = x · wᵀ + bias. Each output
// is one fp32 multiply-add chain over the columns in order, whatever the
// tile, so a row's result does not depend on the other rows of x.
void PackedFloatMatMul(const PackedFloat& w, const float* x, int64_t x_rows,
                       int64_t x_stride, int64_t group_begin,
                       int64_t group_end, const float* bias, OutputRows y);
// The same attention in three passes (scores, softmax, values; see
// attention_avx512.cc) for head_dim a multiple of 16 up to 128: returns
// false, doing nothing, for other head sizes. Scratch: floats of
// Avx512AttentionScratch for the tile's rows and its last row's context.
bool AttendQueryTile(const AttentionTileTask& task, float* scratch);
// out (rows of `group` heads, token_stride floats apart, as in
// AttentionTileTask) = the softmax-weighted value sums of `rows` rows from
// `chunks` partial results (AttentionTileTask::partial; chunk c's at
// partials + c * chunk_stride): Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c.
void MergeKeyChunks(const float* partials, int chunks, int64_t chunk_stride,
                    int rows, int group, int head_dim, float* out,
                    int64_t token_stride);
// Scratch floats of AttendQueryTile for a tile of num_tokens tokens whose
// task spans `max_visible` keys (a chunk's span with `partial`).
static inline int64_t Avx512AttentionScratch(int num_tokens, int group,
                                             int head_dim, int max_visible) {
  const int64_t stride = (int64_t{max_visible} + 15) / 16 * 16;  // keys
  return head_dim + 4 * (stride + kAttentionRowsAhead) +
         int64_t{num_tokens} * group * stride;
}
}  // namespace avx512

// --- AMX-INT8 (with AVX-512) ----------------------------------------------
namespace amx {
// QuantMatMul for packed weights of the AVX-512 layout (unsigned Q8), with
// results bit-identical to avx512::QuantMatMul. x must be in the tile
// order (x.tile_order; the padding rows' values do not matter). The calling
// thread must have AMX permission (EnableAmx).
void QuantMatMul(const PackedQuant& w, const QuantizedRows& x,
                 int64_t group_begin, int64_t group_end, const float* bias,
                 OutputRows y);
}  // namespace amx
// Whether the processor has AMX-TILE and AMX-INT8; asks the kernel for
// permission to use the tile data (Linux arch_prctl) and returns whether
// it was granted, once per process.
bool EnableAmx();
// Whether the processor has what the avx512:: kernels need (AVX-512
// F/BW/VL/DQ/VNNI), and AVX-VNNI (VEX-encoded VPDPBUSD, avx_vnni::).
bool HasAvx512Vnni();
bool HasAvxVnni();
// The decode prefetch distance for this processor and the kernels that
// read the weight (float or quantized weights, AVX-512 or AVX2 kernels):
// kAmdDecodePrefetchBytes on AMD (CPUID vendor AuthenticAMD) except for
// AVX2's quantized kernels, kDecodePrefetchBytes otherwise.
int64_t DecodePrefetchBytesFor(bool quantized, bool avx512);
// Whether AVX-512's kernels follow the L2 policy (the prefetches into L2
// measured on AMD Zen 4, above): on AMD (CPUID vendor AuthenticAMD).
bool L2PolicyFor(bool avx512);
// The L2 one (PackedQuant::l2_prefetch_bytes): kAmdDecodeL2PrefetchBytes
// for AVX-512's quantized kernels under the L2 policy, else 0.
int64_t DecodeL2PrefetchBytesFor(bool quantized, bool avx512);

}  // namespace weft::cpu

#endif  // WEFT_KERNELS_CPU_CPU_KERNELS_H_
