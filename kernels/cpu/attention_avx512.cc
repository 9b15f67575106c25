// AVX-512 paged attention over F32 or F16 K/V (see AttendQueryTile in
// cpu_kernels.h; F16 rows are widened to fp32 as they are loaded).
// Compiled with -mavx512* flags; internal linkage only.
//
// Three passes per tile of query rows (tokens × the heads sharing one KV
// head), each row's arithmetic fixed by its own query and visible keys:
//   1. scores: 16 keys × up to 4 rows at a time, each K row loaded (and
//      widened) once for the rows; each key's dot product is head_dim / 16
//      multiply-adds into one vector, and the 16 vectors are summed by one
//      transpose-add tree into the 16 scores (no transposed copy of K).
//   2. softmax: max, e^(s - max) and their sum over the row's visible keys.
//   3. values: out += p_j · V_j for the visible keys in order, 4 (head dim
//      64) or 2 (128) rows at a time in registers, so each V row is loaded
//      once per row group; then out /= Σ p.
// A task of a long context covers one chunk of kAttentionKeyChunk keys:
// the same passes over the chunk's keys, then (unnormalized) the chunk's
// max, Σ p and value sum into task.partial, which MergeKeyChunks combines.
// Keys are read in place from the paged blocks; the K of 16 keys of a
// block is 16 × head_dim contiguous elements. Pass 3 also fetches the K
// and V of the thread's next task (task.next) into L2.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/cpu/avx512_common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace weft::cpu::avx512 {
namespace {

inline float HorizontalMax(__m512 v) {
  const __m512 halves = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  const __m512 quarters =
      _mm512_max_ps(halves, _mm512_shuffle_f32x4(halves, halves, 0xB1));
  const __m128 m4 = _mm512_castps512_ps128(quarters);
  const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  return _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
}

// e^x (Cephes' expf: range reduction by ln 2, degree-5 polynomial; relative
// error ~2e-7 over [-87, 88]); lanes outside `keep` are 0.
inline __m512 Exp(__m512 x, __mmask16 keep) {
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f));
  __m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f),
                              _mm512_set1_ps(0.5f));
  fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mul_ps(keep, y, _mm512_scalef_ps(_mm512_set1_ps(1.0f), fx));
}

// How far ahead (rows) the passes fetch K and V: paged rows are scattered
// over blocks, so the hardware prefetchers lose every stream at a block
// edge; a decode's few query rows leave ~100 cycles per 16 keys, and a
// memory access takes several times that.
constexpr int kKeysAhead = 48;  // + 15 < kAttentionRowsAhead
constexpr int kKeysAheadL2 = 128;
constexpr int kValuesAhead = 24;
static_assert(kKeysAheadL2 + 16 <= kAttentionRowsAhead &&
              kKeysAhead + 16 <= kAttentionRowsAhead &&
              kValuesAhead <= kAttentionRowsAhead);

// 16 elements of a K or V row as fp32.
inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 Load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Fetches a row of kD × 16 elements ahead of its use (into L1, or with
// kHint = _MM_HINT_T1 into L2).
template <int kD, typename T, int kHint = _MM_HINT_T0>
inline void PrefetchRow(const T* row) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int offset = 0; offset < kD * 16 * int{sizeof(T)}; offset += 64) {
    _mm_prefetch(bytes + offset, static_cast<_mm_hint>(kHint));
  }
}

