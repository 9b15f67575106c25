#include "runtime/block_manager.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft {
namespace {

using ::testing::IsEmpty;

constexpr int kBlockSize = 4;
constexpr int kNumBlocks = 8;

// `count` consecutive token ids starting at `first`.
std::vector<int32_t> Tokens(int32_t first, int count) {
  std::vector<int32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a,
                            const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class BlockManagerTest : public ::testing::Test {
 protected:
  // The whole prompt, allocated at once; fails the test if it cannot be.
  BlockTable AllocatePrompt(BlockManager& manager,
                            const std::vector<int32_t>& prompt) {
    absl::StatusOr<BlockTable> table =
        manager.Allocate(prompt, static_cast<int>(prompt.size()));
    EXPECT_TRUE(table.ok()) << table.status();
    return table.ok() ? *std::move(table) : BlockTable();
  }
  BlockTable AllocatePrompt(const std::vector<int32_t>& prompt) {
    return AllocatePrompt(manager_, prompt);
  }

  BlockManager manager_{kNumBlocks, kBlockSize};
  std::vector<BlockCopy> copies_;
};

TEST_F(BlockManagerTest, AllocateTakesOneBlockPerBlockSizeTokens) {
  BlockTable table = AllocatePrompt(Tokens(0, 9));
  EXPECT_EQ(table.blocks().size(), 3u);
  EXPECT_EQ(table.num_tokens(), 9);
  EXPECT_EQ(table.num_cached_tokens(), 0);
  EXPECT_EQ(manager_.num_used_blocks(), 3);
  EXPECT_EQ(manager_.num_free_blocks(), kNumBlocks - 3);
}

TEST_F(BlockManagerTest, AllocateReusesCachedFullBlocksOfASharedPrefix) {
  BlockTable first = AllocatePrompt(Tokens(0, 10));
  BlockTable second = AllocatePrompt(Concat(Tokens(0, 8), Tokens(100, 3)));
  EXPECT_EQ(second.num_cached_tokens(), 8);
  EXPECT_EQ(second.blocks()[0], first.blocks()[0]);
  EXPECT_EQ(second.blocks()[1], first.blocks()[1]);
  EXPECT_NE(second.blocks()[2], first.blocks()[2]);
  EXPECT_EQ(manager_.ref_count(first.blocks()[0]), 2);
  EXPECT_EQ(manager_.num_used_blocks(), 4);
}

TEST_F(BlockManagerTest, NeverReportsTheWholePromptAsCached) {
  const std::vector<int32_t> prompt = Tokens(0, 8);
  BlockTable first = AllocatePrompt(prompt);
  EXPECT_EQ(manager_.NumCachedTokens(prompt), 4);
  BlockTable second = AllocatePrompt(prompt);
  EXPECT_EQ(second.num_cached_tokens(), 4);
  EXPECT_EQ(second.blocks()[0], first.blocks()[0]);
  EXPECT_NE(second.blocks()[1], first.blocks()[1]);
}

TEST_F(BlockManagerTest, FullBlocksStayCachedAfterTheirTableIsDropped) {
  const std::vector<int32_t> prompt = Tokens(0, 9);
  std::vector<BlockId> dropped_blocks = AllocatePrompt(prompt).blocks();
  EXPECT_EQ(manager_.num_used_blocks(), 0);
  BlockTable again = AllocatePrompt(prompt);
  EXPECT_EQ(again.num_cached_tokens(), 8);
  EXPECT_EQ(again.blocks()[0], dropped_blocks[0]);
  EXPECT_EQ(again.blocks()[1], dropped_blocks[1]);
}

TEST_F(BlockManagerTest, BlocksAfterARecomputedBlockAreStillFound) {
  const std::vector<int32_t> prompt = Tokens(0, 8);
  BlockTable first = AllocatePrompt(prompt);
  BlockTable second = AllocatePrompt(prompt);  // recomputes block 1
  ASSERT_TRUE(manager_.Append(&second, Tokens(50, 4), &copies_).ok());
  BlockTable third = AllocatePrompt(Concat(Concat(prompt, Tokens(50, 4)), {7}));
  EXPECT_EQ(third.num_cached_tokens(), 12);
  EXPECT_EQ(third.blocks()[1], first.blocks()[1]);
  EXPECT_EQ(third.blocks()[2], second.blocks()[2]);
}

TEST_F(BlockManagerTest, ChunkedPrefillAllocatesAChunkAndAppendsTheRest) {
  const std::vector<int32_t> prompt = Tokens(0, 10);
  absl::StatusOr<BlockTable> table = manager_.Allocate(prompt, 4);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->blocks().size(), 1u);
  EXPECT_EQ(table->num_tokens(), 4);
  ASSERT_TRUE(
      manager_.Append(&*table, absl::MakeSpan(prompt).subspan(4), &copies_)
          .ok());
  EXPECT_EQ(table->blocks().size(), 3u);
  EXPECT_EQ(table->num_tokens(), 10);
  EXPECT_EQ(manager_.NumCachedTokens(prompt), 8);
}

TEST_F(BlockManagerTest, ChunkedPrefillStartsAfterTheCachedTokens) {
  const std::vector<int32_t> prompt = Tokens(0, 14);
  BlockTable first = AllocatePrompt(prompt);
  const int cached = manager_.NumCachedTokens(prompt);
  absl::StatusOr<BlockTable> second = manager_.Allocate(prompt, cached + 2);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->num_cached_tokens(), 12);
  EXPECT_EQ(second->num_tokens(), 14);
}

