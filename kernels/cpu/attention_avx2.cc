// AVX2 paged attention over F32 or F16 K/V for head sizes a multiple of 8
// up to 128: the three passes of attention_avx512.cc in 256-bit vectors
// (16 registers instead of 32, so fewer rows share each load).
//   1. scores: 8 keys × up to 3 query rows at a time, each K row loaded
//      (and widened) once for the rows, one vector at a time into every
//      row's multiply-add chain; each key's chain is head_dim / 8
//      multiply-adds, and the 8 keys' vectors are summed by one
//      transpose-add tree into the 8 scores.
//   2. softmax: max, e^(s - max) and their sum over the row's visible keys.
//   3. values: out += p_j · V_j for the visible keys in order, 2 rows × 4
//      vectors of the head at a time in registers; then out /= Σ p.
// Long contexts attend in chunks of kAttentionKeyChunk keys with partial
// results, merged by MergeKeyChunks, exactly as the AVX-512 kernel does.
// Other head sizes (and so any processor): AttendQueryTile, flash-style
// tiles with keys transposed 8 at a time, at the end of this file.
// Compiled with -mavx2 -mfma -mf16c; internal linkage only.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2_common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::avx2 {
namespace {

// How far ahead (rows) the passes fetch K and V (attention_avx512.cc says
// why: paged rows lose the hardware prefetchers at every block edge).
constexpr int kKeysAhead = 48;
constexpr int kKeysAheadL2 = 128;
constexpr int kValuesAhead = 24;
static_assert(kKeysAheadL2 + 8 <= kAttentionRowsAhead &&
              kKeysAhead + 8 <= kAttentionRowsAhead &&
              kValuesAhead <= kAttentionRowsAhead);

// 8 elements of a K or V row as fp32.
inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Fetches a row of kD × 8 elements ahead of its use (into L1, or with
// kHint = _MM_HINT_T1 into L2).
template <int kD, typename T, int kHint = _MM_HINT_T0>
inline void PrefetchRow(const T* row) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int offset = 0; offset < kD * 8 * int{sizeof(T)}; offset += 64) {
    _mm_prefetch(bytes + offset, static_cast<_mm_hint>(kHint));
  }
}

