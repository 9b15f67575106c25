// Tokenizer::FromGguf: the tokenizer a GGUF file's `tokenizer.ggml.*`
// metadata describes, assembled as the Hugging Face tokenizer.json of the
// original model would have it.
//
//   tokenizer.ggml.model "gpt2"  byte-level BPE; `tokenizer.ggml.pre` picks
//                                 the pre-tokenizer (ByteLevelFamilies)
//   tokenizer.ggml.model "llama" SentencePiece-style BPE with byte fallback,
//                                 in the Llama-2 tokenizer.json layout;
//                                 merges come from the file or, as
//                                 transformers derives them, from the scores
// Token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte. Control and unknown tokens, and the tokens the
// bos/eos/unk/pad/eot/eom ids name, are special added tokens; user-defined
// ones are added tokens that are not special.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/pipeline_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace weft {
namespace {

using tokenizer_internal::AddedToken;
using tokenizer_internal::BpeModel;
using tokenizer_internal::BpeOptions;
using tokenizer_internal::IsEndOfGenerationSpelling;
using tokenizer_internal::Normalizer;
using tokenizer_internal::PreTokenizer;
using tokenizer_internal::Regex;
using tokenizer_internal::TokenizerParts;

constexpr absl::string_view kSource = "GGUF tokenizer";
constexpr absl::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

enum TokenType : int64_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The byte-level pre-tokenizer families, by `tokenizer.ggml.pre`.
struct ByteLevelFamily {
  std::vector<absl::string_view> names;
  bool nfc = false;
  bool digits_first = false;
  absl::string_view split_pattern;  // empty: ByteLevel's own GPT-2 regex
  bool ignore_merges = false;
  bool add_bos = false;  // when the file does not say
};

const std::vector<ByteLevelFamily>& ByteLevelFamilies() {
  static const auto* families = [] {
    auto* list = new std::vector<ByteLevelFamily>(4);
    (*list)[0].names = {"default", "gpt-2"};
    (*list)[1].names = {"smollm"};
    (*list)[1].digits_first = true;
    (*list)[2].names = {"llama-bpe", "llama3", "llama-v3"};
    (*list)[2].split_pattern = tokenizer_internal::kLlama3Pattern;
    (*list)[2].ignore_merges = true;
    (*list)[2].add_bos = true;
    (*list)[3].names = {"qwen2", "deepseek-r1-qwen"};
    (*list)[3].nfc = true;
    (*list)[3].split_pattern = tokenizer_internal::kQwen2Pattern;
    return list;
  }();
  return *families;
}

absl::StatusOr<const ByteLevelFamily*> FindFamily(absl::string_view pre) {
  std::vector<absl::string_view> known;
  for (const ByteLevelFamily& family : ByteLevelFamilies()) {
    for (absl::string_view name : family.names) {
      if (name == pre) return &family;
      known.push_back(name);
    }
  }
  return absl::UnimplementedError(absl::StrCat(
      "GGUF tokenizer.ggml.pre '", pre,
      "' names a pre-tokenizer weft does not implement (supported: ",
      absl::StrJoin(known, ", "), ")"));
}

// An optional token id key: -1 when absent, an error when outside the
// vocabulary.
absl::StatusOr<int32_t> OptionalTokenId(const GgufFile& gguf,
                                        absl::string_view key,
                                        size_t num_tokens) {
  if (gguf.Find(key) == nullptr) return -1;
  absl::StatusOr<int64_t> id = gguf.GetInt(key);
  if (!id.ok()) return id.status();
  if (*id < 0 || *id >= static_cast<int64_t>(num_tokens)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF ", key, " = ", *id, " is outside the vocabulary (",
                     num_tokens, " tokens)"));
  }
  return static_cast<int32_t>(*id);
}

absl::StatusOr<bool> OptionalBool(const GgufFile& gguf, absl::string_view key,
                                  bool default_value) {
  if (gguf.Find(key) == nullptr) return default_value;
  return gguf.GetBool(key);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> FileMerges(
    const std::vector<std::string>& merges) {
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const size_t space = merges[i].find(' ');
    if (space == std::string::npos || space == 0 ||
        space + 1 == merges[i].size() ||
        merges[i].find(' ', space + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tokenizer.ggml.merges[", i, "] '", merges[i],
                       "' is not two tokens separated by one space"));
    }
    pairs.emplace_back(merges[i].substr(0, space), merges[i].substr(space + 1));
  }
  return pairs;
}