TEST_F(BlockManagerTest, ForkSharesBlocksAndCopiesOnWrite) {
  BlockTable original = AllocatePrompt(Tokens(0, 6));
  BlockTable fork = manager_.Fork(original);
  EXPECT_EQ(fork.blocks(), original.blocks());
  EXPECT_EQ(fork.num_tokens(), 6);
  EXPECT_EQ(manager_.ref_count(original.blocks()[1]), 2);

  ASSERT_TRUE(manager_.Append(&fork, {42}, &copies_).ok());
  ASSERT_EQ(copies_.size(), 1u);
  EXPECT_EQ(copies_[0].src, original.blocks()[1]);
  EXPECT_EQ(copies_[0].dst, fork.blocks()[1]);
  EXPECT_NE(fork.blocks()[1], original.blocks()[1]);
  EXPECT_EQ(fork.blocks()[0], original.blocks()[0]);
  EXPECT_EQ(manager_.ref_count(original.blocks()[1]), 1);

  copies_.clear();
  ASSERT_TRUE(manager_.Append(&original, {43}, &copies_).ok());
  EXPECT_THAT(copies_, IsEmpty());  // the block is no longer shared
}

TEST_F(BlockManagerTest, ForkWithAFullLastBlockAppendsWithoutCopying) {
  BlockTable original = AllocatePrompt(Tokens(0, 8));
  BlockTable fork = manager_.Fork(original);
  ASSERT_TRUE(manager_.Append(&fork, {42}, &copies_).ok());
  EXPECT_THAT(copies_, IsEmpty());
  EXPECT_EQ(fork.blocks().size(), 3u);
  EXPECT_EQ(original.blocks().size(), 2u);
}

TEST_F(BlockManagerTest, DroppingTheTableFreesItsBlocks) {
  {
    BlockTable table = AllocatePrompt(Tokens(0, 30));
    EXPECT_EQ(manager_.num_used_blocks(), kNumBlocks);
    EXPECT_EQ(manager_.num_free_blocks(), 0);
  }
  EXPECT_EQ(manager_.num_used_blocks(), 0);
  EXPECT_EQ(manager_.num_free_blocks(), kNumBlocks);
  EXPECT_TRUE(manager_.CanAllocate(Tokens(100, 32), 32));
}

