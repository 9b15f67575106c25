#include "runtime/block_manager.h"

#include <xxhash.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weft {

BlockTable::BlockTable(BlockTable&& other) noexcept {
  *this = std::move(other);
}

BlockTable& BlockTable::operator=(BlockTable&& other) noexcept {
  if (this != &other) {
    Reset();
    std::swap(manager_, other.manager_);
    std::swap(blocks_, other.blocks_);
    std::swap(num_tokens_, other.num_tokens_);
    std::swap(num_cached_tokens_, other.num_cached_tokens_);
    std::swap(partial_block_token_ids_, other.partial_block_token_ids_);
  }
  return *this;
}

void BlockTable::Reset() {
  if (manager_ != nullptr) manager_->Release(this);
  manager_ = nullptr;
  blocks_.clear();
  num_tokens_ = 0;
  num_cached_tokens_ = 0;
  partial_block_token_ids_.clear();
}

uint64_t ChainedBlockHash(uint64_t previous_hash,
                          absl::Span<const int32_t> token_ids) {
  return XXH64(token_ids.data(), token_ids.size() * sizeof(int32_t),
               previous_hash);
}

BlockManager::BlockManager(int num_blocks, int block_size,
                           bool enable_prefix_caching, BlockHasher hasher)
    : block_size_(block_size),
      enable_prefix_caching_(enable_prefix_caching),
      hasher_(std::move(hasher)),
      blocks_(num_blocks) {
  free_blocks_.reserve(num_blocks);
  for (BlockId block = num_blocks - 1; block >= 0; --block) {
    free_blocks_.push_back(block);  // block 0 is taken first
  }
  if (enable_prefix_caching_) {
    cached_token_ids_.resize(static_cast<size_t>(num_blocks) * block_size);
  }
}

int BlockManager::NumCachedTokens(absl::Span<const int32_t> token_ids) const {
  const int num_tokens = static_cast<int>(token_ids.size());
  return static_cast<int>(MatchCachedPrefix(token_ids, num_tokens).size()) *
         block_size_;
}

bool BlockManager::CanAllocate(absl::Span<const int32_t> token_ids,
                               int num_tokens, bool use_prefix_cache) const {
  if (num_tokens < 1 || num_tokens > static_cast<int>(token_ids.size())) {
    return false;
  }
  return HasRoomToAllocate(num_tokens,
                           use_prefix_cache
                               ? MatchCachedPrefix(token_ids, num_tokens)
                               : std::vector<BlockId>());
}

absl::StatusOr<BlockTable> BlockManager::Allocate(
    absl::Span<const int32_t> token_ids, int num_tokens,
    bool use_prefix_cache) {
  if (num_tokens < 1 || num_tokens > static_cast<int>(token_ids.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_tokens ", num_tokens, " is outside [1, ", token_ids.size(), "]"));
  }
  const std::vector<BlockId> cached =
      use_prefix_cache ? MatchCachedPrefix(token_ids, num_tokens)
                       : std::vector<BlockId>();
  if (!HasRoomToAllocate(num_tokens, cached)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(num_tokens, " tokens need more KV blocks than the ",
                     num_free_blocks(), " free of ", num_blocks()));
  }
  BlockTable table(this);
  for (BlockId block : cached) {
    AddReference(block);
    table.blocks_.push_back(block);
  }
  table.num_tokens_ = static_cast<int>(cached.size()) * block_size_;
  table.num_cached_tokens_ = table.num_tokens_;
  if (enable_prefix_caching_) {
    prefix_cache_queries_ += static_cast<int64_t>(token_ids.size());
    prefix_cache_hits_ += table.num_cached_tokens_;
  }
  AppendTokens(&table, token_ids.subspan(table.num_tokens_,
                                         num_tokens - table.num_tokens_));
  return table;
}

bool BlockManager::CanAppend(const BlockTable& table,
                             int num_new_tokens) const {
  if (table.manager_ != this || num_new_tokens < 0) return false;
  if (num_new_tokens == 0) return true;
  const int new_blocks = BlocksFor(table.num_tokens_ + num_new_tokens) -
                         static_cast<int>(table.blocks_.size());
  const int copied_blocks = LastBlockNeedsCopy(table) ? 1 : 0;
  return new_blocks + copied_blocks <= num_free_blocks();
}

