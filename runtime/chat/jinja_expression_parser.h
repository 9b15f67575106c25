// Jinja expressions, following jinja2's parser (jinja2/parser.py): the
// token stream shared with the statement parser (jinja_parser.cc) and the
// expression grammar, lowest precedence first: inline if, or, and, not,
// comparisons (==, !=, <, <=, >, >=, in, not in; chained), + -, ~,
// * / // %, **, unary - +, then postfix .attr [index] [a:b:c] (call)
// | filter  is test.
#ifndef WEFT_RUNTIME_CHAT_JINJA_EXPRESSION_PARSER_H_
#define WEFT_RUNTIME_CHAT_JINJA_EXPRESSION_PARSER_H_

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_lexer.h"

namespace weft::jinja {

class ExpressionParser {
 public:
  explicit ExpressionParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

 protected:
  using Type = Token::Type;

  const Token& Current() const { return tokens_[pos_]; }
  const Token& Peek(int ahead = 1) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  void Next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool IsOp(absl::string_view op) const {
    return Current().type == Type::kOperator && Current().value == op;
  }
  bool IsName(absl::string_view name) const {
    return Current().type == Type::kName && Current().value == name;
  }
  bool SkipOp(absl::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(absl::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }

  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Type::kData:
        return "template data";
      case Type::kBlockBegin:
        return "'{%'";
      case Type::kBlockEnd:
        return "end of statement block";
      case Type::kVariableBegin:
        return "'{{'";
      case Type::kVariableEnd:
        return "end of print statement";
      case Type::kString:
        return "a string";
      case Type::kEof:
        return "end of template";
      default:
        return absl::StrCat("'", t.value, "'");
    }
  }

  absl::Status Fail(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
  }
  absl::Status Unexpected(absl::string_view expected) const {
    return Fail(Current().line, absl::StrCat("expected ", expected, ", got ", Describe(Current())));
  }
  absl::Status ExpectOp(absl::string_view op) {
    if (SkipOp(op)) return absl::OkStatus();
    return Unexpected(absl::StrCat("'", op, "'"));
  }
  absl::Status ExpectBlockEnd() {
    if (Current().type == Type::kBlockEnd) {
      Next();
      return absl::OkStatus();
    }
    return Unexpected("end of statement block");
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Current().type != Type::kName) return Unexpected("a name");
    std::string name = Current().value;
    Next();
    return name;
  }

  // 'a' or 'b' or 'c'
  static std::string Quoted(std::initializer_list<absl::string_view> names) {
    std::string out;
    for (absl::string_view n : names) {
      absl::StrAppend(&out, out.empty() ? "" : " or ", "'", n, "'");
    }
    return out;
  }

  static ExprPtr MakeExpr(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  bool IsTupleEnd(std::initializer_list<absl::string_view> extra_end_names) const;
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condition,
                                     std::initializer_list<absl::string_view> extra_end,
                                     bool explicit_parentheses = false);
  absl::StatusOr<ExprPtr> ParseExpression(bool with_condition);
  absl::StatusOr<ExprPtr> ParseCondition();
  absl::StatusOr<ExprPtr> ParseBinaryChain(absl::StatusOr<ExprPtr> (ExpressionParser::*operand)(),
                                           std::initializer_list<absl::string_view> ops,
                                           bool names);
  absl::StatusOr<ExprPtr> ParseOr();
  absl::StatusOr<ExprPtr> ParseAnd();
  absl::StatusOr<ExprPtr> ParseNot();
  absl::StatusOr<ExprPtr> ParseCompare();
  absl::StatusOr<ExprPtr> ParseMath1();
  absl::StatusOr<ExprPtr> ParseConcat();
  absl::StatusOr<ExprPtr> ParseMath2();
  absl::StatusOr<ExprPtr> ParsePow();
  absl::StatusOr<ExprPtr> ParseUnaryWithFilter();
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter);
  absl::StatusOr<ExprPtr> ParsePrimary();
  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node);
  // An index, or a slice start:stop:step (returned as kSlice without its
  // object).
  absl::StatusOr<ExprPtr> ParseSubscribed();
  // (args, kw=args) into `node` (which holds its leading operands already).
  absl::Status ParseCallArgs(Expr* node);
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee);
  // One or more "| name(args)" applied to `node` (null in filter blocks).
  absl::StatusOr<ExprPtr> ParseFilterChain(ExprPtr node, int line);
  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node);

  // Parsing and rendering recurse on nesting: deeper templates are refused.
  static constexpr int kMaxNesting = 200;
  struct Nesting {
    explicit Nesting(int* depth) : depth(depth) { ++*depth; }
    ~Nesting() { --*depth; }
    int* depth;
  };
  absl::Status TooDeep() const {
    return Fail(Current().line,
                absl::StrCat("the template nests deeper than ", kMaxNesting, " levels"));
  }
  int depth_ = 0;

 private:
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_EXPRESSION_PARSER_H_