// Bound on Σ (code points × bytes) over the tokens MergesFromScores
// splits: both its time (hashing every split) and its memory (the merges
// copy both halves of every split) grow so. Real SentencePiece
// vocabularies need a few million to a few tens of millions (Llama 2's
// 32,000 tokens of at most 16 characters); tokens "a", "aa", … "a"×3000
// (a 4.5 MB file) would need ~9 GB.
constexpr int64_t kMaxMergeDerivationWork = int64_t{1} << 28;

// transformers' generate_merges(vocab, scores): every split of every token
// into two vocabulary tokens, best merged-token score first, then longer
// left part, then longer right part; ties keep vocabulary order.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> MergesFromScores(
    const std::vector<std::string>& tokens, const std::vector<double>& scores) {
  int64_t work = 0;
  for (const std::string& token : tokens) {
    work += static_cast<int64_t>(tokenizer_internal::CountCodePoints(token) + 1) *
            static_cast<int64_t>(token.size());
    if (work > kMaxMergeDerivationWork) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF tokenizer.ggml.tokens: deriving merges from tokenizer.ggml.scores "
          "(there are no tokenizer.ggml.merges) would split more than ",
          kMaxMergeDerivationWork, " (code point × byte) units of tokens; no real "
          "vocabulary needs that many"));
    }
  }
  absl::flat_hash_map<absl::string_view, int32_t> vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = static_cast<int32_t>(i);
  }
  struct Candidate {
    absl::string_view left;
    absl::string_view right;
    double score;
    size_t left_chars;
    size_t right_chars;
  };
  std::vector<Candidate> candidates;
  // Python dict order: the first position of each token, with the score of
  // its last occurrence.
  absl::flat_hash_map<absl::string_view, size_t> last;
  for (size_t i = 0; i < tokens.size(); ++i) last[tokens[i]] = i;
  absl::flat_hash_set<absl::string_view> seen;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const absl::string_view merged = tokens[i];
    if (!seen.insert(merged).second) continue;
    const double score = scores[last[merged]];
    std::vector<Candidate> local;
    const std::vector<size_t> lengths =
        tokenizer_internal::CodePointLengths(merged);
    size_t split = 0;
    for (size_t k = 0; k + 1 < lengths.size(); ++k) {
      split += lengths[k];
      const absl::string_view left = merged.substr(0, split);
      const absl::string_view right = merged.substr(split);
      if (vocab.contains(left) && vocab.contains(right)) {
        local.push_back({left, right, score, k + 1, lengths.size() - k - 1});
      }
    }
    std::stable_sort(local.begin(), local.end(),
                     [&](const Candidate& a, const Candidate& b) {
                       const int32_t al = vocab[a.left], bl = vocab[b.left];
                       if (al != bl) return al < bl;
                       return vocab[a.right] < vocab[b.right];
                     });
    candidates.insert(candidates.end(), local.begin(), local.end());
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) {
                     if (a.score != b.score) return a.score > b.score;
                     if (a.left_chars != b.left_chars) {
                       return a.left_chars > b.left_chars;
                     }
                     return a.right_chars > b.right_chars;
                   });
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(candidates.size());
  for (const Candidate& c : candidates) {
    merges.emplace_back(std::string(c.left), std::string(c.right));
  }
  return merges;
}

std::unique_ptr<Regex> Literal(absl::string_view text) {
  return *Regex::Compile(text, /*literal=*/true);
}

// The vocabulary-level metadata every tokenizer type has.
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;  // kNormal when the file has none
  // (key, id) for bos/eos/unk/pad/eot/eom, id -1 when absent.
  std::vector<std::pair<absl::string_view, int32_t>> named_ids;
  bool has_merges = false;
  std::vector<std::pair<std::string, std::string>> merges;

  int32_t Named(absl::string_view key) const {
    for (const auto& [name, id] : named_ids) {
      if (name == key) return id;
    }
    return -1;
  }
};

