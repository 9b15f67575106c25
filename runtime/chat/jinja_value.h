// The values a chat template computes with, modelled on the Python objects
// jinja2 hands a template: undefined, None, bool, int, float, str, list /
// tuple, dict (insertion-ordered), callables (macros, globals) and the two
// mutable objects a template may change, namespace() and the loop. Lists and
// dicts are immutable once built (the sandbox forbids list.append and
// dict.update), so they are shared, not copied.
//
// Strings are UTF-8; operations that Python defines on code points (len,
// slicing, indexing) decode as needed.
#ifndef WEFT_RUNTIME_CHAT_JINJA_VALUE_H_
#define WEFT_RUNTIME_CHAT_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft::jinja {

class Value;
using ValueList = std::vector<Value>;
// Python dict: keys in insertion order. Chat-template dicts are small, so
// lookups scan.
using ValueDict = std::vector<std::pair<Value, Value>>;
// Keyword arguments of a call, in the order written.
using KwArgs = std::vector<std::pair<std::string, Value>>;

struct CallArgs {
  ValueList positional;
  KwArgs keyword;
  // The keyword `name`, or nullptr.
  const Value* Find(absl::string_view name) const;
  // Parameter `index` of a Python signature, passed by position or by
  // `name`; nullptr when not passed.
  const Value* Get(size_t index, absl::string_view name) const {
    if (index < positional.size()) return &positional[index];
    return Find(name);
  }
};

class Interpreter;
// A callable: a macro, a global function (range, namespace, ...).
struct Callable {
  std::string name;
  std::function<absl::StatusOr<Value>(Interpreter&, const CallArgs&)> call;
};

// namespace(): the one object whose attributes `set ns.x = ...` changes.
struct Namespace {
  std::map<std::string, Value, std::less<>> attributes;
  std::vector<std::string> order;  // for printing
};

// What jinja2's map/select/... filters return: a Python generator, which
// iterates once (what one loop consumed, the next does not see), is always
// true, and has no len() and no JSON form.
struct IteratorState {
  ValueList items;
  size_t position = 0;
  std::string type_name = "generator";
};

