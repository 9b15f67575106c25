// The KV block manager: hands out the ids of the paged KV cache's blocks
// (layout in kernels/paged_kv.h) to sequences, lets sequences with the same
// prompt prefix share full blocks, and copies a shared block before it is
// written. Pure bookkeeping over ids; the runner moves the data.
//
// Every block is in exactly one state:
//   free        on the free list; holds nothing worth keeping
//   cached      unreferenced, but a full block registered in the prefix cache;
//               evictable, least recently released first
//   referenced  held by one or more BlockTables (ref_count > 0), registered
//               in the prefix cache or not
// A BlockTable holds one reference to each of its blocks and returns them
// when it is dropped or Reset(), so no path leaks blocks (TGI's allocator).
//
// Prefix cache: a full block is keyed by a hash chained over every token up
// to its end (xxhash64 of its token ids, seeded with the previous block's
// hash). A hash match alone is never trusted: the cached block's token ids
// and the exact prefix before it (a never-reused prefix id) must match too,
// so a collision costs a cache miss, never the wrong KV. Blocks are
// registered as soon as their slots are reserved (Allocate / Append), before
// the step writes their KV: a sequence that hits them in the same step reads
// KV written earlier in that same forward pass, as in nano-vllm and vLLM.
//
// Not thread-safe: the engine thread owns the manager and every table.
#ifndef WEFT_RUNTIME_BLOCK_MANAGER_H_
#define WEFT_RUNTIME_BLOCK_MANAGER_H_

#include <cstdint>
#include <functional>
#include <list>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace weft {

using BlockId = int32_t;
class BlockManager;

// The blocks of one sequence, in position order: token p lives in block
// blocks()[p / block_size] at offset p % block_size. Move-only; dropping it
// (or Reset()) returns its references to the manager. Must not outlive the
// manager.
class BlockTable {
 public:
  BlockTable() = default;  // empty, owns nothing
  BlockTable(BlockTable&& other) noexcept;
  BlockTable& operator=(BlockTable&& other) noexcept;
  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;
  ~BlockTable() { Reset(); }

  const std::vector<BlockId>& blocks() const { return blocks_; }
  // Tokens whose KV slots are reserved in these blocks.
  int num_tokens() const { return num_tokens_; }
  // Leading prompt tokens found in the prefix cache at Allocate: their KV is
  // already computed.
  int num_cached_tokens() const { return num_cached_tokens_; }
  bool empty() const { return manager_ == nullptr; }

  // Returns every block now; the table is empty afterwards.
  void Reset();

 private:
  friend class BlockManager;
  explicit BlockTable(BlockManager* manager) : manager_(manager) {}

  BlockManager* manager_ = nullptr;
  std::vector<BlockId> blocks_;
  int num_tokens_ = 0;
  int num_cached_tokens_ = 0;
  // The token ids in the last block while it is not full, to hash the block
  // when it fills.
  std::vector<int32_t> partial_block_token_ids_;
};

// Copy-on-write work for the model runner: copy block `src`'s KV (every
// layer, K and V) into block `dst` before the step runs.
struct BlockCopy {
  BlockId src;
  BlockId dst;
  bool operator==(const BlockCopy&) const = default;
};

// The prefix-cache key of a full block: xxhash64 of its token ids, seeded
// with the key of the block before it (0 for the first block).
uint64_t ChainedBlockHash(uint64_t previous_hash,
                          absl::Span<const int32_t> token_ids);

class BlockManager {
 public:
  using BlockHasher = std::function<uint64_t(
      uint64_t previous_hash, absl::Span<const int32_t> token_ids)>;

  // num_blocks >= 0 and block_size >= 1 (the engine config validates them).
  // `hasher` replaces ChainedBlockHash; tests use it to force collisions.
  BlockManager(int num_blocks, int block_size,
               bool enable_prefix_caching = true,
               BlockHasher hasher = ChainedBlockHash);
  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  // Leading tokens of `token_ids` whose KV the prefix cache holds: whole
  // blocks, and never the last token (it must be computed to get logits).
  // A chunked prefill allocates NumCachedTokens(prompt) + its first chunk.
  int NumCachedTokens(absl::Span<const int32_t> token_ids) const;

  // Blocks for a new sequence's first `num_tokens` (1..token_ids.size())
  // tokens of `token_ids`, the full prompt, which prefix matching may use.
  // Leading full blocks found in the prefix cache are shared, and the table's
  // num_cached_tokens() says how many tokens need no compute.
  // InvalidArgument for a bad num_tokens; ResourceExhausted when too few
  // free and evictable blocks are left. With `use_prefix_cache` false
  // nothing is shared (a request that wants every prompt position's logits
  // must compute them all); its full blocks are still registered.
  bool CanAllocate(absl::Span<const int32_t> token_ids, int num_tokens,
                   bool use_prefix_cache = true) const;
  absl::StatusOr<BlockTable> Allocate(absl::Span<const int32_t> token_ids,
                                      int num_tokens,
                                      bool use_prefix_cache = true);

