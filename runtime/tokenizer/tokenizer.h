// Tokenizers of the Llama family, producing the same ids as Hugging Face
// `tokenizers` for the same tokenizer definition:
//   - byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2): a pre-tokenizer regex
//     split (per family), bytes mapped to printable code points, BPE merges
//     by rank;
//   - SentencePiece-style BPE (Llama 2, Mistral): "▁" for spaces, merges by
//     score/rank, byte fallback (<0xNN>) for pieces not in the vocabulary.
// Loaded from GGUF `tokenizer.ggml.*` metadata or from a `tokenizer.json`
// (+ optional `tokenizer_config.json`). Added / special tokens are matched
// in the text before the model runs on the pieces between them.
#ifndef WEFT_RUNTIME_TOKENIZER_TOKENIZER_H_
#define WEFT_RUNTIME_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace weft {

class GgufFile;

struct EncodeOptions {
  // Recognize special/added tokens written in the text (e.g. "<|im_start|>").
  bool parse_special = true;
  // Prepend BOS when the tokenizer's definition asks for it (GGUF
  // `tokenizer.ggml.add_bos_token`, or the tokenizer.json post-processor).
  bool add_special_tokens = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(
      const GgufFile& gguf);
  // `tokenizer_config_json_path` may be empty.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfFiles(
      const std::string& tokenizer_json_path,
      const std::string& tokenizer_config_json_path);
  // The same from the files' contents (`tokenizer_config_json` may be
  // empty; no generation_config.json is looked for); `origin` names the
  // source in errors. For tokenizers built in memory (synthetic models).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfJsonText(
      const std::string& tokenizer_json,
      const std::string& tokenizer_config_json, const std::string& origin);

  virtual std::vector<int32_t> Encode(std::string_view text,
                                      const EncodeOptions& options) const = 0;

  // Text of `ids` as Hugging Face's `decode(ids, skip_special_tokens=...)`
  // returns it; invalid UTF-8 comes out as U+FFFD per maximal invalid
  // subsequence.
  virtual std::string Decode(absl::Span<const int32_t> ids,
                             bool skip_special_tokens) const = 0;

  // The raw bytes token `id` stands for (byte-level tokens un-mapped, "▁" as
  // a space, <0xNN> as that byte). Concatenating these is how an incremental
  // detokenizer builds text; the bytes may be partial UTF-8. Decode() may
  // additionally strip a leading space (SentencePiece) - see
  // strips_leading_space().
  virtual std::string TokenBytes(int32_t id) const = 0;
  virtual bool strips_leading_space() const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  // -1 when the model has none.
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // Every id that ends generation (EOS plus e.g. <|eot_id|>, <|im_end|>).
  virtual std::vector<int32_t> stop_ids() const = 0;
  // Id of a token spelled exactly `piece` in the vocabulary, or -1.
  virtual int32_t PieceToId(std::string_view piece) const = 0;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_TOKENIZER_TOKENIZER_H_
