// Template source → tokens, following jinja2's lexer (jinja2/lexer.py) with
// trim_blocks and lstrip_blocks on, as transformers configures it:
//   - "\r\n" and "\r" become "\n"; one trailing newline is dropped;
//   - {%- / {{- / {#- strip all whitespace before the tag, -%} / -}} / -#}
//     all whitespace after it;
//   - trim_blocks: the first newline after %} or #} is dropped (not after
//     }}, and not after +%});
//   - lstrip_blocks: spaces and tabs between a line's start and {% or {#
//     are dropped (not before {{, and not before {%+);
//   - {% raw %}...{% endraw %} is data; comments vanish.
#ifndef WEFT_RUNTIME_CHAT_JINJA_LEXER_H_
#define WEFT_RUNTIME_CHAT_JINJA_LEXER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::jinja {

struct Token {
  enum class Type {
    kData,  // template text, printed as is
    kBlockBegin,
    kBlockEnd,
    kVariableBegin,
    kVariableEnd,
    kName,
    kString,  // value: the decoded string
    kInteger,
    kFloat,
    kOperator,  // value: "+", "//", "==", "(", ...
    kEof,
  };
  Type type;
  std::string value;
  int line;
};

// InvalidArgument naming the line on malformed source (unclosed tag or
// string, unbalanced brackets, an unknown character).
absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source);

// Python's str.isspace() for the UTF-8 character at `s[pos]`; its length in
// bytes, or 0 when it is not whitespace.
int PyWhitespaceLength(absl::string_view s, size_t pos);
// Python's str.strip() / rstrip() / lstrip() with no argument.
absl::string_view PyStrip(absl::string_view s, bool left, bool right);

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_LEXER_H_