  // Reserves slots for `new_token_ids` after `table`'s tokens (a prefill
  // chunk or decoded tokens). Blocks that fill are registered in the prefix
  // cache. If the last block is shared with a fork and would be written, it is
  // copied first: `table` gets a new block and BlockCopy{old, new} is appended
  // to `copies` (not null). FailedPrecondition for a table of another
  // manager; ResourceExhausted (table unchanged) when too few blocks are left.
  bool CanAppend(const BlockTable& table, int num_new_tokens) const;
  absl::Status Append(BlockTable* table,
                      absl::Span<const int32_t> new_token_ids,
                      std::vector<BlockCopy>* copies);

  // A new table sharing all of `table`'s blocks (n > 1 samples share the
  // prompt). Empty when `table` is empty or belongs to another manager.
  BlockTable Fork(const BlockTable& table);

  // Empties the prefix cache of every block no table holds (they become
  // free). After a failed step, blocks registered for it may hold KV that
  // was never written; the engine drops them this way.
  void DropUnreferencedCachedBlocks();

  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int block_size() const { return block_size_; }
  // Free plus evictable (cached, unreferenced) blocks.
  int num_free_blocks() const {
    return static_cast<int>(free_blocks_.size() + evictable_blocks_.size());
  }
  // Blocks referenced by some table.
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }

  // Prefix-cache statistics over all Allocate calls (0 while disabled):
  // prompt tokens looked up, and those found cached.
  int64_t prefix_cache_queries() const { return prefix_cache_queries_; }
  int64_t prefix_cache_hits() const { return prefix_cache_hits_; }

  // For tests and debugging: the tables holding `block`, and whether the
  // manager's own bookkeeping agrees with itself (every block in exactly one
  // state, cache entries point at full registered blocks).
  int ref_count(BlockId block) const { return blocks_[block].ref_count; }
  absl::Status CheckConsistency() const;

 private:
  friend class BlockTable;

  struct BlockState {
    int ref_count = 0;
    // Set once the block is full (prefix caching on): the chained hash, and
    // ids naming the exact token prefix ending with this block and the one
    // before it. Equal prefix ids mean equal prefixes; ids are never reused.
    uint64_t hash = 0;
    uint64_t prefix_id = 0;
    uint64_t previous_prefix_id = 0;
    // hash_to_block_[hash] is this block; its token ids are in
    // cached_token_ids_.
    bool registered = false;
    // Position in evictable_blocks_ while registered and unreferenced.
    std::list<BlockId>::iterator evictable_position;
  };

  int BlocksFor(int num_tokens) const {
    return (num_tokens + block_size_ - 1) / block_size_;
  }
  // The cached blocks holding the leading full blocks of the first
  // `max_tokens` tokens, up to the first miss; never the last token.
  std::vector<BlockId> MatchCachedPrefix(absl::Span<const int32_t> token_ids,
                                         int max_tokens) const;
  // Whether Allocate finds the blocks beyond the `cached` ones it shares.
  bool HasRoomToAllocate(int num_tokens,
                         absl::Span<const BlockId> cached) const;
  bool LastBlockNeedsCopy(const BlockTable& table) const;
  absl::Span<const int32_t> CachedTokenIds(BlockId block) const;

  // A block with no content and ref_count 1: a free one, else the least
  // recently released cached one (evicted). The caller checked there is one.
  BlockId TakeBlock();
  void Evict(BlockId block);
  void AddReference(BlockId block);
  void RemoveReference(BlockId block);
  void Release(BlockTable* table);
  // Fills `table`'s blocks with `token_ids`, taking blocks as needed.
  void AppendTokens(BlockTable* table, absl::Span<const int32_t> token_ids);
  // Registers the table's last block, just filled with `token_ids`.
  void RegisterFullBlock(const BlockTable& table,
                         absl::Span<const int32_t> token_ids);

  const int block_size_;
  const bool enable_prefix_caching_;
  const BlockHasher hasher_;
  std::vector<BlockState> blocks_;
  std::vector<BlockId> free_blocks_;     // taken from the back
  std::list<BlockId> evictable_blocks_;  // least recently released first
  absl::flat_hash_map<uint64_t, BlockId> hash_to_block_;
  // [num_blocks][block_size]: the token ids of registered blocks.
  std::vector<int32_t> cached_token_ids_;
  uint64_t next_prefix_id_ = 1;  // 0 names the empty prefix
  int64_t prefix_cache_queries_ = 0;
  int64_t prefix_cache_hits_ = 0;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_BLOCK_MANAGER_H_
