// Added tokens (special tokens such as <|im_start|>, and user-defined
// ones) found in the text before the model sees it, as Hugging Face
// `tokenizers`' AddedVocabulary does: leftmost-longest matching over all
// contents, with lstrip/rstrip/single_word. Tokens with `normalized` set are
// matched in the normalized text, the others in the raw text.
#ifndef WEFT_RUNTIME_TOKENIZER_ADDED_VOCABULARY_H_
#define WEFT_RUNTIME_TOKENIZER_ADDED_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "runtime/tokenizer/normalizer.h"

namespace weft::tokenizer_internal {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

class AddedVocabulary {
 public:
  // A run of text (`id` = -1) or an added token, by byte offsets.
  struct Piece {
    size_t begin;
    size_t end;
    int32_t id;
  };

  // `normalizer` turns the contents of `normalized` tokens into what is
  // looked for in normalized text. Ids must already be resolved.
  void Build(std::vector<AddedToken> tokens, const Normalizer& normalizer);

  // Splits `text` into pieces covering it. `normalized_set` picks the tokens
  // matched in normalized text. Special tokens are skipped unless
  // `parse_special`.
  std::vector<Piece> Split(absl::string_view text, bool normalized_set,
                           bool parse_special) const;

  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // nullptr when `id` is not an added token.
  const AddedToken* FindById(int32_t id) const;
  // -1 when absent.
  int32_t FindByContent(absl::string_view content) const;
  bool IsSpecialContent(absl::string_view content) const {
    return special_contents_.contains(content);
  }

 private:
  // Byte trie over token contents for leftmost-longest matching.
  class Trie {
   public:
    Trie() : nodes_(1) {}
    void Insert(absl::string_view key, int32_t value);
    // Length of the longest key starting at `text[pos]` (0 for none), and
    // its value.
    size_t LongestAt(absl::string_view text, size_t pos, int32_t* value) const;
    bool MayStartWith(unsigned char byte) const { return first_[byte]; }

   private:
    struct Node {
      absl::flat_hash_map<unsigned char, int32_t> children;
      int32_t value = -1;
    };
    std::vector<Node> nodes_;
    bool first_[256] = {};
  };

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_set<std::string> special_contents_;
  Trie raw_trie_;  // values index tokens_
  Trie normalized_trie_;
};

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_ADDED_VOCABULARY_H_
