#include "runtime/chat/jinja_parser.h"

#include <cstdlib>
#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_lexer.h"

namespace weft::jinja {
namespace {

using Type = Token::Type;

// Tags jinja2 knows but weft does not interpret, and why.
constexpr std::pair<absl::string_view, absl::string_view> kUnsupportedTags[] = {
    {"extends", "template inheritance"},
    {"block", "template inheritance"},
    {"include", "including other templates"},
    {"import", "importing other templates"},
    {"from", "importing other templates"},
    {"call", "call blocks"},
    {"autoescape", "autoescape blocks"},
    {"print", "the print statement"},
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<Template>> Run() {
    auto result = std::make_unique<Template>();
    std::string end;
    if (auto s = ParseBody({}, &result->body, &end); !s.ok()) return s;
    return result;
  }

 private:
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
      case Type::kData: return "template data";
      case Type::kBlockBegin: return "'{%'";
      case Type::kBlockEnd: return "end of statement block";
      case Type::kVariableBegin: return "'{{'";
      case Type::kVariableEnd: return "end of print statement";
      case Type::kString: return "a string";
      case Type::kEof: return "end of template";
      default: return absl::StrCat("'", t.value, "'");
    }
  }

  absl::Status Fail(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template line ", line, ": ", what));
  }
  absl::Status Unexpected(absl::string_view expected) const {
    return Fail(Current().line, absl::StrCat("expected ", expected, ", got ",
                                             Describe(Current())));
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

  // Parses statements until a block tag whose name is in `ends`; that name
  // is stored in *end and the tag's name token consumed (the rest of the
  // tag is the caller's).
  absl::Status ParseBody(std::initializer_list<absl::string_view> ends, Body* body,
                         std::string* end) {
    while (true) {
      const Token& t = Current();
      switch (t.type) {
        case Type::kEof:
          if (ends.size() == 0) return absl::OkStatus();
          return Fail(t.line, absl::StrCat("unexpected end of template, expected ",
                                            Quoted(ends)));
        case Type::kData: {
          auto stmt = std::make_unique<Stmt>();
          stmt->kind = Stmt::Kind::kData;
          stmt->line = t.line;
          stmt->text = t.value;
          body->push_back(std::move(stmt));
          Next();
          break;
        }
        case Type::kVariableBegin: {
          Next();
          auto stmt = std::make_unique<Stmt>();
          stmt->kind = Stmt::Kind::kPrint;
          stmt->line = t.line;
          absl::StatusOr<ExprPtr> e = ParseTuple(true, {});
          if (!e.ok()) return e.status();
          stmt->expr = *std::move(e);
          if (Current().type != Type::kVariableEnd) return Unexpected("end of print statement");
          Next();
          body->push_back(std::move(stmt));
          break;
        }
        case Type::kBlockBegin: {
          Next();
          if (Current().type != Type::kName) return Unexpected("a statement name");
          const std::string name = Current().value;
          for (absl::string_view e : ends) {
            if (name == e) {
              *end = name;
              Next();
              return absl::OkStatus();
            }
          }
          if (name.rfind("end", 0) == 0 || name == "elif" || name == "else") {
            return Fail(Current().line,
                        ends.size() == 0
                            ? absl::StrCat("unexpected '", name, "'")
                            : absl::StrCat("unexpected '", name, "', expected ", Quoted(ends)));
          }
          absl::StatusOr<StmtPtr> stmt = ParseStatement();
          if (!stmt.ok()) return stmt.status();
          body->push_back(*std::move(stmt));
          break;
        }
        default:
          return Unexpected("template data or a tag");
      }
    }
  }

  absl::StatusOr<Body> ParseBodyUntil(absl::string_view end_tag) {
    Body body;
    std::string end;
    if (auto s = ParseBody({end_tag}, &body, &end); !s.ok()) return s;
    if (auto s = ExpectBlockEnd(); !s.ok()) return s;
    return body;
  }

  absl::StatusOr<StmtPtr> ParseStatement() {
    const Token& t = Current();
    const int line = t.line;
    auto stmt = std::make_unique<Stmt>();
    stmt->line = line;
    const std::string name = t.value;
    for (const auto& [tag, what] : kUnsupportedTags) {
      if (name == tag) {
        return Fail(line, absl::StrCat("'{% ", tag, " %}' (", what,
                                       ") is not supported in chat templates"));
      }
    }
    Next();
    if (name == "if") return ParseIf(std::move(stmt));
    if (name == "for") return ParseFor(std::move(stmt));
    if (name == "set") return ParseSet(std::move(stmt));
    if (name == "macro") return ParseMacro(std::move(stmt));
    if (name == "filter") {
      stmt->kind = Stmt::Kind::kFilterBlock;
      absl::StatusOr<ExprPtr> filters = ParseFilterChain(nullptr, line);
      if (!filters.ok()) return filters.status();
      stmt->filter = *std::move(filters);
      if (auto s = ExpectBlockEnd(); !s.ok()) return s;
      absl::StatusOr<Body> body = ParseBodyUntil("endfilter");
      if (!body.ok()) return body.status();
      stmt->bodies.push_back(*std::move(body));
      return stmt;
    }
    if (name == "with") {
      stmt->kind = Stmt::Kind::kWith;
      while (Current().type != Type::kBlockEnd) {
        if (!stmt->params.empty()) {
          if (auto s = ExpectOp(","); !s.ok()) return s;
        }
        absl::StatusOr<std::string> target = ExpectName();
        if (!target.ok()) return target.status();
        if (auto s = ExpectOp("="); !s.ok()) return s;
        absl::StatusOr<ExprPtr> value = ParseExpression(true);
        if (!value.ok()) return value.status();
        stmt->params.emplace_back(*target, *std::move(value));
      }
      Next();
      absl::StatusOr<Body> body = ParseBodyUntil("endwith");
      if (!body.ok()) return body.status();
      stmt->bodies.push_back(*std::move(body));
      return stmt;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) {
        return Fail(line, absl::StrCat("'", name, "' outside a for loop"));
      }
      stmt->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      if (auto s = ExpectBlockEnd(); !s.ok()) return s;
      return stmt;
    }
    if (name == "generation") {
      stmt->kind = Stmt::Kind::kScope;
      if (auto s = ExpectBlockEnd(); !s.ok()) return s;
      absl::StatusOr<Body> body = ParseBodyUntil("endgeneration");
      if (!body.ok()) return body.status();
      stmt->bodies.push_back(*std::move(body));
      return stmt;
    }
    return Fail(line, absl::StrCat("unknown tag '", name, "'"));
  }

