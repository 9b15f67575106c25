// Checks on JSON text before it is parsed. nlohmann's parser is iterative,
// but the code that walks the parsed value (and the value's destructor in
// older releases) recurses, so text nested deeper than any real file or
// request is refused first.
#ifndef WEFT_RUNTIME_JSON_TEXT_H_
#define WEFT_RUNTIME_JSON_TEXT_H_

#include "absl/strings/string_view.h"

namespace weft {

// Deepest nesting accepted in requests and model files (a tokenizer.json
// nests 6-8 levels).
inline constexpr int kMaxJsonDepth = 64;

// The nesting depth of `text`'s arrays and objects, counting brackets
// outside strings; stops early past `limit`.
int JsonTextDepth(absl::string_view text, int limit);

}  // namespace weft

#endif  // WEFT_RUNTIME_JSON_TEXT_H_
