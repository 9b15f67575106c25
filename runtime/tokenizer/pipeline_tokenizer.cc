#include "runtime/tokenizer/pipeline_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/utf8.h"

namespace weft::tokenizer_internal {
namespace {

class PipelineTokenizer : public Tokenizer {
 public:
  explicit PipelineTokenizer(TokenizerParts parts) : parts_(std::move(parts)) {
    added_.Build(std::move(parts_.added_tokens), parts_.normalizer);
    has_normalized_added_ =
        std::any_of(added_.tokens().begin(), added_.tokens().end(),
                    [](const AddedToken& token) { return token.normalized; });
    vocab_size_ = parts_.model->id_limit();
    for (const AddedToken& token : added_.tokens()) {
      vocab_size_ = std::max(vocab_size_, token.id + 1);
    }
  }

  std::vector<int32_t> Encode(std::string_view input,
                              const EncodeOptions& options) const override {
    absl::string_view text(input.data(), input.size());
    std::string sanitized;
    if (!IsValidUtf8(text)) {
      sanitized = Utf8Lossy(text);
      text = sanitized;
    }
    std::vector<int32_t> ids;
    if (options.add_special_tokens) {
      ids.insert(ids.end(), parts_.prefix_ids.begin(), parts_.prefix_ids.end());
    }
    for (const AddedVocabulary::Piece& raw :
         added_.Split(text, /*normalized_set=*/false, options.parse_special)) {
      if (raw.id >= 0) {
        ids.push_back(raw.id);
        continue;
      }
      const std::string normalized = parts_.normalizer.Normalize(
          text.substr(raw.begin, raw.end - raw.begin));
      if (!has_normalized_added_) {
        EncodeText(normalized, raw.begin == 0, &ids);
        continue;
      }
      for (const AddedVocabulary::Piece& piece : added_.Split(
               normalized, /*normalized_set=*/true, options.parse_special)) {
        if (piece.id >= 0) {
          ids.push_back(piece.id);
        } else {
          EncodeText(absl::string_view(normalized)
                         .substr(piece.begin, piece.end - piece.begin),
                     raw.begin == 0 && piece.begin == 0, &ids);
        }
      }
    }
    if (options.add_special_tokens) {
      ids.insert(ids.end(), parts_.suffix_ids.begin(), parts_.suffix_ids.end());
    }
    return ids;
  }

  std::string Decode(absl::Span<const int32_t> ids,
                     bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      const std::string* token = TokenString(id);
      if (token == nullptr) continue;  // unknown ids are dropped, as in HF
      if (skip_special_tokens && added_.IsSpecialContent(*token)) continue;
      tokens.push_back(*token);
    }
    return parts_.decoder.Decode(std::move(tokens));
  }

  std::string TokenBytes(int32_t id) const override {
    const std::string* token = TokenString(id);
    return token == nullptr ? "" : parts_.decoder.TokenBytes(*token);
  }

  bool strips_leading_space() const override {
    return parts_.decoder.strips_leading_space();
  }

  int32_t vocab_size() const override { return vocab_size_; }

  bool IsSpecial(int32_t id) const override {
    const AddedToken* token = added_.FindById(id);
    return token != nullptr && token->special;
  }

  int32_t bos_id() const override { return parts_.bos_id; }
  int32_t eos_id() const override { return parts_.eos_id; }
  std::vector<int32_t> stop_ids() const override { return parts_.stop_ids; }

  int32_t PieceToId(std::string_view input) const override {
    const absl::string_view piece(input.data(), input.size());
    const int32_t added = added_.FindByContent(piece);
    return added >= 0 ? added : parts_.model->TokenToId(piece);
  }

 private:
  // Text between added tokens, already normalized.
  void EncodeText(absl::string_view text, bool at_text_start,
                  std::vector<int32_t>* ids) const {
    if (text.empty()) return;
    std::vector<PreToken> pieces;
    pieces.push_back({std::string(text), at_text_start});
    parts_.pre_tokenizer.Run(&pieces);
    for (const PreToken& piece : pieces) {
      parts_.model->Tokenize(piece.text, ids);
    }
  }

  const std::string* TokenString(int32_t id) const {
    if (const AddedToken* token = added_.FindById(id)) return &token->content;
    return parts_.model->IdToToken(id);
  }

  TokenizerParts parts_;
  AddedVocabulary added_;
  bool has_normalized_added_ = false;
  int32_t vocab_size_ = 0;
};

}  // namespace

bool IsEndOfGenerationSpelling(absl::string_view content) {
  static constexpr absl::string_view kSpellings[] = {
      "<|eot_id|>",    "<|eom_id|>",      "<|im_end|>",    "<|end|>",
      "<|endoftext|>", "<|end_of_text|>", "<end_of_turn>", "<EOT>",
  };
  return std::find(std::begin(kSpellings), std::end(kSpellings), content) !=
         std::end(kSpellings);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> MakePipelineTokenizer(
    TokenizerParts parts, absl::string_view source) {
  if (parts.model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no model"));
  }
  absl::flat_hash_set<int32_t> added_ids;
  for (const AddedToken& token : parts.added_tokens) {
    if (token.id < 0 || token.id >= (1 << 24)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": added token '", token.content, "' has id ", token.id));
    }
    added_ids.insert(token.id);
  }
  auto check = [&](int32_t id, absl::string_view what) -> absl::Status {
    if (parts.model->IdToToken(id) == nullptr && !added_ids.contains(id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", what, " id ", id, " is not a token of the vocabulary"));
    }
    return absl::OkStatus();
  };
  for (int32_t id : parts.prefix_ids) {
    if (auto s = check(id, "post-processor token"); !s.ok()) return s;
  }
  for (int32_t id : parts.suffix_ids) {
    if (auto s = check(id, "post-processor token"); !s.ok()) return s;
  }
  if (parts.bos_id >= 0) {
    if (auto s = check(parts.bos_id, "BOS"); !s.ok()) return s;
  }
  if (parts.eos_id >= 0) {
    if (auto s = check(parts.eos_id, "EOS"); !s.ok()) return s;
    if (std::find(parts.stop_ids.begin(), parts.stop_ids.end(), parts.eos_id) ==
        parts.stop_ids.end()) {
      parts.stop_ids.insert(parts.stop_ids.begin(), parts.eos_id);
    }
  }
  for (int32_t id : parts.stop_ids) {
    if (auto s = check(id, "stop token"); !s.ok()) return s;
  }
  return std::unique_ptr<Tokenizer>(new PipelineTokenizer(std::move(parts)));
}

}  // namespace weft::tokenizer_internal
