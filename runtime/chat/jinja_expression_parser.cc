#include "runtime/chat/jinja_expression_parser.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_builtins.h"

namespace weft::jinja {

bool ExpressionParser::IsTupleEnd(std::initializer_list<absl::string_view> extra_end_names) const {
  const Token& t = Current();
  if (t.type == Type::kBlockEnd || t.type == Type::kVariableEnd || t.type == Type::kEof) {
    return true;
  }
  if (t.type == Type::kOperator && t.value == ")") return true;
  if (t.type == Type::kName) {
    for (absl::string_view n : extra_end_names) {
      if (t.value == n) return true;
    }
  }
  return false;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseTuple(
    bool with_condition, std::initializer_list<absl::string_view> extra_end,
    bool explicit_parentheses) {
  const int line = Current().line;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) {
      if (auto s = ExpectOp(","); !s.ok()) return s;
    }
    if (IsTupleEnd(extra_end)) break;
    absl::StatusOr<ExprPtr> item = ParseExpression(with_condition);
    if (!item.ok()) return item.status();
    items.push_back(*std::move(item));
    if (IsOp(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parentheses) return Unexpected("an expression");
  }
  ExprPtr tuple = MakeExpr(Expr::Kind::kTuple, line);
  tuple->args = std::move(items);
  return tuple;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseExpression(bool with_condition) {
  Nesting nesting(&depth_);
  if (depth_ > kMaxNesting) return TooDeep();
  return with_condition ? ParseCondition() : ParseOr();
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseCondition() {
  Nesting nesting(&depth_);
  if (depth_ > kMaxNesting) return TooDeep();
  absl::StatusOr<ExprPtr> expr = ParseOr();
  if (!expr.ok()) return expr;
  ExprPtr result = *std::move(expr);
  while (IsName("if")) {
    const int line = Current().line;
    Next();
    absl::StatusOr<ExprPtr> test = ParseOr();
    if (!test.ok()) return test;
    ExprPtr otherwise;
    if (SkipName("else")) {
      absl::StatusOr<ExprPtr> e = ParseCondition();
      if (!e.ok()) return e;
      otherwise = *std::move(e);
    }
    ExprPtr node = MakeExpr(Expr::Kind::kCondition, line);
    node->args.push_back(*std::move(test));
    node->args.push_back(std::move(result));
    node->args.push_back(std::move(otherwise));
    result = std::move(node);
  }
  return result;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseBinaryChain(
    absl::StatusOr<ExprPtr> (ExpressionParser::*operand)(),
    std::initializer_list<absl::string_view> ops, bool names) {
  absl::StatusOr<ExprPtr> left = (this->*operand)();
  if (!left.ok()) return left;
  ExprPtr result = *std::move(left);
  while (true) {
    std::string op;
    for (absl::string_view o : ops) {
      if (names ? IsName(o) : IsOp(o)) op = std::string(o);
    }
    if (op.empty()) return result;
    const int line = Current().line;
    Next();
    absl::StatusOr<ExprPtr> right = (this->*operand)();
    if (!right.ok()) return right;
    ExprPtr node = MakeExpr(Expr::Kind::kBinary, line);
    node->name = op;
    node->args.push_back(std::move(result));
    node->args.push_back(*std::move(right));
    result = std::move(node);
  }
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseOr() {
  return ParseBinaryChain(&ExpressionParser::ParseAnd, {"or"}, true);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseAnd() {
  return ParseBinaryChain(&ExpressionParser::ParseNot, {"and"}, true);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseNot() {
  if (IsName("not")) {
    Nesting nesting(&depth_);
    if (depth_ > kMaxNesting) return TooDeep();
    const int line = Current().line;
    Next();
    absl::StatusOr<ExprPtr> operand = ParseNot();
    if (!operand.ok()) return operand;
    ExprPtr node = MakeExpr(Expr::Kind::kNot, line);
    node->args.push_back(*std::move(operand));
    return node;
  }
  return ParseCompare();
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseCompare() {
  const int line = Current().line;
  absl::StatusOr<ExprPtr> first = ParseMath1();
  if (!first.ok()) return first;
  ExprPtr node = MakeExpr(Expr::Kind::kCompare, line);
  node->args.push_back(*std::move(first));
  while (true) {
    std::string op;
    if (Current().type == Type::kOperator &&
        (Current().value == "==" || Current().value == "!=" || Current().value == "<" ||
         Current().value == "<=" || Current().value == ">" || Current().value == ">=")) {
      op = Current().value;
      Next();
    } else if (IsName("in")) {
      op = "in";
      Next();
    } else if (IsName("not") && Peek().type == Type::kName && Peek().value == "in") {
      op = "notin";
      Next();
      Next();
    } else {
      break;
    }
    absl::StatusOr<ExprPtr> operand = ParseMath1();
    if (!operand.ok()) return operand;
    node->ops.push_back(op);
    node->args.push_back(*std::move(operand));
  }
  if (node->ops.empty()) return std::move(node->args[0]);
  return node;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseMath1() {
  return ParseBinaryChain(&ExpressionParser::ParseConcat, {"+", "-"}, false);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseConcat() {
  return ParseBinaryChain(&ExpressionParser::ParseMath2, {"~"}, false);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseMath2() {
  return ParseBinaryChain(&ExpressionParser::ParsePow, {"*", "/", "//", "%"}, false);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParsePow() {
  return ParseBinaryChain(&ExpressionParser::ParseUnaryWithFilter, {"**"}, false);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseUnaryWithFilter() { return ParseUnary(true); }

absl::StatusOr<ExprPtr> ExpressionParser::ParseUnary(bool with_filter) {
  const int line = Current().line;
  absl::StatusOr<ExprPtr> node;
  if (IsOp("-") || IsOp("+")) {
    Nesting nesting(&depth_);
    if (depth_ > kMaxNesting) return TooDeep();
    const bool negative = IsOp("-");
    Next();
    absl::StatusOr<ExprPtr> operand = ParseUnary(false);
    if (!operand.ok()) return operand;
    ExprPtr n = MakeExpr(negative ? Expr::Kind::kNeg : Expr::Kind::kPos, line);
    n->args.push_back(*std::move(operand));
    node = std::move(n);
  } else {
    node = ParsePrimary();
  }
  if (!node.ok()) return node;
  node = ParsePostfix(*std::move(node));
  if (!node.ok() || !with_filter) return node;
  return ParseFilterExpr(*std::move(node));
}

absl::StatusOr<ExprPtr> ExpressionParser::ParsePrimary() {
  const Token& t = Current();
  const int line = t.line;
  switch (t.type) {
    case Type::kName: {
      const std::string name = t.value;
      Next();
      ExprPtr node = MakeExpr(Expr::Kind::kConst, line);
      if (name == "true" || name == "True") {
        node->constant = Value::Bool(true);
      } else if (name == "false" || name == "False") {
        node->constant = Value::Bool(false);
      } else if (name == "none" || name == "None") {
        node->constant = Value::None();
      } else {
        node->kind = Expr::Kind::kName;
        node->name = name;
      }
      return node;
    }
    case Type::kString: {
      std::string text;
      while (Current().type == Type::kString) {
        text += Current().value;
        Next();
      }
      ExprPtr node = MakeExpr(Expr::Kind::kConst, line);
      node->constant = Value::String(std::move(text));
      return node;
    }
    case Type::kInteger: {
      ExprPtr node = MakeExpr(Expr::Kind::kConst, line);
      node->constant = Value::Int(std::strtoll(t.value.c_str(), nullptr, 10));
      Next();
      return node;
    }
    case Type::kFloat: {
      ExprPtr node = MakeExpr(Expr::Kind::kConst, line);
      node->constant = Value::Float(std::strtod(t.value.c_str(), nullptr));
      Next();
      return node;
    }
    case Type::kOperator:
      if (t.value == "(") {
        Next();
        absl::StatusOr<ExprPtr> inner = ParseTuple(true, {}, true);
        if (!inner.ok()) return inner;
        if (auto s = ExpectOp(")"); !s.ok()) return s;
        return inner;
      }
      if (t.value == "[") {
        Next();
        ExprPtr node = MakeExpr(Expr::Kind::kList, line);
        while (!IsOp("]")) {
          if (!node->args.empty()) {
            if (auto s = ExpectOp(","); !s.ok()) return s;
            if (IsOp("]")) break;
          }
          absl::StatusOr<ExprPtr> item = ParseExpression(true);
          if (!item.ok()) return item;
          node->args.push_back(*std::move(item));
        }
        Next();
        return node;
      }
      if (t.value == "{") {
        Next();
        ExprPtr node = MakeExpr(Expr::Kind::kDict, line);
        while (!IsOp("}")) {
          if (!node->pairs.empty()) {
            if (auto s = ExpectOp(","); !s.ok()) return s;
            if (IsOp("}")) break;
          }
          absl::StatusOr<ExprPtr> key = ParseExpression(true);
          if (!key.ok()) return key;
          if (auto s = ExpectOp(":"); !s.ok()) return s;
          absl::StatusOr<ExprPtr> value = ParseExpression(true);
          if (!value.ok()) return value;
          node->pairs.emplace_back(*std::move(key), *std::move(value));
        }
        Next();
        return node;
      }
      break;
    default:
      break;
  }
  return Fail(line, absl::StrCat("unexpected ", Describe(t)));
}

absl::StatusOr<ExprPtr> ExpressionParser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".") || IsOp("[")) {
      absl::StatusOr<ExprPtr> next = ParseSubscript(std::move(node));
      if (!next.ok()) return next;
      node = *std::move(next);
    } else if (IsOp("(")) {
      absl::StatusOr<ExprPtr> next = ParseCall(std::move(node));
      if (!next.ok()) return next;
      node = *std::move(next);
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    absl::StatusOr<ExprPtr> next;
    if (IsOp("|")) {
      next = ParseFilterChain(std::move(node), Current().line);
    } else if (IsName("is")) {
      next = ParseTest(std::move(node));
    } else if (IsOp("(")) {
      next = ParseCall(std::move(node));
    } else {
      return node;
    }
    if (!next.ok()) return next;
    node = *std::move(next);
  }
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseSubscript(ExprPtr node) {
  const int line = Current().line;
  if (SkipOp(".")) {
    const Token& t = Current();
    if (t.type == Type::kName) {
      ExprPtr e = MakeExpr(Expr::Kind::kGetAttr, line);
      e->name = t.value;
      e->args.push_back(std::move(node));
      Next();
      return e;
    }
    if (t.type == Type::kInteger) {
      ExprPtr index = MakeExpr(Expr::Kind::kConst, line);
      index->constant = Value::Int(std::strtoll(t.value.c_str(), nullptr, 10));
      Next();
      ExprPtr e = MakeExpr(Expr::Kind::kGetItem, line);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(index));
      return e;
    }
    return Unexpected("a name or number after '.'");
  }
  Next();  // '['
  std::vector<ExprPtr> subscripts;
  while (!IsOp("]")) {
    if (!subscripts.empty()) {
      if (auto s = ExpectOp(","); !s.ok()) return s;
    }
    absl::StatusOr<ExprPtr> sub = ParseSubscribed();
    if (!sub.ok()) return sub;
    subscripts.push_back(*std::move(sub));
  }
  Next();
  if (subscripts.size() != 1) {
    return Fail(line, "subscripts with several indices are not supported");
  }
  ExprPtr sub = std::move(subscripts[0]);
  if (sub->kind == Expr::Kind::kSlice) {
    sub->args.insert(sub->args.begin(), std::move(node));
    return sub;
  }
  ExprPtr e = MakeExpr(Expr::Kind::kGetItem, line);
  e->args.push_back(std::move(node));
  e->args.push_back(std::move(sub));
  return e;
}

// An index, or a slice start:stop:step (returned as kSlice without its
// object).
absl::StatusOr<ExprPtr> ExpressionParser::ParseSubscribed() {
  const int line = Current().line;
  std::vector<ExprPtr> parts;
  if (IsOp(":")) {
    Next();
    parts.push_back(nullptr);
  } else {
    absl::StatusOr<ExprPtr> e = ParseExpression(true);
    if (!e.ok()) return e;
    if (!IsOp(":")) return e;
    Next();
    parts.push_back(*std::move(e));
  }
  auto at_end = [&] { return IsOp("]") || IsOp(","); };
  if (IsOp(":") || at_end()) {
    parts.push_back(nullptr);
  } else {
    absl::StatusOr<ExprPtr> e = ParseExpression(true);
    if (!e.ok()) return e;
    parts.push_back(*std::move(e));
  }
  if (SkipOp(":")) {
    if (at_end()) {
      parts.push_back(nullptr);
    } else {
      absl::StatusOr<ExprPtr> e = ParseExpression(true);
      if (!e.ok()) return e;
      parts.push_back(*std::move(e));
    }
  } else {
    parts.push_back(nullptr);
  }
  ExprPtr slice = MakeExpr(Expr::Kind::kSlice, line);
  slice->args = std::move(parts);
  return slice;
}

// (args, kw=args) into `node` (which holds its leading operands already).
absl::Status ExpressionParser::ParseCallArgs(Expr* node) {
  if (auto s = ExpectOp("("); !s.ok()) return s;
  bool first = true;
  while (!IsOp(")")) {
    if (!first) {
      if (auto s = ExpectOp(","); !s.ok()) return s;
      if (IsOp(")")) break;
    }
    first = false;
    if (IsOp("*") || IsOp("**")) {
      return Fail(Current().line, "*args and **kwargs in calls are not supported");
    }
    if (Current().type == Type::kName && Peek().type == Type::kOperator && Peek().value == "=") {
      std::string key = Current().value;
      Next();
      Next();
      absl::StatusOr<ExprPtr> value = ParseExpression(true);
      if (!value.ok()) return value.status();
      node->kwargs.emplace_back(std::move(key), *std::move(value));
    } else {
      if (!node->kwargs.empty()) {
        return Fail(Current().line, "positional argument follows keyword argument");
      }
      absl::StatusOr<ExprPtr> value = ParseExpression(true);
      if (!value.ok()) return value.status();
      node->args.push_back(*std::move(value));
    }
  }
  Next();
  return absl::OkStatus();
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseCall(ExprPtr callee) {
  ExprPtr call = MakeExpr(Expr::Kind::kCall, Current().line);
  call->args.push_back(std::move(callee));
  if (auto s = ParseCallArgs(call.get()); !s.ok()) return s;
  return call;
}

// One or more "| name(args)" applied to `node` (null in filter blocks).
absl::StatusOr<ExprPtr> ExpressionParser::ParseFilterChain(ExprPtr node, int line) {
  bool first = true;
  while (IsOp("|") || (first && node == nullptr)) {
    if (IsOp("|")) Next();
    first = false;
    const int filter_line = Current().line;
    absl::StatusOr<std::string> name = ExpectName();
    if (!name.ok()) return name.status();
    if (IsOp(".")) return Fail(filter_line, "dotted filter names are not supported");
    // Unknown names are checked after parsing (CheckNames), as jinja2's
    // compiler does; built-ins weft lacks are refused here.
    if (IsUnsupportedBuiltinFilter(*name)) {
      return Fail(filter_line,
                  absl::StrCat("the filter '", *name, "' is not supported in chat templates"));
    }
    ExprPtr filter = MakeExpr(Expr::Kind::kFilter, filter_line);
    filter->name = *name;
    filter->args.push_back(std::move(node));
    if (IsOp("(")) {
      if (auto s = ParseCallArgs(filter.get()); !s.ok()) return s;
    }
    node = std::move(filter);
  }
  (void)line;
  return node;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseTest(ExprPtr node) {
  const int line = Current().line;
  Next();  // is
  const bool negated = SkipName("not");
  absl::StatusOr<std::string> name = ExpectName();
  if (!name.ok()) return name.status();
  if (IsUnsupportedBuiltinTest(*name)) {
    return Fail(line, absl::StrCat("the test '", *name, "' is not supported in chat templates"));
  }
  ExprPtr test = MakeExpr(Expr::Kind::kTest, line);
  test->name = *name;
  test->negated = negated;
  test->args.push_back(std::move(node));
  const Token& t = Current();
  if (IsOp("(")) {
    if (auto s = ParseCallArgs(test.get()); !s.ok()) return s;
  } else if ((t.type == Type::kName || t.type == Type::kString || t.type == Type::kInteger ||
              t.type == Type::kFloat || IsOp("(") || IsOp("[") || IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) return Fail(t.line, "tests cannot be chained with 'is'");
    absl::StatusOr<ExprPtr> arg = ParsePrimary();
    if (!arg.ok()) return arg;
    arg = ParsePostfix(*std::move(arg));
    if (!arg.ok()) return arg;
    test->args.push_back(*std::move(arg));
  }
  return test;
}

}  // namespace weft::jinja
