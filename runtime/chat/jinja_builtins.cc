// Methods of str, dict, list and loop, and the global functions. Filters and
// tests are in jinja_filters.cc.
#include "runtime/chat/jinja_builtins.h"

#include <ctime>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_interpreter.h"
#include "runtime/chat/jinja_strings.h"

namespace weft::jinja {
namespace {

using Method = absl::StatusOr<Value> (*)(Interpreter&, const Value& self, const CallArgs&);

absl::Status ArgError(absl::string_view what) { return absl::InvalidArgumentError(what); }

absl::StatusOr<std::string> StringArg(const CallArgs& args, size_t index, absl::string_view name,
                                      absl::string_view method) {
  const Value* v = args.Get(index, name);
  if (v == nullptr) {
    return ArgError(absl::StrCat(method, "() missing required argument '", name, "'"));
  }
  if (!v->is_string()) {
    return ArgError(absl::StrCat(method, "() argument must be str, not ", v->TypeName()));
  }
  return v->as_string();
}

// An optional str argument: unset when absent or None.
absl::StatusOr<std::optional<std::string>> OptionalStringArg(const CallArgs& args, size_t index,
                                                             absl::string_view name,
                                                             absl::string_view method) {
  const Value* v = args.Get(index, name);
  if (v == nullptr || v->is_none()) return std::optional<std::string>();
  if (!v->is_string()) {
    return ArgError(absl::StrCat(method, "() argument must be str or None, not ", v->TypeName()));
  }
  return std::optional<std::string>(v->as_string());
}

absl::StatusOr<int64_t> IntArg(const CallArgs& args, size_t index, absl::string_view name,
                               int64_t default_value) {
  const Value* v = args.Get(index, name);
  if (v == nullptr) return default_value;
  if (!v->is_int() && !v->is_bool()) {
    return ArgError(
        absl::StrCat("'", v->TypeName(), "' object cannot be interpreted as an integer"));
  }
  return v->as_int();
}

Value StringList(const std::vector<std::string>& parts) {
  ValueList items;
  for (const std::string& p : parts) items.push_back(Value::String(p));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Strip(const Value& self, const CallArgs& args, bool left, bool right,
                            absl::string_view method) {
  absl::StatusOr<std::optional<std::string>> chars = OptionalStringArg(args, 0, "chars", method);
  if (!chars.ok()) return chars.status();
  return Value::String(PyStripChars(self.as_string(), *chars, left, right));
}

absl::StatusOr<Value> Split(const Value& self, const CallArgs& args, bool from_right) {
  absl::StatusOr<std::optional<std::string>> sep =
      OptionalStringArg(args, 0, "sep", from_right ? "rsplit" : "split");
  if (!sep.ok()) return sep.status();
  if (sep->has_value() && (*sep)->empty()) return ArgError("empty separator");
  absl::StatusOr<int64_t> maxsplit = IntArg(args, 1, "maxsplit", -1);
  if (!maxsplit.ok()) return maxsplit.status();
  return StringList(PySplit(self.as_string(), *sep, *maxsplit, from_right));
}

// startswith / endswith: a str or a tuple of them, optional start / end.
absl::StatusOr<Value> Affix(const Value& self, const CallArgs& args, bool prefix) {
  const Value* affix = args.Get(0, prefix ? "prefix" : "suffix");
  if (affix == nullptr) return ArgError("startswith/endswith takes at least 1 argument");
  std::string s = self.as_string();
  const Value* start = args.Get(1, "start");
  const Value* end = args.Get(2, "end");
  if (start != nullptr || end != nullptr) {
    std::vector<char32_t> cps = DecodeUtf8(s);
    const int64_t n = static_cast<int64_t>(cps.size());
    auto clamp = [n](int64_t i) { return i < 0 ? std::max<int64_t>(0, i + n) : std::min(i, n); };
    const int64_t b = start != nullptr && !start->is_none() ? clamp(start->as_int()) : 0;
    const int64_t e = end != nullptr && !end->is_none() ? clamp(end->as_int()) : n;
    if (b > e) return Value::Bool(false);
    s = EncodeUtf8(std::vector<char32_t>(cps.begin() + b, cps.begin() + e));
  }
  std::vector<std::string> candidates;
  if (affix->is_string()) {
    candidates.push_back(affix->as_string());
  } else if (affix->is_tuple()) {
    for (const Value& v : affix->as_list()) {
      if (!v.is_string()) return ArgError("a tuple for startswith/endswith must contain only str");
      candidates.push_back(v.as_string());
    }
  } else {
    return ArgError(absl::StrCat(prefix ? "startswith" : "endswith",
                                 " first arg must be str or a tuple of str, not ",
                                 affix->TypeName()));
  }
  for (const std::string& c : candidates) {
    if (prefix ? absl::StartsWith(s, c) : absl::EndsWith(s, c)) return Value::Bool(true);
  }
  return Value::Bool(false);
}

// str.format with automatic ({}) or explicit ({0}, {name}) fields and no
// format specs.
absl::StatusOr<Value> Format(const Value& self, const CallArgs& args) {
  const std::string& f = self.as_string();
  std::string out;
  size_t automatic = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '}') {
      if (i + 1 < f.size() && f[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      return ArgError("Single '}' encountered in format string");
    }
    if (f[i] != '{') {
      out.push_back(f[i]);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) return ArgError("Single '{' encountered in format string");
    const std::string field = f.substr(i + 1, close - i - 1);
    i = close;
    if (field.find_first_of(":!.[") != std::string::npos) {
      return ArgError(
          absl::StrCat("str.format field '{", field, "}' is not supported in chat templates"));
    }
    const Value* value = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      const size_t index =
          field.empty() ? automatic++ : std::strtoull(field.substr(0, 9).c_str(), nullptr, 10);
      if (index >= args.positional.size()) {
        return ArgError(absl::StrCat("Replacement index ", index, " out of range"));
      }
      value = &args.positional[index];
    } else {
      value = args.Find(field);
      if (value == nullptr) return ArgError(absl::StrCat("KeyError: '", field, "'"));
    }
    out += ToPythonStr(*value);
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> StringMethod(Interpreter& interpreter, const std::string& name,
                                   const Value& self, const CallArgs& args) {
  const std::string& s = self.as_string();
  if (name == "strip") return Strip(self, args, true, true, name);
  if (name == "lstrip") return Strip(self, args, true, false, name);
  if (name == "rstrip") return Strip(self, args, false, true, name);
  if (name == "split") return Split(self, args, false);
  if (name == "rsplit") return Split(self, args, true);
  if (name == "startswith") return Affix(self, args, true);
  if (name == "endswith") return Affix(self, args, false);
  if (name == "upper") return Value::String(PyUpper(s));
  if (name == "lower" || name == "casefold") return Value::String(PyLower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(PyCapitalize(s));
  if (name == "swapcase") return Value::String(PySwapCase(s));
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
    return Value::Bool(PyIsDigit(s));
  }
  if (name == "isalpha") return Value::Bool(PyIsAlpha(s));
  if (name == "isalnum") return Value::Bool(PyIsAlnum(s));
  if (name == "isspace") return Value::Bool(PyIsSpace(s));
  if (name == "isupper") return Value::Bool(PyIsUpper(s));
  if (name == "islower") return Value::Bool(PyIsLower(s));
  if (name == "splitlines") {
    const Value* keepends = args.Get(0, "keepends");
    return StringList(PySplitLines(s, keepends != nullptr && keepends->Truthy()));
  }
  if (name == "format") return Format(self, args);
  if (name == "replace") {
    absl::StatusOr<std::string> old_text = StringArg(args, 0, "old", name);
    if (!old_text.ok()) return old_text.status();
    absl::StatusOr<std::string> new_text = StringArg(args, 1, "new", name);
    if (!new_text.ok()) return new_text.status();
    absl::StatusOr<int64_t> count = IntArg(args, 2, "count", -1);
    if (!count.ok()) return count.status();
    return Value::String(PyReplace(s, *old_text, *new_text, *count));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    if (args.positional.size() > 1) {
      return ArgError(absl::StrCat("str.", name, " with start/end is not supported"));
    }
    absl::StatusOr<std::string> sub = StringArg(args, 0, "sub", name);
    if (!sub.ok()) return sub.status();
    if (name == "count") return Value::Int(PyCount(s, *sub));
    const int64_t at = PyFind(s, *sub, name == "rfind" || name == "rindex");
    if (at < 0 && (name == "index" || name == "rindex")) return ArgError("substring not found");
    return Value::Int(at);
  }
  if (name == "join") {
    const Value* iterable = args.Get(0, "iterable");
    if (iterable == nullptr) return ArgError("join() takes exactly one argument");
    absl::StatusOr<ValueList> items = interpreter.Iterate(*iterable);
    if (!items.ok()) return items.status();
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (!(*items)[i].is_string()) {
        return ArgError(absl::StrCat("sequence item ", i, ": expected str instance, ",
                                     (*items)[i].TypeName(), " found"));
      }
      if (i) out += s;
      out += (*items)[i].as_string();
    }
    return Value::String(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    absl::StatusOr<std::string> affix = StringArg(args, 0, "affix", name);
    if (!affix.ok()) return affix.status();
    if (name == "removeprefix" && absl::StartsWith(s, *affix)) {
      return Value::String(s.substr(affix->size()));
    }
    if (name == "removesuffix" && !affix->empty() && absl::EndsWith(s, *affix)) {
      return Value::String(s.substr(0, s.size() - affix->size()));
    }
    return self;
  }
  if (name == "center") {
    absl::StatusOr<int64_t> width = IntArg(args, 0, "width", 0);
    if (!width.ok()) return width.status();
    return Value::String(PyCenter(s, *width));
  }
  if (name == "partition" || name == "rpartition") {
    absl::StatusOr<std::string> sep = StringArg(args, 0, "sep", name);
    if (!sep.ok()) return sep.status();
    if (sep->empty()) return ArgError("empty separator");
    const size_t at = name == "partition" ? s.find(*sep) : s.rfind(*sep);
    if (at == std::string::npos) {
      return name == "partition" ? Value::List({self, Value::String(""), Value::String("")}, true)
                                 : Value::List({Value::String(""), Value::String(""), self}, true);
    }
    return Value::List({Value::String(s.substr(0, at)), Value::String(*sep),
                        Value::String(s.substr(at + sep->size()))},
                       true);
  }
  return ArgError(absl::StrCat("str.", name, " is not supported"));
}

constexpr absl::string_view kStringMethods[] = {
    "strip",        "lstrip",       "rstrip",    "split",      "rsplit",    "startswith",
    "endswith",     "upper",        "lower",     "casefold",   "title",     "capitalize",
    "swapcase",     "isdigit",      "isdecimal", "isnumeric",  "isalpha",   "isalnum",
    "isspace",      "isupper",      "islower",   "splitlines", "format",    "replace",
    "find",         "rfind",        "index",     "rindex",     "count",     "join",
    "removeprefix", "removesuffix", "center",    "partition",  "rpartition"};

// Methods the sandbox refuses: the template may not change a list or dict.
constexpr absl::string_view kMutatingMethods[] = {"append",
                                                  "extend",
                                                  "insert",
                                                  "pop",
                                                  "remove",
                                                  "reverse",
                                                  "sort",
                                                  "clear",
                                                  "update",
                                                  "setdefault",
                                                  "popitem",
                                                  "add",
                                                  "discard",
                                                  "difference_update",
                                                  "intersection_update",
                                                  "symmetric_difference_update"};

absl::StatusOr<Value> DictMethod(const std::string& name, const Value& self, const CallArgs& args) {
  if (name == "items") {
    ValueList items;
    for (const auto& [k, v] : self.as_dict()) items.push_back(Value::List({k, v}, true));
    return Value::List(std::move(items));
  }
  if (name == "keys" || name == "values") {
    ValueList items;
    for (const auto& [k, v] : self.as_dict()) items.push_back(name == "keys" ? k : v);
    return Value::List(std::move(items));
  }
  // get(key, default=None)
  const Value* key = args.Get(0, "key");
  if (key == nullptr) return ArgError("get expected at least 1 argument, got 0");
  if (const Value* v = self.FindKey(*key)) return *v;
  const Value* fallback = args.Get(1, "default");
  return fallback != nullptr ? *fallback : Value::None();
}

Value Bind(std::string type, std::string name, Value self,
           std::function<absl::StatusOr<Value>(Interpreter&, const std::string&, const Value&,
                                               const CallArgs&)>
               method) {
  auto callable = std::make_shared<Callable>();
  callable->name = absl::StrCat(type, ".", name);
  callable->call = [name = std::move(name), self = std::move(self), method = std::move(method)](
                       Interpreter& interpreter, const CallArgs& args) {
    return method(interpreter, name, self, args);
  };
  return Value::MakeCallable(std::move(callable));
}

Value Unsafe(const Value& self, absl::string_view name) {
  const std::string message =
      absl::StrCat("access to attribute '", name, "' of '", self.TypeName(), "' object is unsafe");
  return Bind(self.TypeName(), std::string(name), self,
              [message](Interpreter&, const std::string&, const Value&, const CallArgs&)
                  -> absl::StatusOr<Value> { return absl::InvalidArgumentError(message); });
}

Value LoopAttribute(const Value& self, absl::string_view name) {
  const LoopInfo& loop = self.as_loop();
  if (name == "index") return Value::Int(loop.index0 + 1);
  if (name == "index0") return Value::Int(loop.index0);
  if (name == "revindex") return Value::Int(loop.length - loop.index0);
  if (name == "revindex0") return Value::Int(loop.length - loop.index0 - 1);
  if (name == "first") return Value::Bool(loop.index0 == 0);
  if (name == "last") return Value::Bool(loop.index0 == loop.length - 1);
  if (name == "length") return Value::Int(loop.length);
  if (name == "depth") return Value::Int(loop.depth0 + 1);
  if (name == "depth0") return Value::Int(loop.depth0);
  if (name == "previtem") {
    return loop.index0 > 0 ? (*loop.items)[loop.index0 - 1] : Value::Undefined("previtem");
  }
  if (name == "nextitem") {
    return loop.index0 + 1 < loop.length ? (*loop.items)[loop.index0 + 1]
                                         : Value::Undefined("nextitem");
  }
  if (name == "cycle") {
    return Bind("loop", "cycle", self,
                [](Interpreter&, const std::string&, const Value& self,
                   const CallArgs& args) -> absl::StatusOr<Value> {
                  if (args.positional.empty()) return ArgError("no items for cycling given");
                  return args.positional[self.as_loop().index0 % args.positional.size()];
                });
  }
  return Value::Undefined(std::string(name));
}

}  // namespace

Value BuiltinAttribute(const Value& object, absl::string_view name) {
  if (object.is_loop()) return LoopAttribute(object, name);
  if (object.is_string()) {
    for (absl::string_view m : kStringMethods) {
      if (m == name) return Bind("str", std::string(name), object, StringMethod);
    }
    return Value::Undefined(std::string(name));
  }
  if (object.is_list() || object.is_dict()) {
    for (absl::string_view m : kMutatingMethods) {
      if (m == name) return Unsafe(object, name);
    }
  }
  if (object.is_dict() &&
      (name == "items" || name == "keys" || name == "values" || name == "get")) {
    return Bind("dict", std::string(name), object,
                [](Interpreter&, const std::string& n, const Value& self, const CallArgs& args) {
                  return DictMethod(n, self, args);
                });
  }
  if (object.is_list() && (name == "index" || name == "count")) {
    return Bind(object.TypeName(), std::string(name), object,
                [](Interpreter&, const std::string& n, const Value& self,
                   const CallArgs& args) -> absl::StatusOr<Value> {
                  const Value* x = args.Get(0, "value");
                  if (x == nullptr) return ArgError(absl::StrCat(n, "() takes one argument"));
                  int64_t count = 0;
                  const ValueList& items = self.as_list();
                  for (size_t i = 0; i < items.size(); ++i) {
                    if (!Equal(items[i], *x)) continue;
                    if (n == "index") return Value::Int(static_cast<int64_t>(i));
                    ++count;
                  }
                  if (n == "index") return ArgError("value is not in list");
                  return Value::Int(count);
                });
  }
  return Value::Undefined(std::string(name));
}

namespace {

Value Global(std::string name,
             std::function<absl::StatusOr<Value>(Interpreter&, const CallArgs&)> call) {
  auto callable = std::make_shared<Callable>();
  callable->name = std::move(name);
  callable->call = std::move(call);
  return Value::MakeCallable(std::move(callable));
}

// dict(...) / namespace(...) arguments: an optional mapping or list of
// pairs, then keyword arguments.
absl::StatusOr<ValueDict> MappingArgs(Interpreter& interpreter, const CallArgs& args,
                                      absl::string_view function) {
  ValueDict items;
  auto put = [&items](Value key, Value value) {
    for (auto& [k, v] : items) {
      if (Equal(k, key)) {
        v = std::move(value);
        return;
      }
    }
    items.emplace_back(std::move(key), std::move(value));
  };
  if (args.positional.size() > 1) {
    return ArgError(
        absl::StrCat(function, " expected at most 1 argument, got ", args.positional.size()));
  }
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      for (const auto& [k, v] : source.as_dict()) put(k, v);
    } else if (source.is_namespace()) {
      for (const std::string& n : source.as_namespace().order) {
        put(Value::String(n), source.as_namespace().attributes.find(n)->second);
      }
    } else {
      absl::StatusOr<ValueList> pairs = interpreter.Iterate(source);
      if (!pairs.ok()) return pairs.status();
      for (const Value& pair : *pairs) {
        if (!pair.is_list() || pair.as_list().size() != 2) {
          return ArgError(absl::StrCat(function, " sequence elements must be pairs"));
        }
        put(pair.as_list()[0], pair.as_list()[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) put(Value::String(k), v);
  return items;
}

absl::StatusOr<Value> Range(Interpreter&, const CallArgs& args) {
  int64_t bounds[3] = {0, 0, 1};
  for (const Value& v : args.positional) {
    if (!v.is_int() && !v.is_bool()) {
      return ArgError(
          absl::StrCat("'", v.TypeName(), "' object cannot be interpreted as an integer"));
    }
  }
  switch (args.positional.size()) {
    case 1:
      bounds[1] = args.positional[0].as_int();
      break;
    case 2:
    case 3:
      for (size_t i = 0; i < args.positional.size(); ++i) bounds[i] = args.positional[i].as_int();
      break;
    default:
      return ArgError(
          absl::StrCat("range expected 1 to 3 arguments, got ", args.positional.size()));
  }
  if (bounds[2] == 0) return ArgError("range() arg 3 must not be zero");
  ValueList items;
  for (int64_t i = bounds[0]; bounds[2] > 0 ? i < bounds[1] : i > bounds[1]; i += bounds[2]) {
    // jinja2's sandbox refuses ranges past MAX_RANGE.
    if (items.size() >= 100000) {
      return ArgError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    items.push_back(Value::Int(i));
  }
  return Value::List(std::move(items));
}

}  // namespace

const std::vector<std::pair<std::string, Value>>& GlobalFunctions() {
  static const auto* globals = new std::vector<std::pair<std::string, Value>>{
      {"range", Global("range", Range)},
      {"dict", Global("dict",
                      [](Interpreter& interpreter, const CallArgs& args) -> absl::StatusOr<Value> {
                        absl::StatusOr<ValueDict> items = MappingArgs(interpreter, args, "dict");
                        if (!items.ok()) return items.status();
                        return Value::Dict(*std::move(items));
                      })},
      {"namespace",
       Global("namespace",
              [](Interpreter& interpreter, const CallArgs& args) -> absl::StatusOr<Value> {
                absl::StatusOr<ValueDict> items = MappingArgs(interpreter, args, "namespace");
                if (!items.ok()) return items.status();
                auto ns = std::make_shared<Namespace>();
                for (auto& [k, v] : *items) {
                  const std::string name = ToPythonStr(k);
                  if (!name.empty() && name[0] == '_') {
                    return ArgError(absl::StrCat(
                        "chat templates cannot store underscore-prefixed attributes on a "
                        "namespace, but got '",
                        name, "'"));
                  }
                  ns->attributes[name] = std::move(v);
                  ns->order.push_back(name);
                }
                return Value::MakeNamespace(std::move(ns));
              })},
      {"raise_exception", Global("raise_exception",
                                 [](Interpreter&, const CallArgs& args) -> absl::StatusOr<Value> {
                                   const Value* message = args.Get(0, "message");
                                   absl::Status error = absl::InvalidArgumentError(
                                       message == nullptr ? "" : ToPythonStr(*message));
                                   error.SetPayload(kRaisedPayloadUrl, absl::Cord("1"));
                                   return error;
                                 })},
      {"strftime_now",
       Global("strftime_now",
              [](Interpreter& interpreter, const CallArgs& args) -> absl::StatusOr<Value> {
                const Value* format = args.Get(0, "format");
                if (format == nullptr || !format->is_string()) {
                  return ArgError("strftime_now() takes a format string");
                }
                std::tm local;
                if (const auto& fixed = interpreter.now(); fixed.has_value()) {
                  local = {};
                  local.tm_year = static_cast<int>(fixed->year() - 1900);
                  local.tm_mon = fixed->month() - 1;
                  local.tm_mday = fixed->day();
                  local.tm_hour = fixed->hour();
                  local.tm_min = fixed->minute();
                  local.tm_sec = fixed->second();
                  // Monday is 0 in absl, Sunday is 0 in struct tm.
                  local.tm_wday = (static_cast<int>(absl::GetWeekday(*fixed)) + 1) % 7;
                  local.tm_yday = absl::GetYearDay(*fixed) - 1;
                  local.tm_isdst = -1;
                } else {
                  const std::time_t now = std::time(nullptr);
                  localtime_r(&now, &local);
                }
                char buf[512];
                const size_t n =
                    std::strftime(buf, sizeof(buf), format->as_string().c_str(), &local);
                if (n == 0 && !format->as_string().empty()) {
                  return ArgError("strftime_now(): the formatted date is too long");
                }
                return Value::String(std::string(buf, n));
              })},
  };
  return *globals;
}

}  // namespace weft::jinja
