// The BPE model of Hugging Face `tokenizers` (models/bpe): a word's
// characters are looked up in the vocabulary (falling back to <0xNN> byte
// tokens, or to the unknown token), then adjacent pairs are merged, lowest
// merge rank first and leftmost among equal ranks, until no pair in the
// merge table remains. Byte-level vocabularies see one character per byte
// because the pre-tokenizer has already mapped bytes to the GPT-2 alphabet.
#ifndef WEFT_RUNTIME_TOKENIZER_BPE_MODEL_H_
#define WEFT_RUNTIME_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::tokenizer_internal {

struct BpeOptions {
  // Characters missing from the vocabulary become <0xNN> tokens, one per
  // UTF-8 byte, when all of those exist.
  bool byte_fallback = false;
  // Consecutive unknown characters become one unknown token.
  bool fuse_unk = false;
  // A word that is itself in the vocabulary is one token, merges unused
  // (Llama 3).
  bool ignore_merges = false;
  // Empty when the model has none: unknown characters are then dropped.
  std::string unk_token;
};

class BpeModel {
 public:
  // `vocab` entries are (token, id); a token listed twice keeps its last id.
  // `merges` are (left, right) pairs, best first. `source` names where the
  // data came from in error messages.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      const std::vector<std::pair<std::string, int32_t>>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges,
      const BpeOptions& options, absl::string_view source);

  // Appends the ids of `word` (one pre-token) to `ids`.
  void Tokenize(absl::string_view word, std::vector<int32_t>* ids) const;

  // -1 when absent.
  int32_t TokenToId(absl::string_view token) const;
  // nullptr when no token has this id.
  const std::string* IdToToken(int32_t id) const;
  // One past the largest id.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  void MergeAll(std::vector<int32_t>* symbol_ids,
                std::vector<size_t>* symbol_lengths) const;

  BpeOptions options_;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];  // <0xNN> ids, -1 when absent
  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
};

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_BPE_MODEL_H_