inline __mmask16 FirstLanes(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// Pass 1 for kRows query rows that all see at least key c of the 16 keys
// c .. c + 15 (the caller masks each row's keys past its visible end):
// each K row is loaded (and widened) once for all of them. Per row the arithmetic is
// fixed by the row alone: per key one multiply-add chain over the head
// dimension, then the 16 keys' vectors summed by one transpose-add tree
// (its levels done as the keys come in: pairs, quads, then across the
// 128-bit lanes), so a row's scores do not depend on the rows beside it.
template <int kD, int kRows, typename T>
inline void ScoreRows(const float* const* q, const T* const* keys, __m512 scores[kRows]) {
  __m512 u[kRows][4];
#pragma GCC unroll 4
  for (int quad = 0; quad < 4; ++quad) {
    __m512 t[kRows][2];
#pragma GCC unroll 2
    for (int pair = 0; pair < 2; ++pair) {
      __m512 s[kRows][2];
#pragma GCC unroll 2
      for (int o = 0; o < 2; ++o) {
        const T* k = keys[4 * quad + 2 * pair + o];
        __m512 kv[kD];
        for (int e = 0; e < kD; ++e) kv[e] = Load16(k + 16 * e);
        for (int i = 0; i < kRows; ++i) {
          __m512 d = _mm512_mul_ps(_mm512_loadu_ps(q[i]), kv[0]);
          for (int e = 1; e < kD; ++e) {
            d = _mm512_fmadd_ps(_mm512_loadu_ps(q[i] + 16 * e), kv[e], d);
          }
          s[i][o] = d;
        }
      }
      for (int i = 0; i < kRows; ++i) {
        t[i][pair] = _mm512_add_ps(_mm512_unpacklo_ps(s[i][0], s[i][1]),
                                   _mm512_unpackhi_ps(s[i][0], s[i][1]));
      }
    }
    for (int i = 0; i < kRows; ++i) {
      u[i][quad] = _mm512_add_ps(_mm512_shuffle_ps(t[i][0], t[i][1], 0x44),
                                 _mm512_shuffle_ps(t[i][0], t[i][1], 0xEE));
    }
  }
  for (int i = 0; i < kRows; ++i) {
    const __m512 w0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[i][0], u[i][1], 0x88),
                                    _mm512_shuffle_f32x4(u[i][0], u[i][1], 0xDD));
    const __m512 w1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[i][2], u[i][3], 0x88),
                                    _mm512_shuffle_f32x4(u[i][2], u[i][3], 0xDD));
    scores[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, 0x88),
                              _mm512_shuffle_f32x4(w0, w1, 0xDD));
  }
}

// Walks the keys of task.next, fetching each one's K and V row into L2.
// A decode task waits on memory at every block of its context (the
// blocks are scattered, so the hardware prefetchers lose the stream at
// each edge); fetching the next task's keys while this one sums its
// values, a few at a time, overlaps that wait with work. One burst of
// prefetches for the whole next task instead stalled this one.
template <int kD, typename T>
class NextKeyFetcher {
 public:
  explicit NextKeyFetcher(const AttentionTileTask& task)
      : next_(task.next), block_size_(task.block_size),
        block_stride_(task.block_stride) {
    if (next_.k_base == nullptr || next_.key_end <= next_.key_begin) return;
    left_ = next_.key_end - next_.key_begin;
    block_ = next_.key_begin / block_size_;
    offset_ = next_.key_begin % block_size_;
    Locate();
  }
  int left() const { return left_; }
  // Fetches the next n keys' rows (fewer at the end).
  void Fetch(int n) {
    for (; n > 0 && left_ > 0; --n) {
      PrefetchRow<kD, T, _MM_HINT_T1>(k_);
      PrefetchRow<kD, T, _MM_HINT_T1>(v_);
      if (--left_ == 0) return;
      if (++offset_ == block_size_) {
        ++block_;
        offset_ = 0;
        Locate();
      } else {
        k_ += 16 * kD;
        v_ += 16 * kD;
      }
    }
  }

 private:
  void Locate() {
    const int64_t at = next_.blocks[block_] * block_stride_ + offset_ * 16 * kD;
    k_ = static_cast<const T*>(next_.k_base) + at;
    v_ = static_cast<const T*>(next_.v_base) + at;
  }

  const AttentionNextKeys next_;
  const int block_size_;
  const int64_t block_stride_;
  int left_ = 0;
  int block_ = 0;
  int offset_ = 0;
  const T* k_ = nullptr;
  const T* v_ = nullptr;
};

