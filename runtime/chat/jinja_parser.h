// Tokens → Template, following jinja2's parser (jinja2/parser.py): the same
// operator precedence, tuples, filters and tests, statements and endings.
// Constructs weft does not interpret (extends, block, include, import,
// call blocks, recursive loops, unknown filters or tests, ...) are refused
// here with InvalidArgument naming the construct and its line, so a
// template either loads and renders as jinja2 would or does not load.
#ifndef WEFT_RUNTIME_CHAT_JINJA_PARSER_H_
#define WEFT_RUNTIME_CHAT_JINJA_PARSER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/chat/jinja_ast.h"

namespace weft::jinja {

absl::StatusOr<std::unique_ptr<Template>> Parse(absl::string_view source);

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_PARSER_H_