absl::StatusOr<GgufVocab> ReadVocab(const GgufFile& gguf) {
  GgufVocab vocab;
  absl::StatusOr<std::vector<std::string>> tokens =
      gguf.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  vocab.tokens = *std::move(tokens);
  const size_t n = vocab.tokens.size();
  if (n == 0) {
    return absl::InvalidArgumentError("GGUF tokenizer.ggml.tokens is empty");
  }
  if (n >= (1u << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF tokenizer.ggml.tokens has ", n,
                     " entries, more than weft allows"));
  }
  vocab.types.assign(n, kNormal);
  if (gguf.Find("tokenizer.ggml.token_type") != nullptr) {
    absl::StatusOr<std::vector<int64_t>> types =
        gguf.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    if (types->size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tokenizer.ggml.token_type has ", types->size(),
                       " entries but tokenizer.ggml.tokens has ", n));
    }
    vocab.types = *std::move(types);
  }
  for (absl::string_view key :
       {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    absl::StatusOr<int32_t> id = OptionalTokenId(gguf, key, n);
    if (!id.ok()) return id.status();
    vocab.named_ids.emplace_back(key, *id);
  }
  vocab.has_merges = gguf.Find("tokenizer.ggml.merges") != nullptr;
  if (vocab.has_merges) {
    absl::StatusOr<std::vector<std::string>> merges =
        gguf.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return merges.status();
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> pairs =
        FileMerges(*merges);
    if (!pairs.ok()) return pairs.status();
    vocab.merges = *std::move(pairs);
  }
  return vocab;
}

// Byte-level BPE: the pre-tokenizer family named by tokenizer.ggml.pre.
// Returns whether the family adds BOS when the file does not say.
absl::StatusOr<bool> SetUpByteLevel(const GgufFile& gguf,
                                    const GgufVocab& vocab,
                                    TokenizerParts* parts,
                                    BpeOptions* options) {
  if (!vocab.has_merges) {
    return absl::InvalidArgumentError(
        "GGUF byte-level tokenizer has no tokenizer.ggml.merges");
  }
  std::string pre = "default";  // files older than the key
  if (gguf.Find("tokenizer.ggml.pre") != nullptr) {
    absl::StatusOr<std::string> file_pre = gguf.GetString("tokenizer.ggml.pre");
    if (!file_pre.ok()) return file_pre.status();
    pre = *std::move(file_pre);
  }
  absl::StatusOr<const ByteLevelFamily*> found = FindFamily(pre);
  if (!found.ok()) return found.status();
  const ByteLevelFamily& family = **found;
  if (family.nfc) parts->normalizer.AddUnicodeForm(Normalizer::Form::kNfc);
  if (family.digits_first) parts->pre_tokenizer.AddDigits(true);
  if (!family.split_pattern.empty()) {
    parts->pre_tokenizer.AddSplit(
        *Regex::Compile(family.split_pattern, /*literal=*/false),
        tokenizer_internal::SplitBehavior::kIsolated, /*invert=*/false);
    parts->pre_tokenizer.AddByteLevel(false, /*use_regex=*/false);
  } else {
    parts->pre_tokenizer.AddByteLevel(false, /*use_regex=*/true);
  }
  parts->decoder.AddByteLevel();
  options->ignore_merges = family.ignore_merges;
  return family.add_bos;
}

// SentencePiece-style BPE in the Llama 2 tokenizer.json layout.
absl::Status SetUpSentencePiece(const GgufFile& gguf, GgufVocab* vocab,
                                TokenizerParts* parts, BpeOptions* options) {
  if (!vocab->has_merges) {
    if (gguf.Find("tokenizer.ggml.scores") == nullptr) {
      return absl::InvalidArgumentError(
          "GGUF SentencePiece tokenizer has neither tokenizer.ggml.merges "
          "nor tokenizer.ggml.scores");
    }
    absl::StatusOr<std::vector<double>> scores =
        gguf.GetFloatArray("tokenizer.ggml.scores");
    if (!scores.ok()) return scores.status();
    if (scores->size() != vocab->tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF tokenizer.ggml.scores has ", scores->size(),
          " entries but tokenizer.ggml.tokens has ", vocab->tokens.size()));
    }
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> merges =
        MergesFromScores(vocab->tokens, *scores);
    if (!merges.ok()) return merges.status();
    vocab->merges = *std::move(merges);
  }
  absl::StatusOr<bool> add_space_prefix =
      OptionalBool(gguf, "tokenizer.ggml.add_space_prefix", true);
  if (!add_space_prefix.ok()) return add_space_prefix.status();
  if (*add_space_prefix) {
    parts->normalizer.AddPrepend(std::string(kSpaceMarker));
  }
  parts->normalizer.AddReplace(Literal(" "), std::string(kSpaceMarker));
  parts->decoder.AddReplace(Literal(kSpaceMarker), " ");
  parts->decoder.AddByteFallback();
  parts->decoder.AddFuse();
  if (*add_space_prefix) parts->decoder.AddStrip(' ', 1, 0);
  options->byte_fallback = true;
  options->fuse_unk = true;
  const int32_t unk_id = vocab->Named("tokenizer.ggml.unknown_token_id");
  if (unk_id >= 0) options->unk_token = vocab->tokens[unk_id];
  return absl::OkStatus();
}

