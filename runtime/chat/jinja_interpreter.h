// Renders a parsed template: statements write to an output string, names
// resolve through a chain of scopes as in jinja2 (a for loop's body gets a
// fresh scope per iteration, macros see the scope they were defined in, `if`
// opens none), attribute and item lookups fall back to each other and yield
// undefined when both miss, as jinja2's sandboxed getattr/getitem do.
//
// One Interpreter renders once; it is not shared between threads (the
// Template it reads is).
#ifndef WEFT_RUNTIME_CHAT_JINJA_INTERPRETER_H_
#define WEFT_RUNTIME_CHAT_JINJA_INTERPRETER_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_operators.h"
#include "runtime/chat/jinja_value.h"

namespace weft::jinja {

class Interpreter {
 public:
  // `variables` are the template's top-level names (messages, bos_token,
  // ...); they shadow the global functions.
  // `now`: the local time strftime_now() reports; unset: the clock's.
  Interpreter(const Template& tmpl, std::vector<std::pair<std::string, Value>> variables,
              std::optional<absl::CivilSecond> now = std::nullopt);

  // Errors other than raise_exception's carry the line they happened on.
  absl::StatusOr<std::string> Render();

  // The operations builtins share with the interpreter.
  absl::StatusOr<Value> Call(const Value& callee, const CallArgs& args);
  // obj.name: a method, a namespace or loop attribute, else obj[name];
  // undefined when there is none; an error on undefined obj.
  absl::StatusOr<Value> GetAttr(const Value& object, absl::string_view name);
  // obj[key], falling back to obj.key for string keys.
  absl::StatusOr<Value> GetItem(const Value& object, const Value& key);
  // The items a for loop visits: list/tuple items, dict keys, a string's
  // characters; none for undefined; an error otherwise.
  absl::StatusOr<ValueList> Iterate(const Value& v);
  const std::optional<absl::CivilSecond>& now() const { return now_; }

 private:
  struct Scope {
    absl::flat_hash_map<std::string, Value> vars;
    std::shared_ptr<Scope> parent;
  };
  enum class Flow { kNormal, kBreak, kContinue };

  absl::StatusOr<Flow> ExecBody(const Body& body, const std::shared_ptr<Scope>& scope);
  absl::StatusOr<Flow> Exec(const Stmt& stmt, const std::shared_ptr<Scope>& scope);
  absl::StatusOr<Flow> ExecFor(const Stmt& stmt, const std::shared_ptr<Scope>& scope);
  absl::Status ExecSet(const Stmt& stmt, const std::shared_ptr<Scope>& scope);
  absl::Status Assign(const Expr& target, const Value& value, Scope& scope);
  Value DefineMacro(const Stmt& stmt, const std::shared_ptr<Scope>& scope);
  // Renders `body` in `scope` into a string (macros, set blocks, filter
  // blocks).
  absl::StatusOr<std::string> Capture(const Body& body, const std::shared_ptr<Scope>& scope);
  absl::StatusOr<Value> ApplyFilterChain(const Expr* filter, Value input,
                                         const std::shared_ptr<Scope>& scope);

  absl::StatusOr<Value> Eval(const Expr& e, const std::shared_ptr<Scope>& scope);
  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first,
                                    const std::shared_ptr<Scope>& scope);
  absl::StatusOr<Value> EvalBinary(const Expr& e, const std::shared_ptr<Scope>& scope);
  absl::StatusOr<Value> EvalCompare(const Expr& e, const std::shared_ptr<Scope>& scope);
  absl::StatusOr<Value> EvalSlice(const Expr& e, const std::shared_ptr<Scope>& scope);
  Value Lookup(const std::string& name, const Scope& scope) const;

  const Template& template_;
  std::shared_ptr<Scope> globals_;
  std::shared_ptr<Scope> root_;
  std::string* out_ = nullptr;
  int line_ = 0;  // of the statement or expression being evaluated
  std::optional<absl::CivilSecond> now_;
  int macro_depth_ = 0;  // macros being called, to bound their recursion
};

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_INTERPRETER_H_
