// Shared by the kernel parity tests: seeded random inputs, tolerance
// checks (atol + rtol·|ref|) and paged batches over shuffled blocks.
#ifndef WEFT_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define WEFT_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dtype.h"
#include "kernels/paged_kv.h"

namespace weft::test {

inline std::vector<float> RandomVector(size_t n, std::mt19937& rng, float scale = 1) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Random GGML blocks of `dtype` (Q4_0 or Q4_1) for a [rows, cols] matrix:
// random nibbles, scales in ±0.05, minimums in ±0.5.
inline std::vector<uint8_t> RandomQ4(DType dtype, int64_t rows, int64_t cols,
                                     std::mt19937& rng) {
  std::vector<uint8_t> bytes(rows * RowBytes(dtype, cols));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  const int64_t block_bytes = DTypeBlockBytes(dtype);
  for (size_t at = 0; at < bytes.size(); at += block_bytes) {
    for (int64_t i = 0; i < block_bytes; ++i) bytes[at + i] = byte(rng);
    const uint16_t d = FloatToHalf(0.05f * unit(rng));
    std::memcpy(&bytes[at], &d, 2);
    if (dtype == DType::kQ4_1) {
      const uint16_t m = FloatToHalf(0.5f * unit(rng));
      std::memcpy(&bytes[at + 2], &m, 2);
    }
  }
  return bytes;
}

inline void ExpectNear(const std::vector<float>& got, const std::vector<float>& want,
                float atol, float rtol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << "at " << i;
  }
}

struct SeqSpec {
  int context_len;  // including the new tokens
  int query_len;
};

// Builds a batch over scattered (shuffled) blocks.
inline BatchMetadata ScatteredBatch(const std::vector<SeqSpec>& seqs, int block_size,
                             int num_blocks, std::mt19937& rng) {
  std::vector<int32_t> free_blocks(num_blocks);
  for (int i = 0; i < num_blocks; ++i) free_blocks[i] = i;
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  BatchMetadata batch;
  batch.query_indptr = {0};
  batch.kv_indptr = {0};
  for (const SeqSpec& s : seqs) {
    const int blocks = (s.context_len + block_size - 1) / block_size;
    std::vector<int32_t> table(free_blocks.end() - blocks, free_blocks.end());
    free_blocks.resize(free_blocks.size() - blocks);
    for (int i = 0; i < s.query_len; ++i) {
      const int position = s.context_len - s.query_len + i;
      batch.token_ids.push_back(0);
      batch.positions.push_back(position);
      batch.slot_mapping.push_back(int64_t{table[position / block_size]} *
                                       block_size +
                                   position % block_size);
    }
    batch.query_indptr.push_back(batch.num_tokens());
    batch.kv_indices.insert(batch.kv_indices.end(), table.begin(), table.end());
    batch.kv_indptr.push_back(static_cast<int>(batch.kv_indices.size()));
    batch.kv_last_block_len.push_back(s.context_len - (blocks - 1) * block_size);
    batch.logits_rows.push_back(batch.num_tokens() - 1);
  }
  return batch;
}

}  // namespace weft::test

#endif  // WEFT_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
