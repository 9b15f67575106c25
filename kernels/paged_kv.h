// The paged KV cache: one layout shared by the CPU and CUDA backends.
//
// Memory: one allocation holds every layer's K and V blocks,
//   cache[num_layers][2 (K, V)][num_blocks][num_kv_heads][block_size][head_dim]
// ("HND" within a block, as flashinfer calls it): for one KV head a block is
// block_size × head_dim contiguous elements, so an attention kernel reads a
// head's keys of one block in one contiguous run.
//
// A token at position p of a sequence lives in block block_table[p /
// block_size] at offset p % block_size; its "slot" is block_id * block_size +
// offset. Block tables of a batch travel as CSR, never through a global:
//   kv_indptr[num_seqs + 1]   sequence s owns kv_indices[kv_indptr[s] ..
//                             kv_indptr[s + 1]) (blocks in position order)
//   kv_indices[...]           block ids
//   kv_last_block_len[num_seqs] tokens used in the sequence's last block
//                             (1..block_size), so its context length is
//                             (num_blocks - 1) * block_size + last_block_len
// The context length counts the tokens of this step too: their K and V are
// written to their slots before attention runs.
#ifndef WEFT_KERNELS_PAGED_KV_H_
#define WEFT_KERNELS_PAGED_KV_H_

#include <cstdint>
#include <vector>

#include "kernels/dtype.h"

namespace weft {

struct KvCacheShape {
  int num_layers = 0;
  int num_blocks = 0;
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
  DType dtype = DType::kF32;

  // Elements of one block of one layer's K (or V): all heads.
  int64_t block_elements() const {
    return int64_t{num_kv_heads} * block_size * head_dim;
  }
  int64_t layer_elements() const { return block_elements() * num_blocks; }
  int64_t total_elements() const { return layer_elements() * 2 * num_layers; }
};

// One layer's K and V arrays, [num_blocks][num_kv_heads][block_size][head_dim]
// each, on the backend's device.
struct KvLayerView {
  void* k = nullptr;
  void* v = nullptr;
};

// One step's batch as the host builds it: a flat list of tokens from one or
// more sequences (prefill chunks and decodes mixed), sequence by sequence.
struct BatchMetadata {
  std::vector<int32_t> token_ids;      // [num_tokens]
  std::vector<int32_t> positions;      // [num_tokens] position in its sequence
  std::vector<int64_t> slot_mapping;   // [num_tokens] where its K/V goes
  std::vector<int32_t> query_indptr;   // [num_seqs + 1] token range per seq
  std::vector<int32_t> kv_indptr;      // [num_seqs + 1] CSR over kv_indices
  std::vector<int32_t> kv_indices;     // block ids
  std::vector<int32_t> kv_last_block_len;  // [num_seqs]
  // Rows of the flat batch whose logits are wanted, e.g. the last token of
  // each sequence (all rows when scoring a prompt).
  std::vector<int32_t> logits_rows;    // [num_logits]

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const {
    return query_indptr.empty() ? 0
                                : static_cast<int>(query_indptr.size()) - 1;
  }
};

// The same batch with every array on the backend's device (host memory for
// the CPU backend). Produced by Backend::StageBatch; valid until the next
// StageBatch call.
struct BatchView {
  int num_tokens = 0;
  int num_seqs = 0;
  int num_logits = 0;
  int max_query_len = 0;
  int max_context_len = 0;
  const int32_t* token_ids = nullptr;          // [num_tokens]
  const int32_t* positions = nullptr;          // [num_tokens]
  const int64_t* slot_mapping = nullptr;       // [num_tokens]
  const int32_t* query_indptr = nullptr;       // [num_seqs + 1]
  const int32_t* kv_indptr = nullptr;          // [num_seqs + 1]
  const int32_t* kv_indices = nullptr;         // [kv_indptr[num_seqs]]
  const int32_t* kv_last_block_len = nullptr;  // [num_seqs]
  const int32_t* logits_rows = nullptr;        // [num_logits]
};

}  // namespace weft

#endif  // WEFT_KERNELS_PAGED_KV_H_
