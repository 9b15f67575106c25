// Text normalizers as Hugging Face `tokenizers` applies them before
// pre-tokenization: Unicode forms (Qwen2 uses NFC) and the SentencePiece
// space handling of Llama-2-style tokenizer.json files (Prepend "▁",
// Replace " " → "▁"). A sequence of steps is applied in order.
#ifndef WEFT_RUNTIME_TOKENIZER_NORMALIZER_H_
#define WEFT_RUNTIME_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "runtime/tokenizer/regex.h"

namespace weft::tokenizer_internal {

class Normalizer {
 public:
  enum class Form { kNfc, kNfd, kNfkc, kNfkd };

  void AddUnicodeForm(Form form);
  // Prepends `prefix` to non-empty text.
  void AddPrepend(std::string prefix);
  void AddReplace(std::unique_ptr<Regex> pattern, std::string content);

  bool empty() const { return steps_.empty(); }
  std::string Normalize(absl::string_view text) const;

 private:
  enum class Kind { kForm, kPrepend, kReplace };
  struct Step {
    Kind kind;
    Form form = Form::kNfc;
    std::string text;  // prefix or replacement
    std::shared_ptr<const Regex> pattern;
  };
  std::vector<Step> steps_;
};

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_NORMALIZER_H_