void AddStop(int32_t id, std::vector<int32_t>* stops) {
  if (id >= 0 && std::find(stops->begin(), stops->end(), id) == stops->end()) {
    stops->push_back(id);
  }
}

// Added tokens by type, and the ids that end generation.
void SetUpAddedTokens(const GgufVocab& vocab, TokenizerParts* parts) {
  absl::flat_hash_set<int32_t> named;
  for (const auto& [key, id] : vocab.named_ids) {
    if (id >= 0) named.insert(id);
  }
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const int64_t type = vocab.types[i];
    const bool special =
        type == kControl || type == kUnknown || named.contains(id);
    if (!special && type != kUserDefined) continue;
    AddedToken token;
    token.content = vocab.tokens[i];
    token.id = id;
    token.special = special;
    parts->added_tokens.push_back(std::move(token));
    if (special && IsEndOfGenerationSpelling(vocab.tokens[i])) {
      AddStop(id, &parts->stop_ids);
    }
  }
  AddStop(vocab.Named("tokenizer.ggml.eot_token_id"), &parts->stop_ids);
  AddStop(vocab.Named("tokenizer.ggml.eom_token_id"), &parts->stop_ids);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(
    const GgufFile& gguf) {
  if (gguf.Find("tokenizer.ggml.model") == nullptr) {
    return absl::InvalidArgumentError(
        "GGUF file has no tokenizer (tokenizer.ggml.model is missing)");
  }
  absl::StatusOr<std::string> model_type =
      gguf.GetString("tokenizer.ggml.model");
  if (!model_type.ok()) return model_type.status();
  if (*model_type != "gpt2" && *model_type != "llama") {
    return absl::UnimplementedError(absl::StrCat(
        "GGUF tokenizer.ggml.model '", *model_type,
        "' is not supported (weft implements 'gpt2' and 'llama')"));
  }
  absl::StatusOr<GgufVocab> vocab = ReadVocab(gguf);
  if (!vocab.ok()) return vocab.status();

  TokenizerParts parts;
  BpeOptions options;
  bool add_bos = true;  // SentencePiece vocabularies add BOS by default
  if (*model_type == "gpt2") {
    absl::StatusOr<bool> family_add_bos =
        SetUpByteLevel(gguf, *vocab, &parts, &options);
    if (!family_add_bos.ok()) return family_add_bos.status();
    add_bos = *family_add_bos;
  } else if (absl::Status s =
                 SetUpSentencePiece(gguf, &*vocab, &parts, &options);
             !s.ok()) {
    return s;
  }

  std::vector<std::pair<std::string, int32_t>> entries;
  entries.reserve(vocab->tokens.size());
  for (size_t i = 0; i < vocab->tokens.size(); ++i) {
    entries.emplace_back(vocab->tokens[i], static_cast<int32_t>(i));
  }
  absl::StatusOr<std::unique_ptr<BpeModel>> model = BpeModel::Create(
      entries, vocab->merges, options, "GGUF tokenizer.ggml.merges");
  if (!model.ok()) return model.status();
  parts.model = *std::move(model);
  SetUpAddedTokens(*vocab, &parts);

  absl::StatusOr<bool> add_bos_token =
      OptionalBool(gguf, "tokenizer.ggml.add_bos_token", add_bos);
  if (!add_bos_token.ok()) return add_bos_token.status();
  absl::StatusOr<bool> add_eos_token =
      OptionalBool(gguf, "tokenizer.ggml.add_eos_token", false);
  if (!add_eos_token.ok()) return add_eos_token.status();
  parts.bos_id = vocab->Named("tokenizer.ggml.bos_token_id");
  parts.eos_id = vocab->Named("tokenizer.ggml.eos_token_id");
  if (*add_bos_token && parts.bos_id >= 0) {
    parts.prefix_ids.push_back(parts.bos_id);
  }
  if (*add_eos_token && parts.eos_id >= 0) {
    parts.suffix_ids.push_back(parts.eos_id);
  }
  return tokenizer_internal::MakePipelineTokenizer(std::move(parts), kSource);
}

}  // namespace weft