TEST_F(BlockManagerTest, ResetFreesTheBlocksAndEmptiesTheTable) {
  BlockTable table = AllocatePrompt(Tokens(0, 5));
  table.Reset();
  EXPECT_TRUE(table.empty());
  EXPECT_THAT(table.blocks(), IsEmpty());
  EXPECT_EQ(table.num_tokens(), 0);
  EXPECT_EQ(manager_.num_used_blocks(), 0);
}

TEST_F(BlockManagerTest, MovingATableMovesOwnershipAndAssigningReleases) {
  BlockTable table = AllocatePrompt(Tokens(0, 5));
  BlockTable moved = std::move(table);
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(moved.blocks().size(), 2u);
  EXPECT_EQ(manager_.num_used_blocks(), 2);
  moved = AllocatePrompt(Tokens(100, 1));
  EXPECT_EQ(manager_.num_used_blocks(), 1);
}

TEST_F(BlockManagerTest, EvictsLeastRecentlyUsedCachedBlockFirst) {
  BlockManager manager(4, kBlockSize);
  const std::vector<int32_t> older = Concat(Tokens(0, 4), {99});
  const std::vector<int32_t> newer = Concat(Tokens(10, 4), {99});
  AllocatePrompt(manager, older);  // dropped first: least recently used
  AllocatePrompt(manager, newer);
  // Both full blocks are cached now; two blocks are truly free.
  BlockTable filler = AllocatePrompt(manager, Tokens(20, 12));  // evicts one
  EXPECT_EQ(manager.NumCachedTokens(older), 0);
  EXPECT_EQ(manager.NumCachedTokens(newer), 4);
}

TEST_F(BlockManagerTest, EvictsAPromptsLastBlockBeforeItsFirst) {
  BlockManager manager(3, kBlockSize);
  const std::vector<int32_t> prompt = Concat(Tokens(0, 8), {99});
  AllocatePrompt(manager, prompt);
  BlockTable filler = AllocatePrompt(manager, Tokens(20, 8));  // evicts one
  EXPECT_EQ(manager.NumCachedTokens(prompt), 4);
}

TEST_F(BlockManagerTest, TakesFreeBlocksBeforeEvictingCachedOnes) {
  const std::vector<int32_t> prompt = Concat(Tokens(0, 4), {99});
  AllocatePrompt(prompt);
  BlockTable filler = AllocatePrompt(Tokens(20, 4 * (kNumBlocks - 1)));
  EXPECT_EQ(manager_.NumCachedTokens(prompt), 4);
}