  absl::StatusOr<StmtPtr> ParseIf(StmtPtr stmt) {
    stmt->kind = Stmt::Kind::kIf;
    while (true) {
      absl::StatusOr<ExprPtr> condition = ParseTuple(false, {});
      if (!condition.ok()) return condition.status();
      stmt->conditions.push_back(*std::move(condition));
      if (auto s = ExpectBlockEnd(); !s.ok()) return s;
      Body body;
      std::string end;
      if (auto s = ParseBody({"elif", "else", "endif"}, &body, &end); !s.ok()) return s;
      stmt->bodies.push_back(std::move(body));
      if (end == "elif") continue;
      if (auto s = ExpectBlockEnd(); !s.ok()) return s;
      if (end == "else") {
        absl::StatusOr<Body> else_body = ParseBodyUntil("endif");
        if (!else_body.ok()) return else_body.status();
        stmt->bodies.push_back(*std::move(else_body));
      }
      return stmt;
    }
  }

  // A name, or names separated by commas (a tuple), to assign to.
  absl::StatusOr<ExprPtr> ParseAssignTarget(bool with_namespace) {
    const int line = Current().line;
    std::vector<ExprPtr> names;
    while (true) {
      absl::StatusOr<std::string> name = ExpectName();
      if (!name.ok()) return name.status();
      ExprPtr e;
      if (with_namespace && IsOp(".")) {
        Next();
        absl::StatusOr<std::string> attribute = ExpectName();
        if (!attribute.ok()) return attribute.status();
        e = MakeExpr(Expr::Kind::kNamespaceRef, line);
        e->attribute = *attribute;
      } else {
        e = MakeExpr(Expr::Kind::kName, line);
      }
      e->name = *name;
      names.push_back(std::move(e));
      if (!IsOp(",")) break;
      Next();
    }
    if (names.size() == 1) return std::move(names[0]);
    ExprPtr tuple = MakeExpr(Expr::Kind::kTuple, line);
    tuple->args = std::move(names);
    return tuple;
  }