// Lanes [0, n) all ones, the rest zeros.
inline __m256 FirstLanes(int n) {
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(
      _mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

// Each of kRows rows' dot products with two keys, summed pairwise: lanes
// (0, 1, 4, 5) of the result hold partial sums of the first key, (2, 3, 6,
// 7) of the second (the first level of the transpose-add tree).
template <int kD, int kRows, typename T>
inline void ScorePair(const float* const* q, const T* k0, const T* k1,
                      __m256 pair[kRows]) {
  __m256 s0[kRows], s1[kRows];
  for (int e = 0; e < kD; ++e) {
    const __m256 a = Load8(k0 + 8 * e);
    const __m256 b = Load8(k1 + 8 * e);
    for (int i = 0; i < kRows; ++i) {
      const __m256 qe = _mm256_loadu_ps(q[i] + 8 * e);
      s0[i] = e == 0 ? _mm256_mul_ps(qe, a) : _mm256_fmadd_ps(qe, a, s0[i]);
      s1[i] = e == 0 ? _mm256_mul_ps(qe, b) : _mm256_fmadd_ps(qe, b, s1[i]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    pair[i] = _mm256_add_ps(_mm256_unpacklo_ps(s0[i], s1[i]),
                            _mm256_unpackhi_ps(s0[i], s1[i]));
  }
}

// Pass 1 for kRows query rows that all see at least key 0 of the 8 keys
// (the caller masks each row's keys past its visible end): per row and key
// one multiply-add chain over the head dimension, then the tree (pairs,
// quads, then across the 128-bit halves), so a row's scores do not depend
// on the rows beside it.
template <int kD, int kRows, typename T>
inline void ScoreRows(const float* const* q, const T* const* keys, __m256 scores[kRows]) {
  __m256 u[2][kRows];
  for (int quad = 0; quad < 2; ++quad) {
    __m256 t0[kRows], t1[kRows];
    ScorePair<kD, kRows, T>(q, keys[4 * quad], keys[4 * quad + 1], t0);
    ScorePair<kD, kRows, T>(q, keys[4 * quad + 2], keys[4 * quad + 3], t1);
    for (int i = 0; i < kRows; ++i) {
      u[quad][i] = _mm256_add_ps(_mm256_shuffle_ps(t0[i], t1[i], 0x44),
                                 _mm256_shuffle_ps(t0[i], t1[i], 0xEE));
    }
  }
  for (int i = 0; i < kRows; ++i) {
    scores[i] = _mm256_add_ps(_mm256_permute2f128_ps(u[0][i], u[1][i], 0x20),
                              _mm256_permute2f128_ps(u[0][i], u[1][i], 0x31));
  }
}

// Pass 3 for kRows consecutive rows from r0 and the head's vectors [e0, e0
// + kSlice); visible(r) as in attention_avx512.cc (non-decreasing in r).
// Writes the slice of out (normalized) or of the task's partial results.
template <int kD, int kSlice, int kRows, typename T, typename Visible>
void AccumulateSlice(const AttentionTileTask& task, const float* probs,
                     int64_t probs_stride, int r0, int e0,
                     const T* const* v_rows, const float* row_sums,
                     Visible visible_keys) {
  __m256 acc[kRows][kSlice];
  int visible[kRows];
  int max_visible = 0;
  for (int i = 0; i < kRows; ++i) {
    for (int e = 0; e < kSlice; ++e) acc[i][e] = _mm256_setzero_ps();
    visible[i] = visible_keys(r0 + i);
    if (visible[i] > max_visible) max_visible = visible[i];
  }
  const int min_visible = visible[0];
  int j = 0;
  for (; j < min_visible; ++j) {
    if (e0 == 0) PrefetchRow<kD>(v_rows[j + kValuesAhead]);
    __m256 v[kSlice];
    for (int e = 0; e < kSlice; ++e) v[e] = Load8(v_rows[j] + 8 * (e0 + e));
    for (int i = 0; i < kRows; ++i) {
      const __m256 p = _mm256_broadcast_ss(probs + (r0 + i) * probs_stride + j);
      for (int e = 0; e < kSlice; ++e) acc[i][e] = _mm256_fmadd_ps(p, v[e], acc[i][e]);
    }
  }
  for (; j < max_visible; ++j) {
    __m256 v[kSlice];
    for (int e = 0; e < kSlice; ++e) v[e] = Load8(v_rows[j] + 8 * (e0 + e));
    for (int i = 0; i < kRows; ++i) {
      if (j >= visible[i]) continue;
      const __m256 p = _mm256_broadcast_ss(probs + (r0 + i) * probs_stride + j);
      for (int e = 0; e < kSlice; ++e) acc[i][e] = _mm256_fmadd_ps(p, v[e], acc[i][e]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    const int r = r0 + i;
    if (task.partial != nullptr) {
      float* dst = task.partial + AttentionPartialFloats(r, task.head_dim) + 2;
      for (int e = 0; e < kSlice; ++e) _mm256_storeu_ps(dst + 8 * (e0 + e), acc[i][e]);
      continue;
    }
    float* dst = task.out + (r / task.group) * task.token_stride +
                 (r % task.group) * task.head_dim;
    const __m256 inv = _mm256_set1_ps(1.0f / row_sums[i]);
    for (int e = 0; e < kSlice; ++e) {
      _mm256_storeu_ps(dst + 8 * (e0 + e), _mm256_mul_ps(acc[i][e], inv));
    }
  }
}

template <int kD, int kRows, typename T, typename Visible>
void AccumulateValues(const AttentionTileTask& task, const float* probs,
                      int64_t probs_stride, int r0, const T* const* v_rows,
                      const float* row_sums, Visible visible_keys) {
  constexpr int kSlice = kD < 4 ? kD : 4;
  static_assert(kD % kSlice == 0);
  for (int e0 = 0; e0 < kD; e0 += kSlice) {
    AccumulateSlice<kD, kSlice, kRows, T>(task, probs, probs_stride, r0, e0, v_rows,
                                          row_sums, visible_keys);
  }
}

template <int kD, typename T>
void AttendTyped(const AttentionTileTask& task, float* scratch) {
  constexpr int kScoreRows = 3;   // rows scored together
  constexpr int kValueRows = 2;   // rows accumulated together
  const int rows = task.num_tokens * task.group;
  const int last_visible = task.first_visible + task.num_tokens - 1;
  const int key_begin = task.partial != nullptr ? task.key_begin : 0;
  const int key_end = task.partial != nullptr && task.key_end < last_visible
                          ? task.key_end
                          : last_visible;
  const int max_visible = key_end - key_begin;
  auto visible_keys = [&](int r) {
    const int seen = task.first_visible + r / task.group;
    return (seen < key_end ? seen : key_end) - key_begin;
  };
  const int64_t stride = (max_visible + 7) / 8 * 8;
  float* zero_floats = scratch;  // [head_dim]: a row of zeros of either type
  const T* zero_row = reinterpret_cast<const T*>(zero_floats);
  const T** key_rows = reinterpret_cast<const T**>(zero_floats + 8 * kD);
  const T** value_rows = key_rows + stride + kAttentionRowsAhead;
  float* probs = reinterpret_cast<float*>(value_rows + stride + kAttentionRowsAhead);
  for (int e = 0; e < 8 * kD; ++e) zero_floats[e] = 0;
  const T* k_base = static_cast<const T*>(task.k_base);
  const T* v_base = static_cast<const T*>(task.v_base);
  // Row pointers of every visible key, a block at a time; past the task's
  // keys the next chunk's (fetched, never used), past the context zeros.
  const int filled = last_visible - key_begin < max_visible + kAttentionRowsAhead
                         ? last_visible - key_begin
                         : max_visible + kAttentionRowsAhead;
  for (int p = 0, block = key_begin / task.block_size,
           o0 = key_begin % task.block_size;
       p < filled; ++block, o0 = 0) {
    const int64_t at = task.blocks[block] * task.block_stride;
    const int n = task.block_size - o0 < filled - p ? task.block_size - o0 : filled - p;
    for (int o = o0; o < o0 + n; ++o, ++p) {
      key_rows[p] = k_base + at + o * 8 * kD;
      value_rows[p] = v_base + at + o * 8 * kD;
    }
  }
  for (int p = filled; p < stride + kAttentionRowsAhead; ++p) {
    key_rows[p] = value_rows[p] = zero_row;
  }
  for (int p = 0; p < kKeysAheadL2 && p < max_visible; ++p) {
    PrefetchRow<kD, T, _MM_HINT_T1>(key_rows[p]);
  }
  const __m256 scale = _mm256_set1_ps(task.scale);
  const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
  auto q_row = [&](int r) {
    return task.q + (r / task.group) * task.token_stride + (r % task.group) * task.head_dim;
  };
  // Pass 1: scores, 8 keys × up to kScoreRows rows at a time.
  for (int c = 0; c < max_visible; c += 8) {
    for (int j = 0; j < 8; ++j) {
      if (c + 8 < max_visible) {
        PrefetchRow<kD>(key_rows[c + kKeysAhead + j]);
        PrefetchRow<kD, T, _MM_HINT_T1>(key_rows[c + kKeysAheadL2 + j]);
      }
      PrefetchRow<kD, T, _MM_HINT_T1>(value_rows[c + j]);
    }
    for (int r0 = 0; r0 < rows;) {
      if (visible_keys(r0) <= c) {  // then rows r < r0 see none either
        ++r0;
        continue;
      }
      const int count = rows - r0 < kScoreRows ? rows - r0 : kScoreRows;
      const float* q[kScoreRows];
      for (int i = 0; i < count; ++i) q[i] = q_row(r0 + i);
      __m256 sums[kScoreRows];
      switch (count) {
        case 1: ScoreRows<kD, 1, T>(q, key_rows + c, sums); break;
        case 2: ScoreRows<kD, 2, T>(q, key_rows + c, sums); break;
        default: ScoreRows<kD, 3, T>(q, key_rows + c, sums); break;
      }
      for (int i = 0; i < count; ++i) {
        const int r = r0 + i;
        _mm256_storeu_ps(probs + r * stride + c,
                         _mm256_blendv_ps(minus_inf, _mm256_mul_ps(sums[i], scale),
                                          FirstLanes(visible_keys(r) - c)));
      }
      r0 += count;
    }
  }
  // Pass 2: softmax numerators in place; pass 3 per pair of rows.
  float row_sums[kValueRows];
  for (int r0 = 0; r0 < rows; r0 += kValueRows) {
    const int count = rows - r0 < kValueRows ? rows - r0 : kValueRows;
    for (int i = 0; i < count; ++i) {
      const int r = r0 + i;
      const int visible = visible_keys(r);
      float* row = probs + r * stride;
      __m256 m = minus_inf;
      for (int c = 0; c < visible; c += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(row + c));
      const float row_max = HorizontalMax(m);  // −inf for a row seeing no key
      const __m256 max = _mm256_set1_ps(row_max);
      __m256 sum = _mm256_setzero_ps();
      for (int c = 0; c < visible; c += 8) {
        const __m256 p = _mm256_and_ps(Exp(_mm256_sub_ps(_mm256_loadu_ps(row + c), max)),
                                       FirstLanes(visible - c));
        _mm256_storeu_ps(row + c, p);
        sum = _mm256_add_ps(sum, p);
      }
      row_sums[i] = HorizontalSum(sum);
      if (task.partial != nullptr) {
        float* dst = task.partial + AttentionPartialFloats(r, task.head_dim);
        dst[0] = row_max;
        dst[1] = row_sums[i];
      }
    }
    if (count == 1) {
      AccumulateValues<kD, 1, T>(task, probs, stride, r0, value_rows, row_sums,
                                 visible_keys);
    } else {
      AccumulateValues<kD, 2, T>(task, probs, stride, r0, value_rows, row_sums,
                                 visible_keys);
    }
  }
}

template <typename T>
bool AttendWithElement(const AttentionTileTask& task, float* scratch) {
  static_assert(ThreePassHeadDim(8) && ThreePassHeadDim(16) && ThreePassHeadDim(32) &&
                ThreePassHeadDim(64) && ThreePassHeadDim(96) && ThreePassHeadDim(128));
  switch (task.head_dim) {
    case 8: AttendTyped<1, T>(task, scratch); return true;
    case 16: AttendTyped<2, T>(task, scratch); return true;
    case 32: AttendTyped<4, T>(task, scratch); return true;
    case 64: AttendTyped<8, T>(task, scratch); return true;
    case 96: AttendTyped<12, T>(task, scratch); return true;
    case 128: AttendTyped<16, T>(task, scratch); return true;
    default: return false;
  }
}

}  // namespace

bool AttendThreePass(const AttentionTileTask& task, float* scratch) {
  return task.kv_dtype == DType::kF16 ? AttendWithElement<uint16_t>(task, scratch)
                                      : AttendWithElement<float>(task, scratch);
}

void MergeKeyChunks(const float* partials, int chunks, int64_t chunk_stride,
                    int rows, int group, int head_dim, float* out,
                    int64_t token_stride) {
  const int64_t row_floats = AttentionPartialFloats(1, head_dim);
  for (int r = 0; r < rows; ++r) {
    auto chunk = [&](int c) { return partials + c * chunk_stride + r * row_floats; };
    float max = -INFINITY;
    for (int c = 0; c < chunks; ++c) {
      if (chunk(c)[1] > 0 && chunk(c)[0] > max) max = chunk(c)[0];
    }
    // As avx512::MergeKeyChunks: chunks in order, each weighted by
    // e^(m_c − max), one the row sees no key of skipped; a row seeing one
    // chunk only gets weight exactly 1 (the unchunked result bit for bit).
    __m256 acc[16];
    const int vectors = head_dim / 8;
    for (int e = 0; e < vectors; ++e) acc[e] = _mm256_setzero_ps();
    float sum = 0;
    for (int c = 0; c < chunks; ++c) {
      const float* p = chunk(c);
      if (!(p[1] > 0)) continue;
      const float w = std::exp(p[0] - max);
      sum = std::fma(w, p[1], sum);
      const __m256 wv = _mm256_set1_ps(w);
      for (int e = 0; e < vectors; ++e) {
        acc[e] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 2 + 8 * e), acc[e]);
      }
    }
    float* dst = out + (r / group) * token_stride + (r % group) * head_dim;
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (int e = 0; e < vectors; ++e) _mm256_storeu_ps(dst + 8 * e, _mm256_mul_ps(acc[e], inv));
  }
}

// --- The flash-style kernel (other head sizes) ------------------------------

namespace {

// out[8 i + j] = rows[j][e + i] for i, j < 8: eight key rows' dims
// [e, e + 8) transposed, so one vector holds one dim of 8 keys.
inline void Transpose8x8(const float* const* rows, int e, float* out) {
  __m256 r[8];
  for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(rows[j] + e);
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(out + 0, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(out + 32, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(out + 40, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(out + 48, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(out + 56, _mm256_permute2f128_ps(s3, s7, 0x31));
}

}  // namespace

void AttendQueryTile(const AttentionTileTask& task, float* scratch) {
  const int d = task.head_dim;
  const int rows = task.num_tokens * task.group;
  float* o = scratch;                          // [rows][d]
  float* row_max = o + int64_t{rows} * d;      // [rows]
  float* row_sum = row_max + rows;             // [rows]
  float* k_t = row_sum + rows;                 // [d][8] the chunk's keys
  float* widened = k_t + 8 * int64_t{d};       // [2][8][d] F16 K, V as fp32
  for (int r = 0; r < rows; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0;
  }
  std::memset(o, 0, sizeof(float) * rows * d);
  const int max_visible = task.first_visible + task.num_tokens - 1;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 scale = _mm256_set1_ps(task.scale);
  const bool f16 = task.kv_dtype == DType::kF16;
  // Row `position` of K (kind 0) or V (1) as fp32: in place, or widened
  // from F16 into slot j of the chunk's scratch.
  auto row_of = [&](int kind, int position, int j) -> const float* {
    const int64_t at = task.blocks[position / task.block_size] * task.block_stride +
                       int64_t{position % task.block_size} * d;
    const void* base = kind == 0 ? task.k_base : task.v_base;
    if (!f16) return static_cast<const float*>(base) + at;
    const uint16_t* src = static_cast<const uint16_t*>(base) + at;
    float* dst = widened + (int64_t{kind} * 8 + j) * d;
    int i = 0;
    for (; i + 8 <= d; i += 8) {
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
                                    reinterpret_cast<const __m128i*>(src + i))));
    }
    for (; i < d; ++i) dst[i] = _cvtsh_ss(src[i]);
    return dst;
  };
  for (int c = 0; c < max_visible; c += 8) {
    const int chunk = max_visible - c < 8 ? max_visible - c : 8;
    const float* v_rows[8];
    if (chunk == 8 && d % 8 == 0) {
      const float* k[8];
      for (int j = 0; j < 8; ++j) {
        k[j] = row_of(0, c + j, j);
        v_rows[j] = row_of(1, c + j, j);
      }
      for (int e = 0; e < d; e += 8) Transpose8x8(k, e, k_t + 8 * e);
    } else {
      for (int j = 0; j < 8; ++j) {
        if (j < chunk) {
          const float* k = row_of(0, c + j, j);
          for (int i = 0; i < d; ++i) k_t[i * 8 + j] = k[i];
          v_rows[j] = row_of(1, c + j, j);
        } else {
          for (int i = 0; i < d; ++i) k_t[i * 8 + j] = 0;
          v_rows[j] = nullptr;
        }
      }
    }
    // Scores of 4 rows at a time, two accumulators each: 8 independent
    // multiply-add chains share every load of the transposed keys.
    for (int r0 = 0; r0 < rows; r0 += 4) {
      const float* q[4];
      for (int rr = 0; rr < 4; ++rr) {
        const int r = r0 + rr < rows ? r0 + rr : r0;  // spare lanes redo r0
        q[rr] = task.q + (r / task.group) * task.token_stride + (r % task.group) * d;
      }
      __m256 acc[4][2];
      for (int rr = 0; rr < 4; ++rr) {
        acc[rr][0] = _mm256_setzero_ps();
        acc[rr][1] = _mm256_setzero_ps();
      }
      int i = 0;
      for (; i + 2 <= d; i += 2) {
        const __m256 k0 = _mm256_loadu_ps(k_t + 8 * i);
        const __m256 k1 = _mm256_loadu_ps(k_t + 8 * (i + 1));
        for (int rr = 0; rr < 4; ++rr) {
          acc[rr][0] = _mm256_fmadd_ps(_mm256_set1_ps(q[rr][i]), k0, acc[rr][0]);
          acc[rr][1] = _mm256_fmadd_ps(_mm256_set1_ps(q[rr][i + 1]), k1, acc[rr][1]);
        }
      }
      for (; i < d; ++i) {
        const __m256 k0 = _mm256_loadu_ps(k_t + 8 * i);
        for (int rr = 0; rr < 4; ++rr) {
          acc[rr][0] = _mm256_fmadd_ps(_mm256_set1_ps(q[rr][i]), k0, acc[rr][0]);
        }
      }
      for (int rr = 0; rr < 4 && r0 + rr < rows; ++rr) {
        const int r = r0 + rr;
        const int visible = task.first_visible + r / task.group;
        if (visible <= c) continue;  // every key of the chunk is in its future
        const int valid = visible - c < chunk ? visible - c : chunk;
        const __m256 keep = _mm256_castsi256_ps(
            _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane));
        const __m256 s = _mm256_blendv_ps(
            _mm256_set1_ps(-INFINITY),
            _mm256_mul_ps(_mm256_add_ps(acc[rr][0], acc[rr][1]), scale), keep);
        const float new_max = std::fmax(row_max[r], HorizontalMax(s));
        const __m256 p =
            _mm256_and_ps(Exp(_mm256_sub_ps(s, _mm256_set1_ps(new_max))), keep);
        const float correction = std::exp(row_max[r] - new_max);  // 0 at first
        row_sum[r] = row_sum[r] * correction + HorizontalSum(p);
        row_max[r] = new_max;
        alignas(32) float weights[8];
        _mm256_store_ps(weights, p);
        float* out = o + int64_t{r} * d;
        const __m256 corr = _mm256_set1_ps(correction);
        int e = 0;
        for (; e + 8 <= d; e += 8) {
          __m256 sum = _mm256_mul_ps(_mm256_loadu_ps(out + e), corr);
          for (int j = 0; j < valid; ++j) {
            sum = _mm256_fmadd_ps(_mm256_set1_ps(weights[j]),
                                  _mm256_loadu_ps(v_rows[j] + e), sum);
          }
          _mm256_storeu_ps(out + e, sum);
        }
        for (; e < d; ++e) {
          float sum = out[e] * correction;
          for (int j = 0; j < valid; ++j) sum += weights[j] * v_rows[j][e];
          out[e] = sum;
        }
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    const int token = r / task.group;
    const int head = r % task.group;
    float* dst = task.out + token * task.token_stride + head * d;
    const float inv = 1.0f / row_sum[r];
    for (int i = 0; i < d; ++i) dst[i] = o[int64_t{r} * d + i] * inv;
  }
}

}  // namespace weft::cpu::avx2