// The `loop` variable of a for loop.
struct LoopInfo {
  int64_t index0 = 0;
  int64_t length = 0;
  std::shared_ptr<const ValueList> items;
  int depth0 = 0;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,  // also tuples (is_tuple())
    kDict,
    kCallable,
    kNamespace,
    kLoop,
    kIterator,
  };

  Value() = default;  // undefined
  static Value Undefined(std::string name = "") {
    Value v;
    v.string_ = std::move(name);
    return v;
  }
  static Value None() { return Value(Kind::kNone); }
  static Value Bool(bool b) {
    Value v(Kind::kBool);
    v.int_ = b;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Kind::kInt);
    v.int_ = i;
    return v;
  }
  static Value Float(double d) {
    Value v(Kind::kFloat);
    v.float_ = d;
    return v;
  }
  static Value String(std::string s) {
    Value v(Kind::kString);
    v.string_ = std::move(s);
    return v;
  }
  // markupsafe.Markup, what |safe and |escape return: `markup + str` and
  // `markup % args` HTML-escape the plain operand.
  static Value SafeString(std::string s) {
    Value v = String(std::move(s));
    v.is_safe_ = true;
    return v;
  }
  static Value List(ValueList items, bool is_tuple = false) {
    Value v(Kind::kList);
    v.list_ = std::make_shared<const ValueList>(std::move(items));
    v.is_tuple_ = is_tuple;
    return v;
  }
  static Value Dict(ValueDict items) {
    Value v(Kind::kDict);
    v.dict_ = std::make_shared<const ValueDict>(std::move(items));
    return v;
  }
  static Value MakeCallable(std::shared_ptr<const Callable> callable) {
    Value v(Kind::kCallable);
    v.callable_ = std::move(callable);
    return v;
  }
  static Value MakeNamespace(std::shared_ptr<Namespace> ns) {
    Value v(Kind::kNamespace);
    v.namespace_ = std::move(ns);
    return v;
  }
  static Value MakeLoop(std::shared_ptr<const LoopInfo> loop) {
    Value v(Kind::kLoop);
    v.loop_ = std::move(loop);
    return v;
  }
  static Value Iterator(ValueList items, std::string type_name = "generator") {
    Value v(Kind::kIterator);
    v.iterator_ = std::make_shared<IteratorState>();
    v.iterator_->items = std::move(items);
    v.iterator_->type_name = std::move(type_name);
    return v;
  }
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // Python's numbers: bool is an int.
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_safe_string() const { return kind_ == Kind::kString && is_safe_; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_loop() const { return kind_ == Kind::kLoop; }
  bool is_iterator() const { return kind_ == Kind::kIterator; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }  // kInt or kBool
  double as_double() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return string_; }
  // The name an undefined value was looked up by ("" when unknown).
  const std::string& undefined_name() const { return string_; }
  const ValueList& as_list() const { return *list_; }
  const std::shared_ptr<const ValueList>& list_ptr() const { return list_; }
  const ValueDict& as_dict() const { return *dict_; }
  const Callable& as_callable() const { return *callable_; }
  Namespace& as_namespace() const { return *namespace_; }
  const LoopInfo& as_loop() const { return *loop_; }
  IteratorState& as_iterator() const { return *iterator_; }

  // Python's bool(x); undefined is false.
  bool Truthy() const;
  // dict[key] by Python equality; nullptr when absent.
  const Value* FindKey(const Value& key) const;
  const Value* FindKey(absl::string_view key) const;

  // Python type name, for error messages ("str", "dict", ...).
  std::string TypeName() const;

 private:
  explicit Value(Kind kind) : kind_(kind) {}

  Kind kind_ = Kind::kUndefined;
  bool is_tuple_ = false;
  bool is_safe_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<const ValueDict> dict_;
  std::shared_ptr<const Callable> callable_;
  std::shared_ptr<Namespace> namespace_;
  std::shared_ptr<const LoopInfo> loop_;
  std::shared_ptr<IteratorState> iterator_;
};

// Python `a == b` (1 == 1.0 == True; lists and dicts element-wise).
bool Equal(const Value& a, const Value& b);
// Python `a < b` etc. for numbers, strings and lists; TypeError otherwise.
// Returns <0, 0, >0.
absl::StatusOr<int> Compare(const Value& a, const Value& b);

// str(x) as jinja2 prints it (undefined → "", None → "None", True → "True",
// 1.0 → "1.0", lists and dicts as Python repr).
std::string ToPythonStr(const Value& v);
// repr(x).
std::string ToPythonRepr(const Value& v);
// Python float repr: shortest round-trip digits, "1.0", "1e+16", "inf".
std::string FormatPythonFloat(double d);

struct JsonDumpOptions {
  // Unset: one line. Else the string one nesting level is indented by
  // (json.dumps(indent=2) is "  ").
  std::optional<std::string> indent;
  bool ensure_ascii = false;
  bool sort_keys = false;
  // Unset: Python's defaults, ", " and ": " (", " becomes "," when
  // indenting).
  std::optional<std::pair<std::string, std::string>> separators;
};
// json.dumps(x, ...) with Python's formatting; undefined, callables and
// namespaces are not JSON serializable (InvalidArgument).
absl::StatusOr<std::string> DumpJson(const Value& v, const JsonDumpOptions& options);

// markupsafe.escape: & < > " ' as HTML entities.
std::string HtmlEscape(absl::string_view s);

// UTF-8 helpers for the code-point view of strings.
std::vector<char32_t> DecodeUtf8(absl::string_view s);
std::string EncodeUtf8(const std::vector<char32_t>& code_points);
void AppendUtf8(char32_t c, std::string* out);
int64_t CodePointLength(absl::string_view s);

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_VALUE_H_