  absl::StatusOr<StmtPtr> ParseFor(StmtPtr stmt) {
    stmt->kind = Stmt::Kind::kFor;
    absl::StatusOr<ExprPtr> target = ParseAssignTarget(false);
    if (!target.ok()) return target.status();
    stmt->target = *std::move(target);
    if (!SkipName("in")) return Unexpected("'in'");
    absl::StatusOr<ExprPtr> iter = ParseTuple(false, {"recursive"});
    if (!iter.ok()) return iter.status();
    stmt->expr = *std::move(iter);
    if (SkipName("if")) {
      absl::StatusOr<ExprPtr> filter = ParseExpression(true);
      if (!filter.ok()) return filter.status();
      stmt->filter = *std::move(filter);
    }
    if (IsName("recursive")) {
      return Fail(Current().line, "recursive for loops are not supported in chat templates");
    }
    if (auto s = ExpectBlockEnd(); !s.ok()) return s;
    ++loop_depth_;
    Body body;
    std::string end;
    absl::Status s = ParseBody({"endfor", "else"}, &body, &end);
    --loop_depth_;
    if (!s.ok()) return s;
    stmt->bodies.push_back(std::move(body));
    if (auto st = ExpectBlockEnd(); !st.ok()) return st;
    if (end == "else") {
      absl::StatusOr<Body> else_body = ParseBodyUntil("endfor");
      if (!else_body.ok()) return else_body.status();
      stmt->bodies.push_back(*std::move(else_body));
    }
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseSet(StmtPtr stmt) {
    absl::StatusOr<ExprPtr> target = ParseAssignTarget(true);
    if (!target.ok()) return target.status();
    stmt->target = *std::move(target);
    if (SkipOp("=")) {
      stmt->kind = Stmt::Kind::kSet;
      absl::StatusOr<ExprPtr> value = ParseTuple(true, {});
      if (!value.ok()) return value.status();
      stmt->expr = *std::move(value);
      if (auto s = ExpectBlockEnd(); !s.ok()) return s;
      return stmt;
    }
    stmt->kind = Stmt::Kind::kSetBlock;
    if (IsOp("|")) {
      absl::StatusOr<ExprPtr> filters = ParseFilterChain(nullptr, Current().line);
      if (!filters.ok()) return filters.status();
      stmt->filter = *std::move(filters);
    }
    if (auto s = ExpectBlockEnd(); !s.ok()) return s;
    absl::StatusOr<Body> body = ParseBodyUntil("endset");
    if (!body.ok()) return body.status();
    stmt->bodies.push_back(*std::move(body));
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseMacro(StmtPtr stmt) {
    stmt->kind = Stmt::Kind::kMacro;
    absl::StatusOr<std::string> name = ExpectName();
    if (!name.ok()) return name.status();
    stmt->name = *name;
    if (auto s = ExpectOp("("); !s.ok()) return s;
    bool has_default = false;
    while (!IsOp(")")) {
      if (!stmt->params.empty()) {
        if (auto s = ExpectOp(","); !s.ok()) return s;
      }
      absl::StatusOr<std::string> param = ExpectName();
      if (!param.ok()) return param.status();
      ExprPtr default_value;
      if (SkipOp("=")) {
        absl::StatusOr<ExprPtr> value = ParseExpression(true);
        if (!value.ok()) return value.status();
        default_value = *std::move(value);
        has_default = true;
      } else if (has_default) {
        return Fail(Current().line, "non-default argument follows default argument");
      }
      stmt->params.emplace_back(*param, std::move(default_value));
    }
    Next();
    if (auto s = ExpectBlockEnd(); !s.ok()) return s;
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;
    absl::StatusOr<Body> body = ParseBodyUntil("endmacro");
    loop_depth_ = saved_depth;
    if (!body.ok()) return body.status();
    stmt->bodies.push_back(*std::move(body));
    return stmt;
  }

  // ---- expressions ----

  bool IsTupleEnd(std::initializer_list<absl::string_view> extra_end_names) const {
    const Token& t = Current();
    if (t.type == Type::kBlockEnd || t.type == Type::kVariableEnd ||
        t.type == Type::kEof) {
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

  absl::StatusOr<ExprPtr> ParseTuple(bool with_condition,
                                     std::initializer_list<absl::string_view> extra_end,
                                     bool explicit_parentheses = false) {
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

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condition) {
    return with_condition ? ParseCondition() : ParseOr();
  }

  absl::StatusOr<ExprPtr> ParseCondition() {
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

  absl::StatusOr<ExprPtr> ParseBinaryChain(
      absl::StatusOr<ExprPtr> (Parser::*operand)(),
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

  absl::StatusOr<ExprPtr> ParseOr() { return ParseBinaryChain(&Parser::ParseAnd, {"or"}, true); }
  absl::StatusOr<ExprPtr> ParseAnd() { return ParseBinaryChain(&Parser::ParseNot, {"and"}, true); }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
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

  absl::StatusOr<ExprPtr> ParseCompare() {
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

  absl::StatusOr<ExprPtr> ParseMath1() {
    return ParseBinaryChain(&Parser::ParseConcat, {"+", "-"}, false);
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    return ParseBinaryChain(&Parser::ParseMath2, {"~"}, false);
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    return ParseBinaryChain(&Parser::ParsePow, {"*", "/", "//", "%"}, false);
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    return ParseBinaryChain(&Parser::ParseUnaryWithFilter, {"**"}, false);
  }

  absl::StatusOr<ExprPtr> ParseUnaryWithFilter() { return ParseUnary(true); }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    const int line = Current().line;
    absl::StatusOr<ExprPtr> node;
    if (IsOp("-") || IsOp("+")) {
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

  absl::StatusOr<ExprPtr> ParsePrimary() {
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

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
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

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
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

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node) {
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
  absl::StatusOr<ExprPtr> ParseSubscribed() {
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
  absl::Status ParseCallArgs(Expr* node) {
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
      if (Current().type == Type::kName && Peek().type == Type::kOperator &&
          Peek().value == "=") {
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

  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee) {
    ExprPtr call = MakeExpr(Expr::Kind::kCall, Current().line);
    call->args.push_back(std::move(callee));
    if (auto s = ParseCallArgs(call.get()); !s.ok()) return s;
    return call;
  }

  // One or more "| name(args)" applied to `node` (null in filter blocks).
  absl::StatusOr<ExprPtr> ParseFilterChain(ExprPtr node, int line) {
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
        return Fail(filter_line, absl::StrCat("the filter '", *name,
                                              "' is not supported in chat templates"));
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

  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node) {
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
    } else if ((t.type == Type::kName || t.type == Type::kString ||
                t.type == Type::kInteger || t.type == Type::kFloat || IsOp("(") ||
                IsOp("[") || IsOp("{")) &&
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

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
};

// jinja2 refuses an unknown filter or test when it compiles the template,
// except inside an `if` statement or an inline if-expression ("soft"
// frames), where the error waits until the filter runs (jinja2's
// CodeGenerator._filter_test_common). Loops, macros and blocks open hard
// frames again.
absl::Status CheckExprNames(const Expr* e, bool soft) {
  if (e == nullptr) return absl::OkStatus();
  if (e->kind == Expr::Kind::kCondition) soft = true;
  if (!soft && e->kind == Expr::Kind::kFilter && !HasFilter(e->name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template line ", e->line, ": no filter named '", e->name, "'"));
  }
  if (!soft && e->kind == Expr::Kind::kTest && !HasTest(e->name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template line ", e->line, ": no test named '", e->name, "'"));
  }
  for (const ExprPtr& a : e->args) {
    if (auto s = CheckExprNames(a.get(), soft); !s.ok()) return s;
  }
  for (const auto& [k, v] : e->kwargs) {
    if (auto s = CheckExprNames(v.get(), soft); !s.ok()) return s;
  }
  for (const auto& [k, v] : e->pairs) {
    if (auto s = CheckExprNames(k.get(), soft); !s.ok()) return s;
    if (auto s = CheckExprNames(v.get(), soft); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckNames(const Body& body, bool soft) {
  for (const StmtPtr& stmt : body) {
    absl::Status s;
    switch (stmt->kind) {
      case Stmt::Kind::kIf:
        for (const ExprPtr& c : stmt->conditions) {
          if (s.ok()) s = CheckExprNames(c.get(), true);
        }
        for (const Body& b : stmt->bodies) {
          if (s.ok()) s = CheckNames(b, true);
        }
        break;
      case Stmt::Kind::kFor:
      case Stmt::Kind::kPrint:
      case Stmt::Kind::kSet:
        s = CheckExprNames(stmt->expr.get(), soft);
        if (s.ok()) s = CheckExprNames(stmt->filter.get(), false);
        for (const Body& b : stmt->bodies) {
          if (s.ok()) s = CheckNames(b, false);
        }
        break;
      default:
        s = CheckExprNames(stmt->filter.get(), false);
        for (const auto& [name, value] : stmt->params) {
          if (s.ok()) s = CheckExprNames(value.get(), stmt->kind == Stmt::Kind::kWith && soft);
        }
        for (const Body& b : stmt->bodies) {
          if (s.ok()) s = CheckNames(b, false);
        }
        break;
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> Parse(absl::string_view source) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(source);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::unique_ptr<Template>> parsed = Parser(*std::move(tokens)).Run();
  if (!parsed.ok()) return parsed;
  if (auto s = CheckNames((*parsed)->body, false); !s.ok()) return s;
  return parsed;
}

}  // namespace weft::jinja
