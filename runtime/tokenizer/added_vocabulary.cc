#include "runtime/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <utility>

#include "runtime/tokenizer/utf8.h"
#include "unicode/uchar.h"

namespace weft::tokenizer_internal {
namespace {

// Rust regex's Unicode \w.
bool IsWordChar(char32_t c) {
  const auto cp = static_cast<UChar32>(c);
  const uint32_t mask = U_GET_GC_MASK(cp);
  return u_hasBinaryProperty(cp, UCHAR_ALPHABETIC) ||
         (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0 ||
         u_hasBinaryProperty(cp, UCHAR_JOIN_CONTROL);
}

// Start of the code point that ends at `end` (exclusive).
size_t PreviousCharStart(absl::string_view text, size_t end) {
  size_t pos = end - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) {
    --pos;
  }
  return pos;
}

char32_t CharAt(absl::string_view text, size_t pos, size_t* length) {
  char32_t c = 0;
  *length = DecodeUtf8(text, pos, &c);
  if (*length == 0) *length = 1;
  return c;
}

bool EndsWithWord(absl::string_view text, size_t end) {
  if (end == 0) return false;
  size_t length = 0;
  return IsWordChar(CharAt(text, PreviousCharStart(text, end), &length));
}

bool StartsWithWord(absl::string_view text, size_t begin) {
  if (begin >= text.size()) return false;
  size_t length = 0;
  return IsWordChar(CharAt(text, begin, &length));
}

// Start of the whitespace run that ends at `end`.
size_t WhitespaceStartBefore(absl::string_view text, size_t end) {
  while (end > 0) {
    const size_t start = PreviousCharStart(text, end);
    size_t length = 0;
    if (!IsWhitespace(CharAt(text, start, &length))) break;
    end = start;
  }
  return end;
}

// End of the whitespace run that starts at `begin`.
size_t WhitespaceEndAfter(absl::string_view text, size_t begin) {
  while (begin < text.size()) {
    size_t length = 0;
    if (!IsWhitespace(CharAt(text, begin, &length))) break;
    begin += length;
  }
  return begin;
}

}  // namespace

void AddedVocabulary::Trie::Insert(absl::string_view key, int32_t value) {
  if (key.empty()) return;
  first_[static_cast<unsigned char>(key[0])] = true;
  int32_t node = 0;
  for (char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    auto it = nodes_[node].children.find(byte);
    if (it == nodes_[node].children.end()) {
      nodes_.emplace_back();
      const auto child = static_cast<int32_t>(nodes_.size() - 1);
      nodes_[node].children[byte] = child;
      node = child;
    } else {
      node = it->second;
    }
  }
  // The first token with a given content wins, as in aho-corasick.
  if (nodes_[node].value < 0) nodes_[node].value = value;
}

size_t AddedVocabulary::Trie::LongestAt(absl::string_view text, size_t pos,
                                        int32_t* value) const {
  size_t best = 0;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = nodes_[node].children.find(static_cast<unsigned char>(text[i]));
    if (it == nodes_[node].children.end()) break;
    node = it->second;
    if (nodes_[node].value >= 0) {
      best = i + 1 - pos;
      *value = nodes_[node].value;
    }
  }
  return best;
}

void AddedVocabulary::Build(std::vector<AddedToken> tokens,
                            const Normalizer& normalizer) {
  tokens_.clear();
  for (AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    if (token.special) special_contents_.insert(token.content);
    by_content_[token.content] = token.id;
    by_id_[token.id] = tokens_.size();
    tokens_.push_back(std::move(token));
  }
  // `tokenizers` matches the special tokens first in its pattern list, then
  // the others, each group in the order given.
  std::vector<size_t> order(tokens_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_partition(order.begin(), order.end(),
                        [this](size_t i) { return tokens_[i].special; });
  for (size_t i : order) {
    const AddedToken& token = tokens_[i];
    if (token.normalized) {
      normalized_trie_.Insert(normalizer.Normalize(token.content),
                              static_cast<int32_t>(i));
    } else {
      raw_trie_.Insert(token.content, static_cast<int32_t>(i));
    }
  }
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

int32_t AddedVocabulary::FindByContent(absl::string_view content) const {
  auto it = by_content_.find(content);
  return it == by_content_.end() ? -1 : it->second;
}

std::vector<AddedVocabulary::Piece> AddedVocabulary::Split(
    absl::string_view text, bool normalized_set, bool parse_special) const {
  std::vector<Piece> pieces;
  const Trie& trie = normalized_set ? normalized_trie_ : raw_trie_;
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!trie.MayStartWith(static_cast<unsigned char>(text[pos]))) {
      ++pos;
      continue;
    }
    int32_t index = -1;
    const size_t length = trie.LongestAt(text, pos, &index);
    if (length == 0) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + length;
    pos = stop;  // matching resumes after the match even when it is skipped
    const AddedToken& token = tokens_[index];
    if (token.special && !parse_special) continue;
    if (token.single_word) {
      const bool space_before = start == 0 || !EndsWithWord(text, start);
      const bool space_after =
          stop == text.size() || !StartsWithWord(text, stop);
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      start = std::max(WhitespaceStartBefore(text, start), start_offset);
    }
    if (token.rstrip) stop = WhitespaceEndAfter(text, stop);
    if (start_offset < start) pieces.push_back({start_offset, start, -1});
    pieces.push_back({start, stop, token.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) {
    pieces.push_back({start_offset, text.size(), -1});
  }
  return pieces;
}

}  // namespace weft::tokenizer_internal
