#include "runtime/tokenizer/bpe_model.h"

#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/tokenizer/utf8.h"

namespace weft::tokenizer_internal {
namespace {

// Ids are used as array indices; no real vocabulary comes near this.
constexpr int32_t kMaxTokenId = 1 << 24;

struct QueuedMerge {
  int32_t rank;
  size_t pos;
  int32_t new_id;
};

// std::priority_queue pops the largest; "largest" here is the lowest rank,
// then the leftmost position.
struct QueuedMergeOrder {
  bool operator()(const QueuedMerge& a, const QueuedMerge& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.pos > b.pos;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    const std::vector<std::pair<std::string, int32_t>>& vocab,
    const std::vector<std::pair<std::string, std::string>>& merges,
    const BpeOptions& options, absl::string_view source) {
  if (vocab.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the vocabulary is empty"));
  }
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  model->options_ = options;
  int32_t id_limit = 0;
  for (const auto& [token, id] : vocab) {
    if (id < 0 || id >= kMaxTokenId) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": token '", token, "' has id ", id,
                       ", outside [0, ", kMaxTokenId, ")"));
    }
    id_limit = std::max(id_limit, id + 1);
  }
  model->id_to_token_.resize(id_limit);
  model->has_id_.assign(id_limit, false);
  model->vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab) {
    model->vocab_[token] = id;
    model->id_to_token_[id] = token;
    model->has_id_[id] = true;
  }
  model->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t left_id = model->TokenToId(left);
    const int32_t right_id = model->TokenToId(right);
    const int32_t new_id = model->TokenToId(absl::StrCat(left, right));
    const std::string* missing = left_id < 0    ? &left
                                 : right_id < 0 ? &right
                                                : nullptr;
    if (missing != nullptr || new_id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": merge ", rank, " ('", left, "' '", right,
          "') names token '", missing ? *missing : absl::StrCat(left, right),
          "', which is not in the vocabulary"));
    }
    // A pair listed twice keeps its last rank, as in `tokenizers`.
    model->merges_[PairKey(left_id, right_id)] = {static_cast<int32_t>(rank),
                                                  new_id};
  }
  if (!options.unk_token.empty()) {
    model->unk_id_ = model->TokenToId(options.unk_token);
    if (model->unk_id_ < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the unknown token '", options.unk_token,
                       "' is not in the vocabulary"));
    }
  }
  for (int b = 0; b < 256; ++b) {
    model->byte_ids_[b] = options.byte_fallback
                              ? model->TokenToId(absl::StrFormat("<0x%02X>", b))
                              : -1;
  }
  return model;
}

int32_t BpeModel::TokenToId(absl::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::Tokenize(absl::string_view word,
                        std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (int32_t id = TokenToId(word); id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  std::vector<int32_t> symbol_ids;
  std::vector<size_t> symbol_lengths;  // bytes of `word` each one covers
  symbol_ids.reserve(word.size());
  symbol_lengths.reserve(word.size());
  int32_t pending_unk_length = 0;  // > 0 while an unknown token is pending
  auto flush_unk = [&] {
    if (pending_unk_length > 0) {
      symbol_ids.push_back(unk_id_);
      symbol_lengths.push_back(pending_unk_length);
      pending_unk_length = 0;
    }
  };
  size_t pos = 0;
  for (size_t length : CodePointLengths(word)) {
    const absl::string_view character = word.substr(pos, length);
    pos += length;
    if (int32_t id = TokenToId(character); id >= 0) {
      flush_unk();
      symbol_ids.push_back(id);
      symbol_lengths.push_back(length);
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes = true;
      for (char c : character) {
        if (byte_ids_[static_cast<unsigned char>(c)] < 0) all_bytes = false;
      }
      if (all_bytes) {
        // `tokenizers` leaves a pending unknown token in place here and
        // emits it after the bytes.
        for (char c : character) {
          symbol_ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
          symbol_lengths.push_back(1);
        }
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk_length > 0 && options_.fuse_unk) {
        pending_unk_length += static_cast<int32_t>(length);
      } else {
        flush_unk();
        pending_unk_length = static_cast<int32_t>(length);
      }
    }
  }
  flush_unk();
  MergeAll(&symbol_ids, &symbol_lengths);
  ids->insert(ids->end(), symbol_ids.begin(), symbol_ids.end());
}

// HF's Word::merge_all, including its rule for stale queue entries: an entry
// is applied when the pair now at its position merges into the same token.
void BpeModel::MergeAll(std::vector<int32_t>* symbol_ids,
                        std::vector<size_t>* symbol_lengths) const {
  const size_t n = symbol_ids->size();
  if (n < 2) return;
  std::vector<int32_t>& id = *symbol_ids;
  std::vector<size_t>& len = *symbol_lengths;
  std::vector<ptrdiff_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<ptrdiff_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<ptrdiff_t>(i + 1) : -1;
  }
  std::priority_queue<QueuedMerge, std::vector<QueuedMerge>, QueuedMergeOrder>
      queue;
  auto find_merge = [this](int32_t left, int32_t right) -> const Merge* {
    auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < n; ++i) {
    if (const Merge* m = find_merge(id[i], id[i + 1])) {
      queue.push({m->rank, i, m->new_id});
    }
  }
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    if (len[top.pos] == 0 || next[top.pos] < 0) continue;
    const size_t right = static_cast<size_t>(next[top.pos]);
    const Merge* current = find_merge(id[top.pos], id[right]);
    if (current == nullptr || current->new_id != top.new_id) continue;
    id[top.pos] = top.new_id;
    len[top.pos] += len[right];
    next[top.pos] = next[right];
    len[right] = 0;
    if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = top.pos;
    if (prev[top.pos] >= 0) {
      const size_t left = static_cast<size_t>(prev[top.pos]);
      if (const Merge* m = find_merge(id[left], id[top.pos])) {
        queue.push({m->rank, left, m->new_id});
      }
    }
    if (next[top.pos] >= 0) {
      const size_t after = static_cast<size_t>(next[top.pos]);
      if (const Merge* m = find_merge(id[top.pos], id[after])) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
  size_t out = 0;
  for (size_t i = 0; i < n; ++i) {
    if (len[i] == 0) continue;
    id[out] = id[i];
    len[out] = len[i];
    ++out;
  }
  id.resize(out);
  len.resize(out);
}

}  // namespace weft::tokenizer_internal
