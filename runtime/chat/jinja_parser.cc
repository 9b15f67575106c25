#include "runtime/chat/jinja_parser.h"

#include <cstdlib>
#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_expression_parser.h"
#include "runtime/chat/jinja_lexer.h"

namespace weft::jinja {
namespace {

// Tags jinja2 knows but weft does not interpret, and why.
constexpr std::pair<absl::string_view, absl::string_view> kUnsupportedTags[] = {
    {"extends", "template inheritance"},      {"block", "template inheritance"},
    {"include", "including other templates"}, {"import", "importing other templates"},
    {"from", "importing other templates"},    {"call", "call blocks"},
    {"autoescape", "autoescape blocks"},      {"print", "the print statement"},
};

class Parser : public ExpressionParser {
 public:
  explicit Parser(std::vector<Token> tokens) : ExpressionParser(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<Template>> Run() {
    auto result = std::make_unique<Template>();
    std::string end;
    if (auto s = ParseBody({}, &result->body, &end); !s.ok()) return s;
    return result;
  }

 private:
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
          return Fail(t.line, absl::StrCat("unexpected end of template, expected ", Quoted(ends)));
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
    Nesting nesting(&depth_);
    if (depth_ > kMaxNesting) return TooDeep();
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
