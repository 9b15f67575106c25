// Which decode steps replay a captured graph (CUDA graphs), and the padding
// that makes a step fit its graph. A graph replays the exact kernels it
// recorded, with the sizes it recorded, so the model captures one decode
// step per batch-size bucket at start-up and pads each later decode step
// to the smallest bucket that holds it: the extra sequences are one token
// each (id 0, position 0) in a KV block reserved for them, whose output is
// never read. Pure CPU code, unit-tested without a GPU.
#ifndef WEFT_RUNTIME_MODEL_DECODE_GRAPHS_H_
#define WEFT_RUNTIME_MODEL_DECODE_GRAPHS_H_

#include <vector>

#include "absl/types/span.h"
#include "kernels/paged_kv.h"

namespace weft {

// The largest decode batch captured (larger ones run eagerly).
inline constexpr int kMaxDecodeGraphBatch = 256;

// 1, 2, 4, 8, then every multiple of 8 up to max_batch (capped at
// kMaxDecodeGraphBatch; the last bucket is max_batch itself when it is not
// a multiple of 8). Padding wastes at most 7 sequences' work above 8.
std::vector<int> DecodeGraphBuckets(int max_batch);

// The smallest bucket ≥ n, or 0 when none is (n larger than every bucket).
int DecodeGraphBucketFor(absl::Span<const int> buckets, int n);

// Whether a graph can run `batch`: at least one sequence, each with exactly
// one query token, and the logits of every token in order (a plain decode
// step, which is what the scheduler emits when no prompt is in flight).
bool IsPlainDecodeStep(const BatchMetadata& batch);

// `batch` (a plain decode step, possibly empty) with sequences appended up
// to `bucket` tokens. Each appended sequence is one token, id 0 at
// position 0, whose K/V go to slot 0 of `dummy_block` and whose attention
// reads that block only; its logits row is appended too, in order.
BatchMetadata PadDecodeBatch(const BatchMetadata& batch, int bucket,
                             int dummy_block, int block_size);

}  // namespace weft

#endif  // WEFT_RUNTIME_MODEL_DECODE_GRAPHS_H_