// Pass 3 for `count` consecutive rows starting at r0, kD = head_dim / 16
// vectors per row; visible(r) is how many of the task's keys row r sees
// (non-decreasing in r; 0 or less: none). With `next`, each key also
// fetches its share of the next task's keys.
template <int kD, int kRows, typename T, typename Visible>
void AccumulateValues(const AttentionTileTask& task, const float* probs,
                      int64_t probs_stride, int r0, const T* const* v_rows,
                      const float* row_sums, const float* row_maxes,
                      Visible visible_keys, NextKeyFetcher<kD, T>* next) {
  __m512 acc[kRows][kD];
  int visible[kRows];
  int max_visible = 0;
  for (int i = 0; i < kRows; ++i) {
    for (int e = 0; e < kD; ++e) acc[i][e] = _mm512_setzero_ps();
    visible[i] = visible_keys(r0 + i);
    if (visible[i] > max_visible) max_visible = visible[i];
  }
  const int min_visible = visible[0];
  const int next_per_key =
      next != nullptr && min_visible > 0 ? (next->left() + min_visible - 1) / min_visible : 0;
  int j = 0;
  for (; j < min_visible; ++j) {
    // The V rows of a sequence are scattered over its blocks: fetch ahead.
    PrefetchRow<kD>(v_rows[j + kValuesAhead]);
    if (next_per_key > 0) next->Fetch(next_per_key);
    __m512 v[kD];
    for (int e = 0; e < kD; ++e) v[e] = Load16(v_rows[j] + 16 * e);
    for (int i = 0; i < kRows; ++i) {
      const __m512 p = _mm512_set1_ps(probs[(r0 + i) * probs_stride + j]);
      for (int e = 0; e < kD; ++e) acc[i][e] = _mm512_fmadd_ps(p, v[e], acc[i][e]);
    }
  }
  for (; j < max_visible; ++j) {
    __m512 v[kD];
    for (int e = 0; e < kD; ++e) v[e] = Load16(v_rows[j] + 16 * e);
    for (int i = 0; i < kRows; ++i) {
      if (j >= visible[i]) continue;
      const __m512 p = _mm512_set1_ps(probs[(r0 + i) * probs_stride + j]);
      for (int e = 0; e < kD; ++e) acc[i][e] = _mm512_fmadd_ps(p, v[e], acc[i][e]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    const int r = r0 + i;
    if (task.partial != nullptr) {
      float* dst = task.partial + AttentionPartialFloats(r, task.head_dim);
      dst[0] = row_maxes[i];
      dst[1] = row_sums[i];
      for (int e = 0; e < kD; ++e) _mm512_storeu_ps(dst + 2 + 16 * e, acc[i][e]);
      continue;
    }
    float* dst = task.out + (r / task.group) * task.token_stride +
                 (r % task.group) * task.head_dim;
    const __m512 inv = _mm512_set1_ps(1.0f / row_sums[i]);
    for (int e = 0; e < kD; ++e) _mm512_storeu_ps(dst + 16 * e, _mm512_mul_ps(acc[i][e], inv));
  }
}

template <int kD, typename T>
void AttendTyped(const AttentionTileTask& task, float* scratch) {
  constexpr int kRowsPerGroup = kD <= 4 ? 4 : 2;
  // Rows scored together: 4 while their vectors fit the 32 registers.
  constexpr int kScoreRows = kD <= 4 ? 4 : 2;
  const int rows = task.num_tokens * task.group;
  // The task's keys: [key_begin, key_end) of the context with `partial`,
  // else all the last row sees. Below, key indices and visible counts are
  // relative to key_begin.
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
  const int64_t stride = (max_visible + 15) / 16 * 16;
  float* zero_floats = scratch;  // [head_dim]: a row of zeros of either type
  const T* zero_row = reinterpret_cast<const T*>(zero_floats);
  const T** key_rows = reinterpret_cast<const T**>(zero_floats + 16 * kD);
  // [stride + kAttentionRowsAhead] pointers each: the tail (zeros) keeps
  // prefetches in range.
  const T** value_rows = key_rows + stride + kAttentionRowsAhead;
  // [rows][stride]
  float* probs = reinterpret_cast<float*>(value_rows + stride + kAttentionRowsAhead);
  float row_sums[kRowsPerGroup];
  float row_maxes[kRowsPerGroup];
  for (int e = 0; e < 16 * kD; ++e) zero_floats[e] = 0;
  const T* k_base = static_cast<const T*>(task.k_base);
  const T* v_base = static_cast<const T*>(task.v_base);
  // Row pointers of every visible key, a block at a time. Past the task's
  // keys: a chunk's row pointers go on into the next chunk's keys, so its
  // fetches ahead warm the next task's first keys (which the same thread
  // takes next, mostly); past the context, rows of zeros. Either is only
  // fetched or masked, never used.
  const int filled = last_visible - key_begin < max_visible + kAttentionRowsAhead
                         ? last_visible - key_begin
                         : max_visible + kAttentionRowsAhead;
  for (int p = 0, block = key_begin / task.block_size,
           o0 = key_begin % task.block_size;
       p < filled; ++block, o0 = 0) {
    const int64_t at = task.blocks[block] * task.block_stride;
    const T* k_block = k_base + at;
    const T* v_block = v_base + at;
    const int n = task.block_size - o0 < filled - p ? task.block_size - o0 : filled - p;
    for (int o = o0; o < o0 + n; ++o, ++p) {
      key_rows[p] = k_block + o * 16 * kD;
      value_rows[p] = v_block + o * 16 * kD;
    }
  }
  for (int p = filled; p < stride + kAttentionRowsAhead; ++p) {
    key_rows[p] = value_rows[p] = zero_row;
  }
  // The first keys into L2 at once (a decode's whole context, often): the
  // loop below keeps kKeysAheadL2 keys in flight from there on.
  for (int p = 0; p < kKeysAheadL2 && p < max_visible; ++p) {
    PrefetchRow<kD, T, _MM_HINT_T1>(key_rows[p]);
  }
  const __m512 scale = _mm512_set1_ps(task.scale);
  // Pass 1: scores, 16 keys × up to 4 rows at a time (ScoreRows).
  auto prefetch_chunk = [&](int c) {
    for (int j = 0; j < 16; ++j) {
      if (c + 16 < max_visible) {
        PrefetchRow<kD>(key_rows[c + kKeysAhead + j]);
        PrefetchRow<kD, T, _MM_HINT_T1>(key_rows[c + kKeysAheadL2 + j]);
      }
      // The same keys' V rows into L2: pass 3 then finds them near
      // instead of stalling on each.
      PrefetchRow<kD, T, _MM_HINT_T1>(value_rows[c + j]);
    }
  };
  auto q_row = [&](int r) {
    return task.q + (r / task.group) * task.token_stride + (r % task.group) * task.head_dim;
  };
  auto store_scores = [&](int r, int c, __m512 sums) {
    const int visible = visible_keys(r);
    _mm512_storeu_ps(probs + r * stride + c,
                     _mm512_mask_blend_ps(FirstLanes(visible - c), _mm512_set1_ps(-INFINITY),
                                          _mm512_mul_ps(sums, scale)));
  };
  for (int c = 0; c < max_visible; c += 16) {
    prefetch_chunk(c);
    for (int r0 = 0; r0 < rows;) {
      // Rows see more keys as r grows: if the first row of a block sees key
      // c, all do (keys a row does not see are masked to -inf).
      if (visible_keys(r0) <= c) {
        ++r0;
        continue;
      }
      const int count = rows - r0 < kScoreRows ? rows - r0 : kScoreRows;
      const float* q[4];
      for (int i = 0; i < count; ++i) q[i] = q_row(r0 + i);
      __m512 sums[4];
      switch (count) {
        case 1: ScoreRows<kD, 1, T>(q, key_rows + c, sums); break;
        case 2: ScoreRows<kD, 2, T>(q, key_rows + c, sums); break;
        case 3:
          if constexpr (kScoreRows >= 3) ScoreRows<kD, 3, T>(q, key_rows + c, sums);
          break;
        default:
          if constexpr (kScoreRows >= 4) ScoreRows<kD, 4, T>(q, key_rows + c, sums);
          break;
      }
      for (int i = 0; i < count; ++i) store_scores(r0 + i, c, sums[i]);
      r0 += count;
    }
  }
  // Pass 2: softmax numerators in place; pass 3 per row group (the last,
  // which sees the most keys, fetches the next task's: a decode's rows are
  // one group).
  NextKeyFetcher<kD, T> next_keys(task);
  for (int r0 = 0; r0 < rows; r0 += kRowsPerGroup) {
    const int count = rows - r0 < kRowsPerGroup ? rows - r0 : kRowsPerGroup;
    NextKeyFetcher<kD, T>* next =
        r0 + count == rows && next_keys.left() > 0 ? &next_keys : nullptr;
    for (int i = 0; i < count; ++i) {
      const int r = r0 + i;
      const int visible = visible_keys(r);
      float* row = probs + r * stride;
      __m512 m = _mm512_set1_ps(-INFINITY);
      for (int c = 0; c < visible; c += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(row + c));
      row_maxes[i] = HorizontalMax(m);  // −inf for a row seeing no key
      const __m512 max = _mm512_set1_ps(row_maxes[i]);
      __m512 sum = _mm512_setzero_ps();
      for (int c = 0; c < visible; c += 16) {
        const __m512 p = Exp(_mm512_sub_ps(_mm512_loadu_ps(row + c), max),
                             FirstLanes(visible - c));
        _mm512_storeu_ps(row + c, p);
        sum = _mm512_add_ps(sum, p);
      }
      row_sums[i] = HorizontalSum(sum);
    }
    switch (count) {
      case 1:
        AccumulateValues<kD, 1, T>(task, probs, stride, r0, value_rows, row_sums,
                                   row_maxes, visible_keys, next);
        break;
      case 2:
        AccumulateValues<kD, 2, T>(task, probs, stride, r0, value_rows, row_sums,
                                   row_maxes, visible_keys, next);
        break;
      case 3:
        if constexpr (kRowsPerGroup >= 3) {
          AccumulateValues<kD, 3, T>(task, probs, stride, r0, value_rows, row_sums,
                                     row_maxes, visible_keys, next);
        }
        break;
      default:
        if constexpr (kRowsPerGroup >= 4) {
          AccumulateValues<kD, 4, T>(task, probs, stride, r0, value_rows, row_sums,
                                     row_maxes, visible_keys, next);
        }
        break;
    }
  }
}

template <typename T>
bool AttendWithElement(const AttentionTileTask& task, float* scratch) {
  switch (task.head_dim) {
    case 16: AttendTyped<1, T>(task, scratch); return true;
    case 32: AttendTyped<2, T>(task, scratch); return true;
    case 48: AttendTyped<3, T>(task, scratch); return true;
    case 64: AttendTyped<4, T>(task, scratch); return true;
    case 80: AttendTyped<5, T>(task, scratch); return true;
    case 96: AttendTyped<6, T>(task, scratch); return true;
    case 112: AttendTyped<7, T>(task, scratch); return true;
    case 128: AttendTyped<8, T>(task, scratch); return true;
    default: return false;
  }
}

}  // namespace

bool AttendQueryTile(const AttentionTileTask& task, float* scratch) {
  return task.kv_dtype == DType::kF16 ? AttendWithElement<uint16_t>(task, scratch)
                                      : AttendWithElement<float>(task, scratch);
}

void MergeKeyChunks(const float* partials, int chunks, int64_t chunk_stride,
                    int rows, int group, int head_dim, float* out,
                    int64_t token_stride) {
  const int64_t row_floats = AttentionPartialFloats(1, head_dim);
  const int vectors = head_dim / 16;
  for (int r = 0; r < rows; ++r) {
    auto chunk = [&](int c) { return partials + c * chunk_stride + r * row_floats; };
    float max = -INFINITY;
    for (int c = 0; c < chunks; ++c) {
      if (chunk(c)[1] > 0 && chunk(c)[0] > max) max = chunk(c)[0];
    }
    // Chunks in order, each weighted by e^(m_c − max); one that the row
    // sees no key of (Σ = 0) is skipped. A row seeing one chunk only gets
    // weight exactly 1 and so the unchunked kernel's result bit for bit.
    __m512 acc[8];
    for (int e = 0; e < vectors; ++e) acc[e] = _mm512_setzero_ps();
    float sum = 0;
    for (int c = 0; c < chunks; ++c) {
      const float* p = chunk(c);
      if (!(p[1] > 0)) continue;
      const float w = std::exp(p[0] - max);
      sum = std::fma(w, p[1], sum);
      const __m512 wv = _mm512_set1_ps(w);
      for (int e = 0; e < vectors; ++e) {
        acc[e] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(p + 2 + 16 * e), acc[e]);
      }
    }
    float* dst = out + (r / group) * token_stride + (r % group) * head_dim;
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int e = 0; e < vectors; ++e) _mm512_storeu_ps(dst + 16 * e, _mm512_mul_ps(acc[e], inv));
  }
}

}  // namespace weft::cpu::avx512
