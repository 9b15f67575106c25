#include "kernels/backend.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace weft {
namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("batch: ", what));
}

}  // namespace

void ArgMaxRows(const float* x, int64_t rows, int64_t cols, int32_t* ids) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    int64_t best = 0;
    bool nan = false;
    for (int64_t c = 0; c < cols; ++c) {
      nan |= std::isnan(row[c]);
      if (row[c] > row[best]) best = c;
    }
    ids[r] = nan ? -1 : static_cast<int32_t>(best);
  }
}

absl::Status Backend::ArgMaxRowsToHost(const Tensor& x, int32_t* ids) {
  std::vector<float> host(static_cast<size_t>(x.rows * x.cols));
  if (absl::Status s = CopyToHost(x, host.data()); !s.ok()) return s;
  ArgMaxRows(host.data(), x.rows, x.cols, ids);
  return absl::OkStatus();
}

absl::Status Backend::MatMuls(const Tensor& x,
                             absl::Span<const MatMulTarget> targets) {
  for (const MatMulTarget& target : targets) {
    if (absl::Status status = MatMul(x, *target.w, target.bias, target.y);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBatch(const BatchMetadata& batch,
                           const KvCacheShape& shape) {
  const int num_tokens = batch.num_tokens();
  const int num_seqs = batch.num_seqs();
  if (num_tokens == 0 || num_seqs == 0) return Invalid("empty batch");
  if (static_cast<int>(batch.positions.size()) != num_tokens ||
      static_cast<int>(batch.slot_mapping.size()) != num_tokens) {
    return Invalid("positions and slot_mapping need one entry per token");
  }
  if (static_cast<int>(batch.kv_indptr.size()) != num_seqs + 1 ||
      static_cast<int>(batch.kv_last_block_len.size()) != num_seqs) {
    return Invalid("kv_indptr / kv_last_block_len sizes do not match seqs");
  }
  if (batch.query_indptr[0] != 0 || batch.query_indptr[num_seqs] != num_tokens) {
    return Invalid("query_indptr must run from 0 to num_tokens");
  }
  if (batch.kv_indptr[0] != 0 ||
      batch.kv_indptr[num_seqs] != static_cast<int>(batch.kv_indices.size())) {
    return Invalid("kv_indptr must run from 0 to the number of kv_indices");
  }
  const int64_t block_size = shape.block_size;
  // Per-thread stamps of the blocks seen, one stamp per sequence checked
  // (the cache's size: no clearing per call).
  thread_local std::vector<uint32_t> seen;
  thread_local uint32_t stamp = 0;
  if (seen.size() < static_cast<size_t>(shape.num_blocks)) {
    seen.assign(static_cast<size_t>(shape.num_blocks), 0);
    stamp = 0;
  }
  // Per-thread: the sequence that writes each block in this call. Two
  // sequences never write one block (a block being filled belongs to one
  // sequence; shared prefix blocks are full and only read), except CUDA
  // graph padding: one-token sequences at position 0 of the dummy block,
  // the cache's last.
  thread_local std::vector<uint64_t> writer;  // (call << 32) | sequence
  thread_local uint32_t call = 0;
  if (writer.size() < static_cast<size_t>(shape.num_blocks)) {
    writer.assign(static_cast<size_t>(shape.num_blocks), 0);
    call = 0;
  }
  if (++call == 0) {
    std::fill(writer.begin(), writer.end(), 0);
    call = 1;
  }
  auto is_padding = [&batch, &shape](int s) {
    return batch.query_indptr[s + 1] - batch.query_indptr[s] == 1 &&
           batch.kv_indptr[s + 1] - batch.kv_indptr[s] == 1 &&
           batch.kv_last_block_len[s] == 1 &&
           batch.kv_indices[batch.kv_indptr[s]] == shape.num_blocks - 1;
  };
  for (int s = 0; s < num_seqs; ++s) {
    const int q_begin = batch.query_indptr[s];
    const int q_len = batch.query_indptr[s + 1] - q_begin;
    const int kv_begin = batch.kv_indptr[s];
    const int num_blocks = batch.kv_indptr[s + 1] - kv_begin;
    const int last = batch.kv_last_block_len[s];
    if (q_len < 1 || num_blocks < 1) {
      return Invalid(absl::StrCat("sequence ", s, " has no tokens or blocks"));
    }
    if (last < 1 || last > block_size) {
      return Invalid(absl::StrCat("sequence ", s, " last_block_len ", last,
                                  " is outside 1..", block_size));
    }
    const int64_t context_len = (num_blocks - 1) * block_size + last;
    if (q_len > context_len) {
      return Invalid(absl::StrCat("sequence ", s, " has more query tokens (",
                                  q_len, ") than context (", context_len,
                                  ")"));
    }
    if (num_blocks > shape.num_blocks) {
      return Invalid(absl::StrCat("sequence ", s, " has ", num_blocks,
                                  " blocks; the cache has ", shape.num_blocks));
    }
    // A block twice in one table: its later positions overwrite the
    // earlier ones' K/V, and the context outgrows what the cache can hold
    // (the reference attention's scores buffer is sized for it). A block
    // seen in this sequence carries this sequence's stamp.
    if (++stamp == 0) {  // wrapped: no stale stamp may equal a new one
      std::fill(seen.begin(), seen.end(), 0);
      stamp = 1;
    }
    for (int b = kv_begin; b < kv_begin + num_blocks; ++b) {
      if (batch.kv_indices[b] < 0 || batch.kv_indices[b] >= shape.num_blocks) {
        return Invalid(absl::StrCat("block id ", batch.kv_indices[b],
                                    " is outside the cache's ",
                                    shape.num_blocks, " blocks"));
      }
      uint32_t& mark = seen[batch.kv_indices[b]];
      if (mark == stamp) {
        return Invalid(absl::StrCat("sequence ", s, " names block ", batch.kv_indices[b],
                                    " more than once"));
      }
      mark = stamp;
    }
    for (int i = 0; i < q_len; ++i) {
      const int t = q_begin + i;
      const int64_t position = context_len - q_len + i;
      if (batch.positions[t] != position) {
        return Invalid(absl::StrCat("token ", t, " has position ",
                                    batch.positions[t], ", expected ",
                                    position));
      }
      const int32_t block = batch.kv_indices[kv_begin + position / block_size];
      const int64_t slot = block * block_size + position % block_size;
      if (batch.slot_mapping[t] != slot) {
        return Invalid(absl::StrCat("token ", t, " slot ",
                                    batch.slot_mapping[t],
                                    " is not its block table's slot ", slot));
      }
      uint64_t& written_by = writer[block];
      const int other = static_cast<int>(written_by & 0xffffffffu);
      if ((written_by >> 32) == call && other != s &&
          !(is_padding(s) && is_padding(other))) {
        return Invalid(absl::StrCat("sequences ", other, " and ", s,
                                    " both write block ", block));
      }
      written_by = (uint64_t{call} << 32) | static_cast<uint32_t>(s);
    }
  }
  for (int32_t row : batch.logits_rows) {
    if (row < 0 || row >= num_tokens) {
      return Invalid(absl::StrCat("logits row ", row, " is out of range"));
    }
  }
  return absl::OkStatus();
}

}  // namespace weft
