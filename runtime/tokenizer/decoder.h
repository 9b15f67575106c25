// Decoders as Hugging Face `tokenizers` chains them: each step maps the
// list of token strings to a new list, and the results are concatenated.
//   byte-level:        ByteLevel (bytes un-mapped, then lossy UTF-8)
//   Llama-2-style:     Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)
//   Metaspace files:   Metaspace (drops "▁" in the first token)
#ifndef WEFT_RUNTIME_TOKENIZER_DECODER_H_
#define WEFT_RUNTIME_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/regex.h"

namespace weft::tokenizer_internal {

class Decoder {
 public:
  void AddByteLevel();
  void AddReplace(std::unique_ptr<Regex> pattern, std::string content);
  void AddByteFallback();
  void AddFuse();
  void AddStrip(char32_t content, size_t start, size_t stop);
  void AddMetaspace(char32_t replacement, PrependScheme scheme);

  // With no step, `tokenizers` joins the tokens with spaces.
  std::string Decode(std::vector<std::string> tokens) const;

  // The bytes one token stands for: the per-token part of the steps
  // (byte-level un-mapping, Replace, <0xNN>, "▁" → " "), without Strip and
  // without the first-token rules.
  std::string TokenBytes(absl::string_view token) const;

  // Whether Decode() removes a leading space of the text (Strip at the
  // start, or Metaspace with a prepend scheme).
  bool strips_leading_space() const;

 private:
  enum class Kind {
    kByteLevel,
    kReplace,
    kByteFallback,
    kFuse,
    kStrip,
    kMetaspace
  };
  struct Step {
    Kind kind = Kind::kFuse;
    std::shared_ptr<const Regex> pattern;
    std::string content;     // Replace content
    char32_t character = 0;  // Strip content, Metaspace replacement
    size_t start = 0;
    size_t stop = 0;
    PrependScheme prepend_scheme = PrependScheme::kAlways;
  };
  void AddStep(Kind kind);

  std::vector<Step> steps_;
};

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_DECODER_H_
