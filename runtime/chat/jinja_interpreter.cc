#include "runtime/chat/jinja_interpreter.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_builtins.h"

namespace weft::jinja {
namespace {

absl::Status TypeError(absl::string_view what) { return absl::InvalidArgumentError(what); }

absl::Status UndefinedError(const Value& v) {
  return absl::InvalidArgumentError(v.undefined_name().empty()
                                        ? "a value is undefined"
                                        : absl::StrCat("'", v.undefined_name(), "' is undefined"));
}

// str() of a generator is "<generator object ... at 0x...>": a memory
// address, which no rendering should contain.
absl::Status PrintedIteratorError(const Value& v) {
  return absl::InvalidArgumentError(
      absl::StrCat("a ", v.TypeName(), " cannot be printed (add |list, or |join)"));
}

// Python slice indices for a sequence of `length`: start, stop, step.
absl::Status SliceIndices(const Value& start_v, const Value& stop_v, const Value& step_v,
                          int64_t length, int64_t* start, int64_t* stop, int64_t* step) {
  auto as_index = [](const Value& v, int64_t* out) -> absl::StatusOr<bool> {
    if (v.is_none() || v.is_undefined()) return false;
    if (!v.is_int() && !v.is_bool()) {
      return absl::InvalidArgumentError("slice indices must be integers or None");
    }
    *out = v.as_int();
    return true;
  };
  *step = 1;
  absl::StatusOr<bool> has = as_index(step_v, step);
  if (!has.ok()) return has.status();
  if (*step == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  const int64_t lower = *step < 0 ? -1 : 0;
  const int64_t upper = *step < 0 ? length - 1 : length;
  auto clamp = [&](int64_t i) {
    if (i < 0) {
      i += length;
      return i < lower ? lower : i;
    }
    return i > upper ? upper : i;
  };
  int64_t v = 0;
  has = as_index(start_v, &v);
  if (!has.ok()) return has.status();
  *start = *has ? clamp(v) : (*step < 0 ? upper : lower);
  has = as_index(stop_v, &v);
  if (!has.ok()) return has.status();
  *stop = *has ? clamp(v) : (*step < 0 ? lower : upper);
  return absl::OkStatus();
}

}  // namespace

Interpreter::Interpreter(const Template& tmpl, std::vector<std::pair<std::string, Value>> variables,
                         std::optional<absl::CivilSecond> now)
    : template_(tmpl),
      globals_(std::make_shared<Scope>()),
      root_(std::make_shared<Scope>()),
      now_(now) {
  for (const auto& [name, value] : GlobalFunctions()) globals_->vars[name] = value;
  root_->parent = globals_;
  for (auto& [name, value] : variables) root_->vars[name] = std::move(value);
}

absl::StatusOr<std::string> Interpreter::Render() {
  std::string out;
  out_ = &out;
  absl::StatusOr<Flow> flow = ExecBody(template_.body, root_);
  if (!flow.ok()) {
    if (flow.status().GetPayload(kRaisedPayloadUrl).has_value()) return flow.status();
    return absl::InvalidArgumentError(
        absl::StrCat("chat template line ", line_, ": ", flow.status().message()));
  }
  return out;
}

Value Interpreter::Lookup(const std::string& name, const Scope& scope) const {
  for (const Scope* s = &scope; s != nullptr; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  return Value::Undefined(name);
}

absl::StatusOr<Interpreter::Flow> Interpreter::ExecBody(const Body& body,
                                                        const std::shared_ptr<Scope>& scope) {
  for (const StmtPtr& stmt : body) {
    absl::StatusOr<Flow> flow = Exec(*stmt, scope);
    if (!flow.ok() || *flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

absl::StatusOr<std::string> Interpreter::Capture(const Body& body,
                                                 const std::shared_ptr<Scope>& scope) {
  std::string captured;
  std::string* saved = out_;
  out_ = &captured;
  absl::StatusOr<Flow> flow = ExecBody(body, scope);
  out_ = saved;
  if (!flow.ok()) return flow.status();
  return captured;
}

absl::StatusOr<Interpreter::Flow> Interpreter::Exec(const Stmt& stmt,
                                                    const std::shared_ptr<Scope>& scope) {
  line_ = stmt.line;
  switch (stmt.kind) {
    case Stmt::Kind::kData:
      *out_ += stmt.text;
      return Flow::kNormal;
    case Stmt::Kind::kPrint: {
      absl::StatusOr<Value> v = Eval(*stmt.expr, scope);
      if (!v.ok()) return v.status();
      if (v->is_iterator()) return PrintedIteratorError(*v);
      *out_ += ToPythonStr(*v);
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < stmt.conditions.size(); ++i) {
        absl::StatusOr<Value> c = Eval(*stmt.conditions[i], scope);
        if (!c.ok()) return c.status();
        if (c->Truthy()) return ExecBody(stmt.bodies[i], scope);
      }
      if (stmt.bodies.size() > stmt.conditions.size()) {
        return ExecBody(stmt.bodies.back(), scope);
      }
      return Flow::kNormal;
    case Stmt::Kind::kFor:
      return ExecFor(stmt, scope);
    case Stmt::Kind::kSet:
    case Stmt::Kind::kSetBlock:
      if (auto s = ExecSet(stmt, scope); !s.ok()) return s;
      return Flow::kNormal;
    case Stmt::Kind::kMacro:
      scope->vars[stmt.name] = DefineMacro(stmt, scope);
      return Flow::kNormal;
    case Stmt::Kind::kFilterBlock: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      absl::StatusOr<std::string> text = Capture(stmt.bodies[0], inner);
      if (!text.ok()) return text.status();
      absl::StatusOr<Value> v = ApplyFilterChain(stmt.filter.get(), Value::String(*text), scope);
      if (!v.ok()) return v.status();
      *out_ += ToPythonStr(*v);
      return Flow::kNormal;
    }
    case Stmt::Kind::kWith: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      for (const auto& [name, value_expr] : stmt.params) {
        absl::StatusOr<Value> v = Eval(*value_expr, scope);
        if (!v.ok()) return v.status();
        inner->vars[name] = *std::move(v);
      }
      return ExecBody(stmt.bodies[0], inner);
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kScope:
      return ExecBody(stmt.bodies[0], scope);
  }
  return Flow::kNormal;
}

absl::StatusOr<Interpreter::Flow> Interpreter::ExecFor(const Stmt& stmt,
                                                       const std::shared_ptr<Scope>& scope) {
  absl::StatusOr<Value> iterable = Eval(*stmt.expr, scope);
  if (!iterable.ok()) return iterable.status();
  absl::StatusOr<ValueList> all = Iterate(*iterable);
  if (!all.ok()) return all.status();
  // The `if` filter runs before the loop: loop.length counts what it keeps.
  auto items = std::make_shared<ValueList>();
  if (stmt.filter == nullptr) {
    *items = *std::move(all);
  } else {
    for (Value& item : *all) {
      auto test_scope = std::make_shared<Scope>();
      test_scope->parent = scope;
      if (auto s = Assign(*stmt.target, item, *test_scope); !s.ok()) return s;
      absl::StatusOr<Value> keep = Eval(*stmt.filter, test_scope);
      if (!keep.ok()) return keep.status();
      if (keep->Truthy()) items->push_back(std::move(item));
    }
  }
  if (items->empty()) {
    if (stmt.bodies.size() > 1) return ExecBody(stmt.bodies[1], scope);
    return Flow::kNormal;
  }
  const Value outer_loop = Lookup("loop", *scope);
  const int depth0 = outer_loop.is_loop() ? outer_loop.as_loop().depth0 + 1 : 0;
  std::shared_ptr<const ValueList> shared_items = items;
  for (size_t i = 0; i < shared_items->size(); ++i) {
    auto body_scope = std::make_shared<Scope>();
    body_scope->parent = scope;
    auto loop = std::make_shared<LoopInfo>();
    loop->index0 = static_cast<int64_t>(i);
    loop->length = static_cast<int64_t>(shared_items->size());
    loop->items = shared_items;
    loop->depth0 = depth0;
    body_scope->vars["loop"] = Value::MakeLoop(std::move(loop));
    if (auto s = Assign(*stmt.target, (*shared_items)[i], *body_scope); !s.ok()) return s;
    absl::StatusOr<Flow> flow = ExecBody(stmt.bodies[0], body_scope);
    if (!flow.ok()) return flow.status();
    if (*flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

absl::Status Interpreter::Assign(const Expr& target, const Value& value, Scope& scope) {
  if (target.kind == Expr::Kind::kName) {
    scope.vars[target.name] = value;
    return absl::OkStatus();
  }
  if (target.kind == Expr::Kind::kTuple) {
    absl::StatusOr<ValueList> items = Iterate(value);
    if (!items.ok()) return items.status();
    if (items->size() != target.args.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          items->size() < target.args.size() ? "not enough" : "too many",
          " values to unpack (expected ", target.args.size(), ", got ", items->size(), ")"));
    }
    for (size_t i = 0; i < items->size(); ++i) {
      if (auto s = Assign(*target.args[i], (*items)[i], scope); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  // kNamespaceRef: ns.attribute = value
  const Value ns = Lookup(target.name, scope);
  if (!ns.is_namespace()) {
    return absl::InvalidArgumentError("cannot assign attribute on non-namespace object");
  }
  if (!target.attribute.empty() && target.attribute[0] == '_') {
    return absl::InvalidArgumentError(absl::StrCat(
        "chat templates cannot store underscore-prefixed attributes on a namespace, but got '",
        target.attribute, "'"));
  }
  Namespace& n = ns.as_namespace();
  auto [it, inserted] = n.attributes.insert_or_assign(target.attribute, value);
  if (inserted) n.order.push_back(target.attribute);
  return absl::OkStatus();
}

absl::Status Interpreter::ExecSet(const Stmt& stmt, const std::shared_ptr<Scope>& scope) {
  Value value;
  if (stmt.kind == Stmt::Kind::kSet) {
    absl::StatusOr<Value> v = Eval(*stmt.expr, scope);
    if (!v.ok()) return v.status();
    value = *std::move(v);
  } else {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    absl::StatusOr<std::string> text = Capture(stmt.bodies[0], inner);
    if (!text.ok()) return text.status();
    value = Value::String(*std::move(text));
    if (stmt.filter != nullptr) {
      absl::StatusOr<Value> v = ApplyFilterChain(stmt.filter.get(), value, scope);
      if (!v.ok()) return v.status();
      value = *std::move(v);
    }
  }
  return Assign(*stmt.target, value, *scope);
}

absl::StatusOr<Value> Interpreter::ApplyFilterChain(const Expr* filter, Value input,
                                                    const std::shared_ptr<Scope>& scope) {
  // The chain nests inward: the innermost filter (args[0] == null) runs first.
  std::vector<const Expr*> chain;
  for (const Expr* f = filter; f != nullptr; f = f->args[0].get()) chain.push_back(f);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    absl::StatusOr<CallArgs> args = EvalArgs(**it, 1, scope);
    if (!args.ok()) return args.status();
    absl::StatusOr<Value> v = ApplyFilter(*this, (*it)->name, input, *args);
    if (!v.ok()) return v.status();
    input = *std::move(v);
  }
  return input;
}

namespace {

// Whether `body` mentions the name `name` anywhere (macros take *varargs
// and **kwargs only when their body uses them, as in jinja2).
bool ExprMentions(const Expr* e, absl::string_view name) {
  if (e == nullptr) return false;
  if (e->kind == Expr::Kind::kName && e->name == name) return true;
  for (const ExprPtr& a : e->args) {
    if (ExprMentions(a.get(), name)) return true;
  }
  for (const auto& [k, v] : e->kwargs) {
    if (ExprMentions(v.get(), name)) return true;
  }
  for (const auto& [k, v] : e->pairs) {
    if (ExprMentions(k.get(), name) || ExprMentions(v.get(), name)) return true;
  }
  return false;
}

bool BodyMentions(const Body& body, absl::string_view name) {
  for (const StmtPtr& s : body) {
    if (ExprMentions(s->expr.get(), name) || ExprMentions(s->filter.get(), name)) return true;
    for (const ExprPtr& c : s->conditions) {
      if (ExprMentions(c.get(), name)) return true;
    }
    for (const auto& [k, v] : s->params) {
      if (ExprMentions(v.get(), name)) return true;
    }
    for (const Body& b : s->bodies) {
      if (BodyMentions(b, name)) return true;
    }
  }
  return false;
}

}  // namespace

Value Interpreter::DefineMacro(const Stmt& stmt, const std::shared_ptr<Scope>& scope) {
  auto callable = std::make_shared<Callable>();
  callable->name = stmt.name;
  const bool takes_varargs = BodyMentions(stmt.bodies[0], "varargs");
  const bool takes_kwargs = BodyMentions(stmt.bodies[0], "kwargs");
  const Stmt* definition = &stmt;
  std::weak_ptr<Scope> weak_scope = scope;
  callable->call = [definition, weak_scope, takes_varargs, takes_kwargs](
                       Interpreter& interpreter, const CallArgs& args) -> absl::StatusOr<Value> {
    std::shared_ptr<Scope> closure = weak_scope.lock();
    if (closure == nullptr) return absl::InternalError("macro called after its scope ended");
    const auto& params = definition->params;
    if (args.positional.size() > params.size() && !takes_varargs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "macro '", definition->name, "' takes not more than ", params.size(), " argument(s)"));
    }
    auto scope = std::make_shared<Scope>();
    scope->parent = closure;
    ValueDict extra_kwargs;
    for (const auto& [key, value] : args.keyword) {
      bool known = false;
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].first == key) {
          if (i < args.positional.size()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "macro '", definition->name, "' got multiple values for argument '", key, "'"));
          }
          known = true;
        }
      }
      if (!known) {
        if (!takes_kwargs) {
          return absl::InvalidArgumentError(
              absl::StrCat("macro '", definition->name, "' takes no keyword argument '", key, "'"));
        }
        extra_kwargs.emplace_back(Value::String(key), value);
      }
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string& name = params[i].first;
      if (i < args.positional.size()) {
        scope->vars[name] = args.positional[i];
      } else if (const Value* kw = args.Find(name)) {
        scope->vars[name] = *kw;
      } else if (params[i].second != nullptr) {
        absl::StatusOr<Value> d = interpreter.Eval(*params[i].second, scope);
        if (!d.ok()) return d.status();
        scope->vars[name] = *std::move(d);
      } else {
        scope->vars[name] = Value::Undefined(name);
      }
    }
    if (takes_varargs) {
      ValueList rest;
      for (size_t i = params.size(); i < args.positional.size(); ++i) {
        rest.push_back(args.positional[i]);
      }
      scope->vars["varargs"] = Value::List(std::move(rest), /*is_tuple=*/true);
    }
    if (takes_kwargs) scope->vars["kwargs"] = Value::Dict(std::move(extra_kwargs));
    // jinja2 hits Python's recursion limit; weft stops before its stack does.
    constexpr int kMaxMacroDepth = 100;
    if (interpreter.macro_depth_ >= kMaxMacroDepth) {
      return absl::InvalidArgumentError(absl::StrCat(
          "macro '", definition->name, "': calls nested deeper than ", kMaxMacroDepth, " levels"));
    }
    const int saved_line = interpreter.line_;
    ++interpreter.macro_depth_;
    absl::StatusOr<std::string> text = interpreter.Capture(definition->bodies[0], scope);
    --interpreter.macro_depth_;
    if (!text.ok()) return text.status();
    interpreter.line_ = saved_line;
    return Value::String(*std::move(text));
  };
  return Value::MakeCallable(std::move(callable));
}

absl::StatusOr<Value> Interpreter::Call(const Value& callee, const CallArgs& args) {
  if (callee.is_undefined()) return UndefinedError(callee);
  if (!callee.is_callable()) {
    return TypeError(absl::StrCat("'", callee.TypeName(), "' object is not callable"));
  }
  return callee.as_callable().call(*this, args);
}

absl::StatusOr<ValueList> Interpreter::Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kIterator: {
      IteratorState& it = v.as_iterator();
      ValueList rest(it.items.begin() + it.position, it.items.end());
      it.position = it.items.size();
      return rest;
    }
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& [key, value] : v.as_dict()) keys.push_back(key);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      for (char32_t c : DecodeUtf8(v.as_string())) {
        std::string s;
        AppendUtf8(c, &s);
        chars.push_back(Value::String(std::move(s)));
      }
      return chars;
    }
    default:
      return TypeError(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<Value> Interpreter::GetAttr(const Value& object, absl::string_view name) {
  if (object.is_undefined()) return UndefinedError(object);
  Value method = BuiltinAttribute(object, name);
  if (!method.is_undefined()) return method;
  if (object.is_namespace()) {
    auto it = object.as_namespace().attributes.find(name);
    if (it != object.as_namespace().attributes.end()) return it->second;
    return Value::Undefined(std::string(name));
  }
  if (object.is_dict()) {
    if (const Value* v = object.FindKey(name)) return *v;
  }
  return Value::Undefined(std::string(name));
}

absl::StatusOr<Value> Interpreter::GetItem(const Value& object, const Value& key) {
  if (object.is_undefined()) return UndefinedError(object);
  if ((object.is_list() || object.is_string()) && (key.is_int() || key.is_bool())) {
    if (object.is_list()) {
      const int64_t n = static_cast<int64_t>(object.as_list().size());
      int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined();
      return object.as_list()[i];
    }
    const std::vector<char32_t> chars = DecodeUtf8(object.as_string());
    const int64_t n = static_cast<int64_t>(chars.size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::Undefined();
    std::string s;
    AppendUtf8(chars[i], &s);
    return Value::String(std::move(s));
  }
  if (object.is_dict()) {
    if (const Value* v = object.FindKey(key)) return *v;
  }
  if (key.is_string()) {
    if (object.is_dict()) {
      Value method = BuiltinAttribute(object, key.as_string());
      if (!method.is_undefined()) return method;
      return Value::Undefined(key.as_string());
    }
    return GetAttr(object, key.as_string());
  }
  return Value::Undefined();
}

absl::StatusOr<CallArgs> Interpreter::EvalArgs(const Expr& e, size_t first,
                                               const std::shared_ptr<Scope>& scope) {
  CallArgs args;
  for (size_t i = first; i < e.args.size(); ++i) {
    absl::StatusOr<Value> v = Eval(*e.args[i], scope);
    if (!v.ok()) return v.status();
    args.positional.push_back(*std::move(v));
  }
  for (const auto& [name, expr] : e.kwargs) {
    absl::StatusOr<Value> v = Eval(*expr, scope);
    if (!v.ok()) return v.status();
    args.keyword.emplace_back(name, *std::move(v));
  }
  return args;
}

absl::StatusOr<Value> Interpreter::Eval(const Expr& e, const std::shared_ptr<Scope>& scope) {
  line_ = e.line;
  switch (e.kind) {
    case Expr::Kind::kConst:
      return e.constant;
    case Expr::Kind::kName:
      return Lookup(e.name, *scope);
    case Expr::Kind::kTuple:
    case Expr::Kind::kList: {
      absl::StatusOr<CallArgs> items = EvalArgs(e, 0, scope);
      if (!items.ok()) return items.status();
      return Value::List(std::move(items->positional), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      ValueDict items;
      for (const auto& [key_expr, value_expr] : e.pairs) {
        absl::StatusOr<Value> key = Eval(*key_expr, scope);
        if (!key.ok()) return key.status();
        absl::StatusOr<Value> value = Eval(*value_expr, scope);
        if (!value.ok()) return value.status();
        bool replaced = false;
        for (auto& [k, v] : items) {
          if (Equal(k, *key)) {
            v = *value;
            replaced = true;
          }
        }
        if (!replaced) items.emplace_back(*std::move(key), *std::move(value));
      }
      return Value::Dict(std::move(items));
    }
    case Expr::Kind::kGetAttr: {
      absl::StatusOr<Value> object = Eval(*e.args[0], scope);
      if (!object.ok()) return object.status();
      line_ = e.line;
      return GetAttr(*object, e.name);
    }
    case Expr::Kind::kGetItem: {
      absl::StatusOr<Value> object = Eval(*e.args[0], scope);
      if (!object.ok()) return object.status();
      absl::StatusOr<Value> key = Eval(*e.args[1], scope);
      if (!key.ok()) return key.status();
      line_ = e.line;
      return GetItem(*object, *key);
    }
    case Expr::Kind::kSlice:
      return EvalSlice(e, scope);
    case Expr::Kind::kCall: {
      absl::StatusOr<Value> callee = Eval(*e.args[0], scope);
      if (!callee.ok()) return callee.status();
      absl::StatusOr<CallArgs> args = EvalArgs(e, 1, scope);
      if (!args.ok()) return args.status();
      line_ = e.line;
      return Call(*callee, *args);
    }
    case Expr::Kind::kFilter: {
      absl::StatusOr<Value> input = Eval(*e.args[0], scope);
      if (!input.ok()) return input.status();
      absl::StatusOr<CallArgs> args = EvalArgs(e, 1, scope);
      if (!args.ok()) return args.status();
      line_ = e.line;
      return ApplyFilter(*this, e.name, *input, *args);
    }
    case Expr::Kind::kTest: {
      absl::StatusOr<Value> input = Eval(*e.args[0], scope);
      if (!input.ok()) return input.status();
      absl::StatusOr<CallArgs> args = EvalArgs(e, 1, scope);
      if (!args.ok()) return args.status();
      line_ = e.line;
      absl::StatusOr<bool> result = ApplyTest(*this, e.name, *input, *args);
      if (!result.ok()) return result.status();
      return Value::Bool(*result != e.negated);
    }
    case Expr::Kind::kNot: {
      absl::StatusOr<Value> v = Eval(*e.args[0], scope);
      if (!v.ok()) return v.status();
      return Value::Bool(!v->Truthy());
    }
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      absl::StatusOr<Value> v = Eval(*e.args[0], scope);
      if (!v.ok()) return v.status();
      if (v->is_undefined()) return UndefinedError(*v);
      if (!v->is_number()) {
        return TypeError(absl::StrCat("bad operand type for unary ",
                                      e.kind == Expr::Kind::kNeg ? "-" : "+", ": '", v->TypeName(),
                                      "'"));
      }
      if (e.kind == Expr::Kind::kPos) {
        return v->is_bool() ? Value::Int(v->as_int()) : *v;
      }
      return v->is_float() ? Value::Float(-v->as_double()) : Value::Int(-v->as_int());
    }
    case Expr::Kind::kBinary:
      return EvalBinary(e, scope);
    case Expr::Kind::kCompare:
      return EvalCompare(e, scope);
    case Expr::Kind::kCondition: {
      absl::StatusOr<Value> test = Eval(*e.args[0], scope);
      if (!test.ok()) return test.status();
      if (test->Truthy()) return Eval(*e.args[1], scope);
      if (e.args[2] == nullptr) return Value::Undefined();
      return Eval(*e.args[2], scope);
    }
    case Expr::Kind::kNamespaceRef:
      break;
  }
  return absl::InternalError("unexpected expression");
}

absl::StatusOr<Value> Interpreter::EvalBinary(const Expr& e, const std::shared_ptr<Scope>& scope) {
  absl::StatusOr<Value> left = Eval(*e.args[0], scope);
  if (!left.ok()) return left;
  if (e.name == "and") return left->Truthy() ? Eval(*e.args[1], scope) : left;
  if (e.name == "or") return left->Truthy() ? left : Eval(*e.args[1], scope);
  absl::StatusOr<Value> right = Eval(*e.args[1], scope);
  if (!right.ok()) return right;
  line_ = e.line;
  if (e.name == "~") {
    if (left->is_iterator()) return PrintedIteratorError(*left);
    if (right->is_iterator()) return PrintedIteratorError(*right);
    return Value::String(ToPythonStr(*left) + ToPythonStr(*right));
  }
  return Arithmetic(e.name, *left, *right);
}

absl::StatusOr<Value> Interpreter::EvalCompare(const Expr& e, const std::shared_ptr<Scope>& scope) {
  absl::StatusOr<Value> left = Eval(*e.args[0], scope);
  if (!left.ok()) return left;
  for (size_t i = 0; i < e.ops.size(); ++i) {
    absl::StatusOr<Value> right = Eval(*e.args[i + 1], scope);
    if (!right.ok()) return right;
    line_ = e.line;
    const std::string& op = e.ops[i];
    bool result = false;
    if (op == "==" || op == "!=") {
      result = Equal(*left, *right) == (op == "==");
    } else if (op == "in" || op == "notin") {
      absl::StatusOr<bool> c = Contains(*right, *left);
      if (!c.ok()) return c.status();
      result = *c == (op == "in");
    } else {
      if (left->is_undefined()) return UndefinedError(*left);
      if (right->is_undefined()) return UndefinedError(*right);
      absl::StatusOr<int> c = Compare(*left, *right);
      if (!c.ok()) return c.status();
      result = op == "<" ? *c < 0 : op == "<=" ? *c <= 0 : op == ">" ? *c > 0 : *c >= 0;
    }
    if (!result) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

absl::StatusOr<Value> Interpreter::EvalSlice(const Expr& e, const std::shared_ptr<Scope>& scope) {
  absl::StatusOr<Value> object = Eval(*e.args[0], scope);
  if (!object.ok()) return object;
  Value bounds[3];
  for (int i = 0; i < 3; ++i) {
    if (e.args[i + 1] == nullptr) continue;
    absl::StatusOr<Value> v = Eval(*e.args[i + 1], scope);
    if (!v.ok()) return v;
    bounds[i] = *std::move(v);
  }
  line_ = e.line;
  if (object->is_undefined()) return UndefinedError(*object);
  // jinja2's getitem turns the TypeError of slicing anything else into
  // undefined.
  if (!object->is_list() && !object->is_string()) return Value::Undefined();
  std::vector<char32_t> chars;
  if (object->is_string()) chars = DecodeUtf8(object->as_string());
  const int64_t length = object->is_string() ? static_cast<int64_t>(chars.size())
                                             : static_cast<int64_t>(object->as_list().size());
  int64_t start = 0, stop = 0, step = 1;
  if (auto s = SliceIndices(bounds[0], bounds[1], bounds[2], length, &start, &stop, &step);
      !s.ok()) {
    return s;
  }
  std::vector<int64_t> picked;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picked.push_back(i);
  if (object->is_string()) {
    std::string out;
    for (int64_t i : picked) AppendUtf8(chars[i], &out);
    return Value::String(std::move(out));
  }
  ValueList out;
  for (int64_t i : picked) out.push_back(object->as_list()[i]);
  return Value::List(std::move(out), object->is_tuple());
}

}  // namespace weft::jinja
