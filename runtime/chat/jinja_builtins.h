// jinja2's built-in filters, tests and global functions, and the Python
// methods of str, dict and list that chat templates call, as far as weft
// interprets them. Each behaves as its jinja2 3.1 / CPython counterpart
// does on the values a chat template sees; docs/chat.md lists them.
#ifndef WEFT_RUNTIME_CHAT_JINJA_BUILTINS_H_
#define WEFT_RUNTIME_CHAT_JINJA_BUILTINS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/chat/jinja_value.h"

namespace weft::jinja {

class Interpreter;

// Whether weft interprets the filter / test `name`.
bool HasFilter(absl::string_view name);
bool HasTest(absl::string_view name);
// jinja2 built-ins weft refuses at load (so the error can say "not
// supported" rather than "unknown").
bool IsUnsupportedBuiltinFilter(absl::string_view name);
bool IsUnsupportedBuiltinTest(absl::string_view name);

absl::StatusOr<Value> ApplyFilter(Interpreter& interpreter, absl::string_view name,
                                  const Value& input, const CallArgs& args);
absl::StatusOr<bool> ApplyTest(Interpreter& interpreter, absl::string_view name, const Value& input,
                               const CallArgs& args);

// `object.name` when that is a method of the object's type (str.strip,
// dict.items, loop.cycle, ...; the bound method) or a loop attribute
// (loop.index, ...); undefined otherwise.
Value BuiltinAttribute(const Value& object, absl::string_view name);

// The functions every template sees: range, dict, namespace,
// raise_exception, strftime_now, cycler, joiner.
const std::vector<std::pair<std::string, Value>>& GlobalFunctions();

// raise_exception(message) ends a render with InvalidArgument(message)
// carrying this payload, so the caller can tell it from other errors.
inline constexpr absl::string_view kRaisedPayloadUrl = "weft.jinja/raise_exception";

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_BUILTINS_H_
