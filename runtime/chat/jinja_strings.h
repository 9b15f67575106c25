// CPython's str methods on UTF-8 strings, with Python's semantics: indices
// count code points, "whitespace" is str.isspace(), case mapping is
// Unicode's full mapping (ICU, as CPython's).
#ifndef WEFT_RUNTIME_CHAT_JINJA_STRINGS_H_
#define WEFT_RUNTIME_CHAT_JINJA_STRINGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace weft::jinja {

std::string PyUpper(absl::string_view s);
std::string PyLower(absl::string_view s);
// str.capitalize(): first character title-cased, the rest lower-cased.
std::string PyCapitalize(absl::string_view s);
// str.title(): a cased character after an uncased one is title-cased,
// others lower-cased.
std::string PyTitle(absl::string_view s);
// str.swapcase().
std::string PySwapCase(absl::string_view s);

// str.strip(chars) / lstrip / rstrip; `chars` unset: whitespace.
std::string PyStripChars(absl::string_view s, const std::optional<std::string>& chars, bool left,
                         bool right);
// str.split(sep, maxsplit) (maxsplit < 0: all); `sep` unset: runs of
// whitespace, ignoring leading and trailing ones. `from_right`: rsplit.
std::vector<std::string> PySplit(absl::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right);
// str.splitlines(keepends).
std::vector<std::string> PySplitLines(absl::string_view s, bool keepends);
// str.replace(old, new, count) (count < 0: all).
std::string PyReplace(absl::string_view s, absl::string_view old_text, absl::string_view new_text,
                      int64_t count);
// str.find / str.rfind in code points; -1 when absent.
int64_t PyFind(absl::string_view s, absl::string_view sub, bool from_right);
// str.count(sub): non-overlapping occurrences.
int64_t PyCount(absl::string_view s, absl::string_view sub);

// The str.isxxx() predicates; false on the empty string.
bool PyIsDigit(absl::string_view s);
bool PyIsAlpha(absl::string_view s);
bool PyIsAlnum(absl::string_view s);
bool PyIsSpace(absl::string_view s);
bool PyIsUpper(absl::string_view s);
bool PyIsLower(absl::string_view s);

// str.center(width) with spaces.
std::string PyCenter(absl::string_view s, int64_t width);

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_STRINGS_H_
