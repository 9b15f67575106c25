#include "runtime/model/decode_graphs.h"

#include <algorithm>

namespace weft {

std::vector<int> DecodeGraphBuckets(int max_batch) {
  std::vector<int> buckets;
  const int top = std::min(max_batch, kMaxDecodeGraphBatch);
  for (int b : {1, 2, 4}) {
    if (b <= top) buckets.push_back(b);
  }
  for (int b = 8; b <= top; b += 8) buckets.push_back(b);
  if (top >= 1 && (buckets.empty() || buckets.back() != top)) {
    buckets.push_back(top);
  }
  return buckets;
}

int DecodeGraphBucketFor(absl::Span<const int> buckets, int n) {
  for (int b : buckets) {
    if (b >= n) return b;
  }
  return 0;
}

bool IsPlainDecodeStep(const BatchMetadata& batch) {
  const int n = batch.num_tokens();
  if (n == 0 || batch.num_seqs() != n ||
      static_cast<int>(batch.logits_rows.size()) != n) {
    return false;
  }
  for (int s = 0; s < n; ++s) {
    if (batch.query_indptr[s] != s || batch.logits_rows[s] != s) return false;
  }
  return batch.query_indptr[n] == n;
}

BatchMetadata PadDecodeBatch(const BatchMetadata& batch, int bucket,
                             int dummy_block, int block_size) {
  BatchMetadata out = batch;
  if (out.query_indptr.empty()) out.query_indptr.push_back(0);
  if (out.kv_indptr.empty()) out.kv_indptr.push_back(0);
  for (int t = out.num_tokens(); t < bucket; ++t) {
    out.token_ids.push_back(0);
    out.positions.push_back(0);
    out.slot_mapping.push_back(int64_t{dummy_block} * block_size);
    out.query_indptr.push_back(out.query_indptr.back() + 1);
    out.kv_indices.push_back(dummy_block);
    out.kv_indptr.push_back(static_cast<int32_t>(out.kv_indices.size()));
    out.kv_last_block_len.push_back(1);
    out.logits_rows.push_back(t);
  }
  return out;
}

}  // namespace weft
