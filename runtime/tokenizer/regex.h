// ICU regular expressions over UTF-8 text, for the patterns found in
// tokenizer definitions (pre-tokenizer splits, Replace normalizers and
// decoders). Hugging Face `tokenizers` compiles these with Oniguruma; the
// constructs real tokenizers use (\p{L}, \p{N}, \s as White_Space, (?i:...),
// lookahead (?!\S), bounded repeats) mean the same in ICU.
#ifndef WEFT_RUNTIME_TOKENIZER_REGEX_H_
#define WEFT_RUNTIME_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "unicode/regex.h"

namespace weft::tokenizer_internal {

struct Span {
  size_t begin = 0;  // byte offsets
  size_t end = 0;
};

class Regex {
 public:
  // `literal`: match `pattern` as plain text.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(
      absl::string_view pattern, bool literal);

  // Non-overlapping matches, left to right, in valid UTF-8 `text`. The
  // pattern sees nothing outside `text` (lookahead stops at its end).
  std::vector<Span> FindAll(absl::string_view text) const;

 private:
  explicit Regex(std::unique_ptr<icu::RegexPattern> pattern)
      : pattern_(std::move(pattern)) {}
  std::unique_ptr<icu::RegexPattern> pattern_;
};

// Every occurrence of `regex` in `text` replaced by `content` (taken
// literally).
std::string ReplaceAll(const Regex& regex, absl::string_view text,
                       absl::string_view content);

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_REGEX_H_
