// Python's operators on template values, as jinja2 evaluates them: the
// arithmetic operators with Python's types and rounding (// and % floor),
// `in`, and printf-style `%` formatting. Unsupported operand types are
// InvalidArgument, as Python's TypeError.
#ifndef WEFT_RUNTIME_CHAT_JINJA_OPERATORS_H_
#define WEFT_RUNTIME_CHAT_JINJA_OPERATORS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/chat/jinja_value.h"

namespace weft::jinja {

// Python's binary operators on values: + - * / // % ** (TypeError-like
// InvalidArgument on unsupported operand types).
absl::StatusOr<Value> Arithmetic(absl::string_view op, const Value& a, const Value& b);
// `item in container`.
absl::StatusOr<bool> Contains(const Value& container, const Value& item);
// Python's `format % args` (printf-style string formatting); `escape`:
// HTML-escape the arguments, as Markup's % does.
absl::StatusOr<std::string> PercentFormat(const std::string& format, const Value& args,
                                          bool escape = false);

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_OPERATORS_H_