TEST_F(BlockManagerTest, AllocateFailsWithResourceExhaustedWhenFull) {
  BlockTable table = AllocatePrompt(Tokens(0, 4 * (kNumBlocks - 1)));
  const std::vector<int32_t> prompt = Tokens(100, 5);
  EXPECT_FALSE(manager_.CanAllocate(prompt, 5));
  EXPECT_EQ(manager_.Allocate(prompt, 5).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(manager_.num_used_blocks(), kNumBlocks - 1);
  EXPECT_TRUE(manager_.CanAllocate(prompt, 4));
}

TEST_F(BlockManagerTest, CanAllocateCountsRevivedCachedBlocksAsTaken) {
  BlockManager manager(2, kBlockSize);
  AllocatePrompt(manager, Tokens(0, 5));  // block 0 stays cached
  const std::vector<int32_t> prompt = Tokens(0, 9);
  EXPECT_EQ(manager.NumCachedTokens(prompt), 4);
  EXPECT_EQ(manager.num_free_blocks(), 2);
  EXPECT_FALSE(manager.CanAllocate(prompt, 9));  // 1 revived + 2 new > 2
  EXPECT_TRUE(manager.CanAllocate(prompt, 8));
}

TEST_F(BlockManagerTest, AllocateRejectsNumTokensOutsideThePrompt) {
  const std::vector<int32_t> prompt = Tokens(0, 5);
  EXPECT_EQ(manager_.Allocate(prompt, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_.Allocate(prompt, 6).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(manager_.CanAllocate(prompt, 6));
}

TEST_F(BlockManagerTest, AppendFailsWithResourceExhaustedAndLeavesTheTable) {
  BlockTable table = AllocatePrompt(Tokens(0, 4 * kNumBlocks - 1));
  EXPECT_TRUE(manager_.CanAppend(table, 1));
  EXPECT_FALSE(manager_.CanAppend(table, 2));
  EXPECT_EQ(manager_.Append(&table, {1, 2}, &copies_).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(table.num_tokens(), 4 * kNumBlocks - 1);
  EXPECT_EQ(table.blocks().size(), static_cast<size_t>(kNumBlocks));
}

TEST_F(BlockManagerTest, CopyOnWriteNeedsAFreeBlock) {
  BlockTable original = AllocatePrompt(Tokens(0, 4 * kNumBlocks - 1));
  BlockTable fork = manager_.Fork(original);
  EXPECT_FALSE(manager_.CanAppend(fork, 1));
  EXPECT_EQ(manager_.Append(&fork, {1}, &copies_).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(copies_, IsEmpty());
}

TEST_F(BlockManagerTest, AppendRejectsATableOfAnotherManager) {
  BlockManager other(kNumBlocks, kBlockSize);
  BlockTable table = AllocatePrompt(other, Tokens(0, 3));
  EXPECT_EQ(manager_.Append(&table, {1}, &copies_).code(),
            absl::StatusCode::kFailedPrecondition);
  BlockTable empty;
  EXPECT_EQ(manager_.Append(&empty, {1}, &copies_).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(manager_.Fork(table).empty());
}

TEST_F(BlockManagerTest, HashCollisionDoesNotReuseWrongBlock) {
  BlockManager manager(kNumBlocks, kBlockSize, /*enable_prefix_caching=*/true,
                       [](uint64_t, absl::Span<const int32_t>) {
                         return uint64_t{42};  // every block collides
                       });
  BlockTable first = AllocatePrompt(manager, Tokens(0, 5));
  BlockTable second = AllocatePrompt(manager, Tokens(100, 5));
  EXPECT_EQ(second.num_cached_tokens(), 0);
  EXPECT_NE(second.blocks()[0], first.blocks()[0]);
  EXPECT_EQ(manager.prefix_cache_hits(), 0);
}

TEST_F(BlockManagerTest, SameBlockAfterADifferentPrefixIsNotReused) {
  // A hash that ignores the blocks before: block [4..8) after [0..4) and
  // after [100..104) collide.
  BlockManager manager(kNumBlocks, kBlockSize, /*enable_prefix_caching=*/true,
                       [](uint64_t, absl::Span<const int32_t> token_ids) {
                         return ChainedBlockHash(0, token_ids);
                       });
  BlockTable first = AllocatePrompt(manager, Tokens(0, 9));
  BlockTable second = AllocatePrompt(manager, Concat(Tokens(100, 4), {99}));
  BlockTable third = AllocatePrompt(
      manager, Concat(Concat(Tokens(100, 4), Tokens(4, 4)), {99}));
  EXPECT_EQ(third.num_cached_tokens(), 4);
  EXPECT_EQ(third.blocks()[0], second.blocks()[0]);
  EXPECT_NE(third.blocks()[1], first.blocks()[1]);
}

TEST_F(BlockManagerTest, PrefixCachingDisabledNeverHits) {
  BlockManager manager(kNumBlocks, kBlockSize, /*enable_prefix_caching=*/false);
  const std::vector<int32_t> prompt = Tokens(0, 9);
  BlockTable first = AllocatePrompt(manager, prompt);
  BlockTable second = AllocatePrompt(manager, prompt);
  EXPECT_EQ(second.num_cached_tokens(), 0);
  EXPECT_EQ(manager.NumCachedTokens(prompt), 0);
  EXPECT_EQ(manager.prefix_cache_hits(), 0);
  EXPECT_EQ(manager.num_used_blocks(), 6);
}

TEST_F(BlockManagerTest, CountsQueriedAndHitPromptTokens) {
  AllocatePrompt(Tokens(0, 9));
  AllocatePrompt(Tokens(0, 6));
  EXPECT_EQ(manager_.prefix_cache_queries(), 15);
  EXPECT_EQ(manager_.prefix_cache_hits(), 4);
}

TEST(ChainedBlockHashTest, DependsOnThePreviousHashAndEveryToken) {
  const std::vector<int32_t> tokens = Tokens(0, 4);
  EXPECT_EQ(ChainedBlockHash(7, tokens), ChainedBlockHash(7, tokens));
  EXPECT_NE(ChainedBlockHash(7, tokens), ChainedBlockHash(8, tokens));
  EXPECT_NE(ChainedBlockHash(7, tokens), ChainedBlockHash(7, Tokens(1, 4)));
  EXPECT_EQ(ChainedBlockHash(7, tokens),
            XXH64(tokens.data(), tokens.size() * sizeof(int32_t), 7));
}

// Random allocate / append / fork / drop sequences, with prompts drawn from a
// few shared prefixes over a small vocabulary (so equal blocks after
// different prefixes occur), checking the invariants after every operation.
class BlockManagerPropertyTest : public ::testing::TestWithParam<bool> {};

struct Sequence {
  BlockTable table;
  std::vector<int32_t> prompt;
  std::vector<int32_t> tokens;  // those with slots in `table`
};

TEST_P(BlockManagerPropertyTest, InvariantsHoldUnderRandomOperations) {
  const bool enable_prefix_caching = GetParam();
  constexpr int kPropertyBlocks = 48;
  BlockManager manager(kPropertyBlocks, kBlockSize, enable_prefix_caching);
  std::mt19937 rng(20240611);
  auto uniform = [&rng](int lo, int hi) {  // [lo, hi]
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  auto random_tokens = [&](int count) {
    std::vector<int32_t> tokens(count);
    for (int32_t& token : tokens) token = uniform(0, 2);
    return tokens;
  };
  std::vector<std::vector<int32_t>> shared_prefixes;
  for (int i = 0; i < 4; ++i)
    shared_prefixes.push_back(random_tokens(uniform(0, 14)));

  std::vector<Sequence> sequences;
  // The token prefix ending with each full block, as the tables filled it.
  std::map<BlockId, std::vector<int32_t>> block_prefix;
  int64_t expected_queries = 0, expected_hits = 0;
  int num_hits = 0, num_copies = 0, num_refused = 0;

  auto prefix_through_block = [](const std::vector<int32_t>& tokens, int k) {
    return std::vector<int32_t>(tokens.begin(),
                                tokens.begin() + (k + 1) * kBlockSize);
  };

  auto check_invariants = [&]() {
    ASSERT_TRUE(manager.CheckConsistency().ok()) << manager.CheckConsistency();
    std::map<BlockId, int> holders;
    std::map<BlockId, std::pair<const Sequence*, int>> first_holder;
    for (const Sequence& sequence : sequences) {
      const std::vector<BlockId>& blocks = sequence.table.blocks();
      ASSERT_EQ(sequence.table.num_tokens(),
                static_cast<int>(sequence.tokens.size()));
      ASSERT_EQ(static_cast<int>(blocks.size()),
                (sequence.table.num_tokens() + kBlockSize - 1) / kBlockSize);
      for (int k = 0; k < static_cast<int>(blocks.size()); ++k) {
        ++holders[blocks[k]];
        auto [it, first] = first_holder.try_emplace(blocks[k], &sequence, k);
        if (!first) {  // shared: the same position and the same tokens
          const auto& [other, other_k] = it->second;
          ASSERT_EQ(other_k, k) << "block " << blocks[k];
          const int end =
              std::min<int>((k + 1) * kBlockSize, sequence.tokens.size());
          const int other_end =
              std::min<int>((k + 1) * kBlockSize, other->tokens.size());
          ASSERT_EQ(end, other_end) << "block " << blocks[k];
          ASSERT_TRUE(std::equal(sequence.tokens.begin(),
                                 sequence.tokens.begin() + end,
                                 other->tokens.begin()))
              << "block " << blocks[k] << " is shared by different tokens";
        }
        if ((k + 1) * kBlockSize <= sequence.table.num_tokens()) {
          auto [prefix, inserted] = block_prefix.try_emplace(
              blocks[k], prefix_through_block(sequence.tokens, k));
          ASSERT_EQ(prefix->second, prefix_through_block(sequence.tokens, k))
              << "block " << blocks[k] << " holds two different prefixes";
        }
      }
    }
    for (BlockId block = 0; block < kPropertyBlocks; ++block) {
      const auto it = holders.find(block);
      ASSERT_EQ(manager.ref_count(block), it == holders.end() ? 0 : it->second)
          << "block " << block;
    }
    ASSERT_EQ(manager.num_used_blocks(), static_cast<int>(holders.size()));
    ASSERT_EQ(manager.num_free_blocks() + manager.num_used_blocks(),
              kPropertyBlocks);
    ASSERT_EQ(manager.prefix_cache_queries(), expected_queries);
    ASSERT_EQ(manager.prefix_cache_hits(), expected_hits);
  };

  for (int step = 0; step < 6000; ++step) {
    const int choice = uniform(0, 99);
    if (choice < 30 && sequences.size() < 20) {  // allocate
      std::vector<int32_t> prompt =
          Concat(shared_prefixes[uniform(0, 3)], random_tokens(uniform(1, 10)));
      const int cached = manager.NumCachedTokens(prompt);
      const int num_tokens =
          uniform(0, 1) ? static_cast<int>(prompt.size())
                        : std::min<int>(prompt.size(), cached + uniform(1, 6));
      const bool can = manager.CanAllocate(prompt, num_tokens);
      absl::StatusOr<BlockTable> table = manager.Allocate(prompt, num_tokens);
      ASSERT_EQ(table.ok(), can) << table.status();
      if (!table.ok()) {
        ASSERT_EQ(table.status().code(), absl::StatusCode::kResourceExhausted);
        ++num_refused;
      } else {
        ASSERT_EQ(table->num_cached_tokens(), cached);
        ASSERT_LT(cached, static_cast<int>(prompt.size()));
        if (enable_prefix_caching) {
          expected_queries += prompt.size();
          expected_hits += cached;
        }
        if (cached > 0) ++num_hits;
        for (int k = 0; k < static_cast<int>(table->blocks().size()); ++k) {
          const BlockId block = table->blocks()[k];
          if (k < cached / kBlockSize) {  // reused: must hold this prefix
            ASSERT_EQ(block_prefix.at(block), prefix_through_block(prompt, k));
          } else {
            block_prefix.erase(block);  // fresh
          }
        }
        std::vector<int32_t> tokens(prompt.begin(),
                                    prompt.begin() + num_tokens);
        sequences.push_back(
            {*std::move(table), std::move(prompt), std::move(tokens)});
      }
    } else if (choice < 70 && !sequences.empty()) {  // append
      const int index = uniform(0, static_cast<int>(sequences.size()) - 1);
      Sequence& sequence = sequences[index];
      const size_t num_prompt_left =
          sequence.prompt.size() -
          std::min(sequence.prompt.size(), sequence.tokens.size());
      std::vector<int32_t> new_tokens =
          num_prompt_left > 0
              ? std::vector<int32_t>(
                    sequence.prompt.begin() + sequence.tokens.size(),
                    sequence.prompt.begin() + sequence.tokens.size() +
                        std::min<size_t>(num_prompt_left, uniform(1, 6)))
              : random_tokens(uniform(1, 3));
      const std::vector<BlockId> old_blocks = sequence.table.blocks();
      const bool can = manager.CanAppend(sequence.table, new_tokens.size());
      std::vector<BlockCopy> copies;
      const absl::Status status =
          manager.Append(&sequence.table, new_tokens, &copies);
      ASSERT_EQ(status.ok(), can) << status;
      if (!status.ok()) {
        ASSERT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
        ASSERT_EQ(sequence.table.blocks(), old_blocks);
        ASSERT_THAT(copies, IsEmpty());
        ++num_refused;
      } else {
        const std::vector<BlockId>& blocks = sequence.table.blocks();
        for (size_t k = old_blocks.size(); k < blocks.size(); ++k) {
          block_prefix.erase(blocks[k]);  // fresh
        }
        if (!copies.empty()) {
          ++num_copies;
          ASSERT_EQ(copies.size(), 1u);
          ASSERT_EQ(copies[0].src, old_blocks.back());
          ASSERT_EQ(copies[0].dst, blocks[old_blocks.size() - 1]);
          block_prefix.erase(copies[0].dst);
        }
        sequence.tokens = Concat(sequence.tokens, new_tokens);
        if (sequence.tokens.size() > 48) {
          sequences.erase(sequences.begin() + index);  // long enough
        }
      }
    } else if (choice < 80 && !sequences.empty() && sequences.size() < 20) {
      const Sequence& parent =
          sequences[uniform(0, static_cast<int>(sequences.size()) - 1)];
      Sequence child{manager.Fork(parent.table), parent.prompt, parent.tokens};
      sequences.push_back(std::move(child));
    } else if (!sequences.empty()) {  // drop
      sequences.erase(sequences.begin() +
                      uniform(0, static_cast<int>(sequences.size()) - 1));
    }
    check_invariants();
    if (HasFatalFailure()) return;
  }
  if (enable_prefix_caching) {
    EXPECT_GT(num_hits, 0);
  }
  EXPECT_GT(num_copies, 0);
  EXPECT_GT(num_refused, 0);

  // Dropped tables' blocks are all reusable, cached ones by eviction.
  sequences.clear();
  EXPECT_EQ(manager.num_used_blocks(), 0);
  EXPECT_EQ(manager.num_free_blocks(), kPropertyBlocks);
  const std::vector<int32_t> everything =
      Tokens(1000, kPropertyBlocks * kBlockSize);
  absl::StatusOr<BlockTable> all =
      manager.Allocate(everything, static_cast<int>(everything.size()));
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->blocks().size(), static_cast<size_t>(kPropertyBlocks));
  EXPECT_TRUE(manager.CheckConsistency().ok());
}

INSTANTIATE_TEST_SUITE_P(PrefixCaching, BlockManagerPropertyTest,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Enabled" : "Disabled";
                         });

TEST(BlockManagerDropTest, DroppingUnreferencedCachedBlocksFreesThemAndForgetsThem) {
  BlockManager manager(8, 4);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  {
    auto table = manager.Allocate(prompt, 9);
    ASSERT_TRUE(table.ok());
  }  // dropped: its two full blocks stay cached
  EXPECT_EQ(manager.NumCachedTokens(prompt), 8);
  auto held = manager.Allocate({20, 21, 22, 23, 24}, 5);  // registers one block
  ASSERT_TRUE(held.ok());
  manager.DropUnreferencedCachedBlocks();
  EXPECT_EQ(manager.NumCachedTokens(prompt), 0);
  EXPECT_EQ(manager.num_free_blocks(), 6);  // all but the held table's two
  EXPECT_TRUE(manager.CheckConsistency().ok());
  // Blocks still held keep their cache entries.
  EXPECT_EQ(manager.NumCachedTokens({20, 21, 22, 23, 24}), 4);
}

}  // namespace
}  // namespace weft