absl::Status BlockManager::Append(BlockTable* table,
                                  absl::Span<const int32_t> new_token_ids,
                                  std::vector<BlockCopy>* copies) {
  if (table == nullptr || table->manager_ != this) {
    return absl::FailedPreconditionError(
        "the block table does not belong to this block manager");
  }
  if (copies == nullptr) return absl::InvalidArgumentError("copies is null");
  const int num_new_tokens = static_cast<int>(new_token_ids.size());
  if (!CanAppend(*table, num_new_tokens)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "appending ", num_new_tokens, " tokens needs more KV blocks than the ",
        num_free_blocks(), " free of ", num_blocks()));
  }
  if (num_new_tokens == 0) return absl::OkStatus();
  if (LastBlockNeedsCopy(*table)) {
    const BlockId shared = table->blocks_.back();
    const BlockId copy = TakeBlock();
    RemoveReference(shared);
    table->blocks_.back() = copy;
    copies->push_back(BlockCopy{.src = shared, .dst = copy});
  }
  AppendTokens(table, new_token_ids);
  return absl::OkStatus();
}

BlockTable BlockManager::Fork(const BlockTable& table) {
  if (table.manager_ != this) return BlockTable();
  BlockTable fork(this);
  fork.blocks_ = table.blocks_;
  for (BlockId block : fork.blocks_) AddReference(block);
  fork.num_tokens_ = table.num_tokens_;
  fork.num_cached_tokens_ = table.num_cached_tokens_;
  fork.partial_block_token_ids_ = table.partial_block_token_ids_;
  return fork;
}

absl::Status BlockManager::CheckConsistency() const {
  std::vector<int> num_states(blocks_.size(), 0);
  for (BlockId block : free_blocks_) {
    const BlockState& state = blocks_[block];
    if (state.ref_count != 0 || state.registered || state.prefix_id != 0) {
      return absl::InternalError(
          absl::StrCat("free block ", block, " is referenced or has content"));
    }
    ++num_states[block];
  }
  for (auto it = evictable_blocks_.begin(); it != evictable_blocks_.end();
       ++it) {
    const BlockState& state = blocks_[*it];
    if (state.ref_count != 0 || !state.registered ||
        state.evictable_position != it) {
      return absl::InternalError(
          absl::StrCat("evictable block ", *it,
                       " is referenced, unregistered or misplaced"));
    }
    ++num_states[*it];
  }
  int num_registered = 0;
  for (BlockId block = 0; block < num_blocks(); ++block) {
    const BlockState& state = blocks_[block];
    if (state.ref_count < 0) {
      return absl::InternalError(
          absl::StrCat("block ", block, " has ref_count ", state.ref_count));
    }
    if (state.ref_count > 0) ++num_states[block];
    if (num_states[block] != 1) {
      return absl::InternalError(absl::StrCat("block ", block, " is in ",
                                              num_states[block], " states"));
    }
    if (state.registered) {
      ++num_registered;
      auto it = hash_to_block_.find(state.hash);
      if (it == hash_to_block_.end() || it->second != block) {
        return absl::InternalError(absl::StrCat("registered block ", block,
                                                " is not in the prefix cache"));
      }
    }
  }
  if (num_registered != static_cast<int>(hash_to_block_.size())) {
    return absl::InternalError(
        absl::StrCat("the prefix cache holds ", hash_to_block_.size(),
                     " entries for ", num_registered, " registered blocks"));
  }
  return absl::OkStatus();
}

std::vector<BlockId> BlockManager::MatchCachedPrefix(
    absl::Span<const int32_t> token_ids, int max_tokens) const {
  std::vector<BlockId> matched;
  if (!enable_prefix_caching_) return matched;
  const int last_token = static_cast<int>(token_ids.size()) - 1;
  const int max_blocks = std::min(max_tokens, last_token) / block_size_;
  uint64_t hash = 0;
  uint64_t prefix_id = 0;
  for (int i = 0; i < max_blocks; ++i) {
    const absl::Span<const int32_t> block_token_ids =
        token_ids.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    hash = hasher_(hash, block_token_ids);
    const auto it = hash_to_block_.find(hash);
    if (it == hash_to_block_.end()) break;
    const BlockState& cached = blocks_[it->second];
    if (cached.previous_prefix_id != prefix_id ||
        CachedTokenIds(it->second) != block_token_ids) {
      break;  // a hash collision
    }
    matched.push_back(it->second);
    prefix_id = cached.prefix_id;
  }
  return matched;
}

bool BlockManager::HasRoomToAllocate(int num_tokens,
                                     absl::Span<const BlockId> cached) const {
  // Reviving an evictable cached block takes it out of the free count too.
  int num_evictable_cached = 0;
  for (BlockId block : cached) {
    if (blocks_[block].ref_count == 0) ++num_evictable_cached;
  }
  const int new_blocks =
      BlocksFor(num_tokens) - static_cast<int>(cached.size());
  return new_blocks + num_evictable_cached <= num_free_blocks();
}

bool BlockManager::LastBlockNeedsCopy(const BlockTable& table) const {
  return table.num_tokens_ % block_size_ != 0 &&
         blocks_[table.blocks_.back()].ref_count > 1;
}

absl::Span<const int32_t> BlockManager::CachedTokenIds(BlockId block) const {
  return absl::MakeConstSpan(cached_token_ids_)
      .subspan(static_cast<size_t>(block) * block_size_, block_size_);
}

BlockId BlockManager::TakeBlock() {
  BlockId block;
  if (!free_blocks_.empty()) {
    block = free_blocks_.back();
    free_blocks_.pop_back();
  } else {
    block = evictable_blocks_.front();
    Evict(block);
  }
  blocks_[block].ref_count = 1;
  return block;
}

void BlockManager::DropUnreferencedCachedBlocks() {
  while (!evictable_blocks_.empty()) {
    const BlockId block = evictable_blocks_.front();
    Evict(block);
    free_blocks_.push_back(block);
  }
}

void BlockManager::Evict(BlockId block) {
  BlockState& state = blocks_[block];
  evictable_blocks_.erase(state.evictable_position);
  hash_to_block_.erase(state.hash);
  state = BlockState{};
}

void BlockManager::AddReference(BlockId block) {
  BlockState& state = blocks_[block];
  if (state.ref_count == 0) evictable_blocks_.erase(state.evictable_position);
  ++state.ref_count;
}

void BlockManager::RemoveReference(BlockId block) {
  BlockState& state = blocks_[block];
  if (--state.ref_count > 0) return;
  if (state.registered) {
    state.evictable_position =
        evictable_blocks_.insert(evictable_blocks_.end(), block);
  } else {
    state = BlockState{};
    free_blocks_.push_back(block);
  }
}

void BlockManager::Release(BlockTable* table) {
  // Last block first: a prefix's later blocks, which fewer prompts share,
  // are evicted before its earlier ones.
  for (auto it = table->blocks_.rbegin(); it != table->blocks_.rend(); ++it) {
    RemoveReference(*it);
  }
}

void BlockManager::AppendTokens(BlockTable* table,
                                absl::Span<const int32_t> token_ids) {
  std::vector<int32_t>& partial = table->partial_block_token_ids_;
  while (!token_ids.empty()) {
    if (table->num_tokens_ % block_size_ == 0) {
      table->blocks_.push_back(TakeBlock());
    }
    const int room = block_size_ - static_cast<int>(partial.size());
    const int count = std::min(room, static_cast<int>(token_ids.size()));
    partial.insert(partial.end(), token_ids.begin(), token_ids.begin() + count);
    table->num_tokens_ += count;
    token_ids.remove_prefix(count);
    if (static_cast<int>(partial.size()) == block_size_) {
      RegisterFullBlock(*table, partial);
      partial.clear();
    }
  }
}

void BlockManager::RegisterFullBlock(const BlockTable& table,
                                     absl::Span<const int32_t> token_ids) {
  if (!enable_prefix_caching_) return;
  const size_t position = table.blocks_.size() - 1;
  const BlockId block = table.blocks_[position];
  uint64_t previous_hash = 0;
  uint64_t previous_prefix_id = 0;
  if (position > 0) {
    const BlockState& previous = blocks_[table.blocks_[position - 1]];
    previous_hash = previous.hash;
    previous_prefix_id = previous.prefix_id;
  }
  BlockState& state = blocks_[block];
  state.hash = hasher_(previous_hash, token_ids);
  state.previous_prefix_id = previous_prefix_id;
  const auto [it, inserted] = hash_to_block_.try_emplace(state.hash, block);
  if (inserted) {
    state.registered = true;
    state.prefix_id = next_prefix_id_++;
    std::copy(token_ids.begin(), token_ids.end(),
              cached_token_ids_.begin() +
                  static_cast<ptrdiff_t>(block) * block_size_);
    return;
  }
  const BlockState& cached = blocks_[it->second];
  if (cached.previous_prefix_id == previous_prefix_id &&
      CachedTokenIds(it->second) == token_ids) {
    // The same prefix, computed twice: this copy stays out of the cache, and
    // the blocks after it are found through the cached one.
    state.prefix_id = cached.prefix_id;
  } else {
    state.prefix_id = next_prefix_id_++;  // a hash collision: not cached
  }
}

}  // namespace weft
