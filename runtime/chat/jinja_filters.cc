// jinja2's built-in filters and tests (jinja2/filters.py, jinja2/tests.py),
// with transformers' tojson.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_interpreter.h"
#include "runtime/chat/jinja_lexer.h"
#include "runtime/chat/jinja_strings.h"

namespace weft::jinja {
namespace {

using Filter = absl::StatusOr<Value> (*)(Interpreter&, const Value&, const CallArgs&);
using Test = absl::StatusOr<bool> (*)(Interpreter&, const Value&, const CallArgs&);

absl::Status ArgError(absl::string_view what) { return absl::InvalidArgumentError(what); }

bool Flag(const CallArgs& args, size_t index, absl::string_view name, bool default_value) {
  const Value* v = args.Get(index, name);
  return v == nullptr ? default_value : v->Truthy();
}

// jinja2's soft_str: str(x), undefined → "".
std::string Str(const Value& v) { return ToPythonStr(v); }

absl::StatusOr<Value> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::Int(0);
    case Value::Kind::kString:
      return Value::Int(CodePointLength(v.as_string()));
    case Value::Kind::kList:
      return Value::Int(static_cast<int64_t>(v.as_list().size()));
    case Value::Kind::kDict:
      return Value::Int(static_cast<int64_t>(v.as_dict().size()));
    default:
      return ArgError(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
}

// attribute="a.b" or an integer index, as jinja2's make_attrgetter.
absl::StatusOr<Value> GetPath(Interpreter& interpreter, const Value& item, const Value& attribute) {
  if (attribute.is_int()) return interpreter.GetItem(item, attribute);
  Value current = item;
  for (absl::string_view part : absl::StrSplit(Str(attribute), '.')) {
    Value key = Value::String(std::string(part));
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      key = Value::Int(std::strtoll(std::string(part).c_str(), nullptr, 10));
    }
    absl::StatusOr<Value> next = interpreter.GetItem(current, key);
    if (!next.ok()) return next;
    current = *std::move(next);
  }
  return current;
}

// The sort key of jinja2's ignore_case postprocessor.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::String(PyLower(v.as_string()));
  return v;
}

absl::Status SortValues(std::vector<std::pair<Value, Value>>* keyed, bool reverse) {
  absl::Status error;
  std::stable_sort(keyed->begin(), keyed->end(), [&](const auto& a, const auto& b) {
    absl::StatusOr<int> c = reverse ? Compare(b.first, a.first) : Compare(a.first, b.first);
    if (!c.ok()) {
      error = c.status();
      return false;
    }
    return *c < 0;
  });
  return error;
}

absl::StatusOr<Value> FilterAbs(Interpreter&, const Value& v, const CallArgs&) {
  if (v.is_float()) return Value::Float(std::fabs(v.as_double()));
  if (v.is_number()) return Value::Int(std::llabs(v.as_int()));
  return ArgError(absl::StrCat("bad operand type for abs(): '", v.TypeName(), "'"));
}

absl::StatusOr<Value> FilterAttr(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* name = args.Get(0, "name");
  if (name == nullptr || !name->is_string()) return ArgError("attr() needs an attribute name");
  if (v.is_namespace()) {
    auto it = v.as_namespace().attributes.find(name->as_string());
    if (it != v.as_namespace().attributes.end()) return it->second;
  }
  return BuiltinAttribute(v, name->as_string());
}

absl::StatusOr<Value> FilterBatch(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  const Value* count = args.Get(0, "linecount");
  if (count == nullptr || !count->is_int() || count->as_int() <= 0) {
    return ArgError("batch() needs a positive linecount");
  }
  const Value* fill = args.Get(1, "fill_with");
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  ValueList batches, current;
  for (const Value& item : *items) {
    current.push_back(item);
    if (static_cast<int64_t>(current.size()) == count->as_int()) {
      batches.push_back(Value::List(std::move(current)));
      current.clear();
    }
  }
  if (!current.empty()) {
    if (fill != nullptr && !fill->is_none()) {
      while (static_cast<int64_t>(current.size()) < count->as_int()) current.push_back(*fill);
    }
    batches.push_back(Value::List(std::move(current)));
  }
  return Value::Iterator(std::move(batches));
}

absl::StatusOr<Value> FilterCapitalize(Interpreter&, const Value& v, const CallArgs&) {
  return Value::String(PyCapitalize(Str(v)));
}

absl::StatusOr<Value> FilterCenter(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* width = args.Get(0, "width");
  return Value::String(PyCenter(Str(v), width != nullptr ? width->as_int() : 80));
}

absl::StatusOr<Value> FilterLength(Interpreter&, const Value& v, const CallArgs&) {
  return Length(v);
}

absl::StatusOr<Value> FilterDefault(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* fallback = args.Get(0, "default_value");
  const bool boolean = Flag(args, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.Truthy())) {
    return fallback != nullptr ? *fallback : Value::String("");
  }
  return v;
}

absl::StatusOr<Value> FilterDictsort(Interpreter&, const Value& v, const CallArgs& args) {
  if (!v.is_dict()) return ArgError("dictsort() needs a dict");
  const bool case_sensitive = Flag(args, 0, "case_sensitive", false);
  const Value* by = args.Get(1, "by");
  const bool by_value = by != nullptr && Str(*by) == "value";
  if (by != nullptr && !by_value && Str(*by) != "key") {
    return ArgError("You can only sort by either \"key\" or \"value\"");
  }
  const bool reverse = Flag(args, 2, "reverse", false);
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, val] : v.as_dict()) {
    keyed.emplace_back(SortKey(by_value ? val : k, case_sensitive), Value::List({k, val}, true));
  }
  if (auto s = SortValues(&keyed, reverse); !s.ok()) return s;
  ValueList out;
  for (auto& [key, pair] : keyed) out.push_back(std::move(pair));
  return Value::List(std::move(out));
}

absl::StatusOr<Value> FilterEscape(Interpreter&, const Value& v, const CallArgs&) {
  if (v.is_safe_string()) return v;
  return Value::SafeString(HtmlEscape(Str(v)));
}

absl::StatusOr<Value> FilterForceEscape(Interpreter&, const Value& v, const CallArgs&) {
  return Value::SafeString(HtmlEscape(Str(v)));
}

absl::StatusOr<Value> FilterFirst(Interpreter& interpreter, const Value& v, const CallArgs&) {
  if (v.is_iterator()) {  // next(): takes one item
    IteratorState& it = v.as_iterator();
    if (it.position == it.items.size()) return Value::Undefined("first");
    return it.items[it.position++];
  }
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  if (items->empty()) return Value::Undefined("first");
  return items->front();
}

absl::StatusOr<Value> FilterLast(Interpreter& interpreter, const Value& v, const CallArgs&) {
  if (v.is_iterator()) {
    return ArgError(absl::StrCat("'", v.TypeName(), "' object is not reversible"));
  }
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  if (items->empty()) return Value::Undefined("last");
  return items->back();
}

// Python float(str): surrounding whitespace, underscores between digits,
// inf/nan.
std::optional<double> ParseFloat(const std::string& text) {
  std::string s(PyStrip(text, true, true));
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  const std::string lower = PyLower(s);
  if (lower.find("x") != std::string::npos) return std::nullopt;  // no hex floats
  return d;
}

absl::StatusOr<Value> FilterFloat(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* fallback = args.Get(0, "default");
  const Value otherwise = fallback != nullptr ? *fallback : Value::Float(0.0);
  if (v.is_number()) return Value::Float(v.as_double());
  if (v.is_string()) {
    if (std::optional<double> d = ParseFloat(v.as_string())) return Value::Float(*d);
  }
  return otherwise;
}

absl::StatusOr<Value> FilterInt(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* fallback = args.Get(0, "default");
  const Value otherwise = fallback != nullptr ? *fallback : Value::Int(0);
  const Value* base_arg = args.Get(1, "base");
  const int base = base_arg != nullptr ? static_cast<int>(base_arg->as_int()) : 10;
  if (v.is_float()) {
    if (!std::isfinite(v.as_double())) return otherwise;
    return Value::Int(static_cast<int64_t>(v.as_double()));
  }
  if (v.is_number()) return Value::Int(v.as_int());
  if (v.is_string()) {
    std::string s(PyStrip(v.as_string(), true, true));
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (!s.empty()) {
      char* end = nullptr;
      const long long n = std::strtoll(s.c_str(), &end, base);
      if (end == s.c_str() + s.size()) return Value::Int(n);
    }
    if (std::optional<double> d = ParseFloat(v.as_string()); d && std::isfinite(*d)) {
      return Value::Int(static_cast<int64_t>(*d));
    }
  }
  return otherwise;
}

absl::StatusOr<Value> FilterFormat(Interpreter&, const Value& v, const CallArgs& args) {
  if (!args.keyword.empty() && !args.positional.empty()) {
    return ArgError("can't handle positional and keyword arguments at the same time");
  }
  if (!args.keyword.empty()) {
    ValueDict mapping;
    for (const auto& [k, val] : args.keyword) mapping.emplace_back(Value::String(k), val);
    absl::StatusOr<std::string> s = PercentFormat(Str(v), Value::Dict(std::move(mapping)));
    if (!s.ok()) return s.status();
    return Value::String(*std::move(s));
  }
  absl::StatusOr<std::string> s = PercentFormat(Str(v), Value::List(args.positional, true));
  if (!s.ok()) return s.status();
  return Value::String(*std::move(s));
}

absl::StatusOr<Value> FilterIndent(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* width = args.Get(0, "width");
  std::string indention;
  if (width != nullptr && width->is_string()) {
    indention = width->as_string();
  } else {
    indention = std::string(width != nullptr ? width->as_int() : 4, ' ');
  }
  const bool first = Flag(args, 1, "first", false);
  const bool blank = Flag(args, 2, "blank", false);
  const std::string s = Str(v) + "\n";  // jinja2's quirk for splitlines
  std::vector<std::string> lines = PySplitLines(s, false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention;
      rv += lines[i];
    }
  }
  if (first) rv = indention + rv;
  return Value::String(std::move(rv));
}

absl::StatusOr<Value> FilterItems(Interpreter&, const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value::Iterator({});
  if (!v.is_dict()) return ArgError("Can only get item pairs from a mapping.");
  ValueList items;
  for (const auto& [k, val] : v.as_dict()) items.push_back(Value::List({k, val}, true));
  return Value::Iterator(std::move(items));
}

absl::StatusOr<Value> FilterJoin(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  const Value* separator = args.Get(0, "d");
  const Value* attribute = args.Get(1, "attribute");
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  std::string out;
  for (size_t i = 0; i < items->size(); ++i) {
    if (i && separator != nullptr) out += Str(*separator);
    Value item = (*items)[i];
    if (attribute != nullptr && !attribute->is_none()) {
      absl::StatusOr<Value> a = GetPath(interpreter, item, *attribute);
      if (!a.ok()) return a.status();
      item = *std::move(a);
    }
    out += Str(item);
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> FilterList(Interpreter& interpreter, const Value& v, const CallArgs&) {
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  return Value::List(*std::move(items));
}

absl::StatusOr<Value> FilterLower(Interpreter&, const Value& v, const CallArgs&) {
  return Value::String(PyLower(Str(v)));
}

absl::StatusOr<Value> FilterUpper(Interpreter&, const Value& v, const CallArgs&) {
  return Value::String(PyUpper(Str(v)));
}

absl::StatusOr<Value> FilterMap(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  // jinja2 maps nothing when the input is false (None, empty).
  absl::StatusOr<ValueList> items = v.Truthy() ? interpreter.Iterate(v) : ValueList{};
  if (!items.ok()) return items.status();
  ValueList out;
  if (const Value* attribute = args.Find("attribute")) {
    const Value* fallback = args.Find("default");
    for (const Value& item : *items) {
      absl::StatusOr<Value> a = GetPath(interpreter, item, *attribute);
      if (!a.ok()) return a.status();
      out.push_back(a->is_undefined() && fallback != nullptr ? *fallback : *std::move(a));
    }
    return Value::Iterator(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) {
    return ArgError("map() needs a filter name or attribute=");
  }
  const std::string name = args.positional[0].as_string();
  if (!HasFilter(name)) return ArgError(absl::StrCat("No filter named '", name, "'."));
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : *items) {
    absl::StatusOr<Value> mapped = ApplyFilter(interpreter, name, item, rest);
    if (!mapped.ok()) return mapped.status();
    out.push_back(*std::move(mapped));
  }
  return Value::Iterator(std::move(out));
}

absl::StatusOr<Value> MinMax(Interpreter& interpreter, const Value& v, const CallArgs& args,
                             bool want_max) {
  const bool case_sensitive = Flag(args, 0, "case_sensitive", false);
  const Value* attribute = args.Get(1, "attribute");
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  if (items->empty()) return Value::Undefined(want_max ? "max" : "min");
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items->size(); ++i) {
    Value key = (*items)[i];
    if (attribute != nullptr && !attribute->is_none()) {
      absl::StatusOr<Value> a = GetPath(interpreter, key, *attribute);
      if (!a.ok()) return a.status();
      key = *std::move(a);
    }
    key = SortKey(key, case_sensitive);
    if (i == 0) {
      best_key = key;
      continue;
    }
    absl::StatusOr<int> c = Compare(key, best_key);
    if (!c.ok()) return c.status();
    if (want_max ? *c > 0 : *c < 0) {
      best = i;
      best_key = key;
    }
  }
  return (*items)[best];
}

absl::StatusOr<Value> FilterMax(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  return MinMax(interpreter, v, args, true);
}

absl::StatusOr<Value> FilterMin(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  return MinMax(interpreter, v, args, false);
}

// select / reject / selectattr / rejectattr.
absl::StatusOr<Value> SelectOrReject(Interpreter& interpreter, const Value& v, const CallArgs& args,
                                     bool by_attribute, bool keep_when) {
  absl::StatusOr<ValueList> items = v.Truthy() ? interpreter.Iterate(v) : ValueList{};
  if (!items.ok()) return items.status();
  size_t next = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) return ArgError("Missing parameter for attribute name");
    attribute = args.positional[next++];
  }
  std::string test;
  CallArgs test_args;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) return ArgError("the test name must be a string");
    test = args.positional[next++].as_string();
    if (!HasTest(test)) return ArgError(absl::StrCat("No test named '", test, "'."));
    test_args.positional.assign(args.positional.begin() + next, args.positional.end());
    test_args.keyword = args.keyword;
  }
  ValueList out;
  for (const Value& item : *items) {
    Value subject = item;
    if (by_attribute) {
      absl::StatusOr<Value> a = GetPath(interpreter, item, attribute);
      if (!a.ok()) return a.status();
      subject = *std::move(a);
    }
    bool passed = subject.Truthy();
    if (!test.empty()) {
      absl::StatusOr<bool> r = ApplyTest(interpreter, test, subject, test_args);
      if (!r.ok()) return r.status();
      passed = *r;
    }
    if (passed == keep_when) out.push_back(item);
  }
  return Value::Iterator(std::move(out));
}

absl::StatusOr<Value> FilterSelect(Interpreter& i, const Value& v, const CallArgs& a) {
  return SelectOrReject(i, v, a, false, true);
}
absl::StatusOr<Value> FilterReject(Interpreter& i, const Value& v, const CallArgs& a) {
  return SelectOrReject(i, v, a, false, false);
}
absl::StatusOr<Value> FilterSelectAttr(Interpreter& i, const Value& v, const CallArgs& a) {
  return SelectOrReject(i, v, a, true, true);
}
absl::StatusOr<Value> FilterRejectAttr(Interpreter& i, const Value& v, const CallArgs& a) {
  return SelectOrReject(i, v, a, true, false);
}

absl::StatusOr<Value> FilterReplace(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* old_text = args.Get(0, "old");
  const Value* new_text = args.Get(1, "new");
  if (old_text == nullptr || new_text == nullptr) return ArgError("replace() needs old and new");
  const Value* count = args.Get(2, "count");
  return Value::String(PyReplace(Str(v), Str(*old_text), Str(*new_text),
                                 count == nullptr || count->is_none() ? -1 : count->as_int()));
}

absl::StatusOr<Value> FilterReverse(Interpreter& interpreter, const Value& v, const CallArgs&) {
  if (v.is_string()) {
    std::vector<char32_t> cps = DecodeUtf8(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value::String(EncodeUtf8(cps));
  }
  if (v.is_iterator()) {
    return ArgError(absl::StrCat("'", v.TypeName(), "' object is not reversible"));
  }
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  std::reverse(items->begin(), items->end());
  return Value::Iterator(*std::move(items),
                         v.is_dict() ? "dict_reversekeyiterator" : "list_reverseiterator");
}

absl::StatusOr<Value> FilterRound(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* precision_arg = args.Get(0, "precision");
  const int64_t precision = precision_arg != nullptr ? precision_arg->as_int() : 0;
  const Value* method_arg = args.Get(1, "method");
  const std::string method = method_arg != nullptr ? Str(*method_arg) : "common";
  if (!v.is_number())
    return ArgError(absl::StrCat("type ", v.TypeName(), " doesn't define __round__"));
  if (method == "common") {
    if (!v.is_float()) return Value::Int(v.as_int());  // int.__round__ keeps ints
    // Python rounds the exact binary value half-to-even, as printf does.
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(std::max<int64_t>(precision, 0)),
                  v.as_double());
    return Value::Float(std::strtod(buf, nullptr));
  }
  if (method != "ceil" && method != "floor") {
    return ArgError("method must be common, ceil or floor");
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  return Value::Float((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

absl::StatusOr<Value> FilterSafe(Interpreter&, const Value& v, const CallArgs&) {
  return Value::SafeString(Str(v));
}

absl::StatusOr<Value> FilterSort(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  const bool reverse = Flag(args, 0, "reverse", false);
  const bool case_sensitive = Flag(args, 1, "case_sensitive", false);
  const Value* attribute = args.Get(2, "attribute");
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : *items) {
    Value key = item;
    if (attribute != nullptr && !attribute->is_none()) {
      absl::StatusOr<Value> a = GetPath(interpreter, item, *attribute);
      if (!a.ok()) return a.status();
      key = *std::move(a);
    }
    keyed.emplace_back(SortKey(key, case_sensitive), item);
  }
  if (auto s = SortValues(&keyed, reverse); !s.ok()) return s;
  ValueList out;
  for (auto& [key, item] : keyed) out.push_back(std::move(item));
  return Value::List(std::move(out));
}

absl::StatusOr<Value> FilterString(Interpreter&, const Value& v, const CallArgs&) {
  return Value::String(Str(v));
}

absl::StatusOr<Value> FilterSum(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  const Value* attribute = args.Get(0, "attribute");
  const Value* start = args.Get(1, "start");
  Value total = start != nullptr ? *start : Value::Int(0);
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  for (const Value& item : *items) {
    Value x = item;
    if (attribute != nullptr && !attribute->is_none()) {
      absl::StatusOr<Value> a = GetPath(interpreter, item, *attribute);
      if (!a.ok()) return a.status();
      x = *std::move(a);
    }
    absl::StatusOr<Value> sum = Arithmetic("+", total, x);
    if (!sum.ok()) return sum.status();
    total = *std::move(sum);
  }
  return total;
}

// jinja2's title filter: words start after "-", whitespace, "(", "{", "[",
// "<".
absl::StatusOr<Value> FilterTitle(Interpreter&, const Value& v, const CallArgs&) {
  std::string out;
  bool word_start = true;
  for (char32_t c : DecodeUtf8(Str(v))) {
    std::string one;
    AppendUtf8(c, &one);
    const bool separator =
        c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || PyWhitespaceLength(one, 0) > 0;
    if (separator) {
      out += one;
      word_start = true;
    } else {
      out += word_start ? PyUpper(one) : PyLower(one);
      word_start = false;
    }
  }
  return Value::String(std::move(out));
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False).
absl::StatusOr<Value> FilterToJson(Interpreter&, const Value& v, const CallArgs& args) {
  JsonDumpOptions options;
  options.ensure_ascii = Flag(args, 0, "ensure_ascii", false);
  if (const Value* indent = args.Get(1, "indent"); indent != nullptr && !indent->is_none()) {
    if (indent->is_string()) {
      options.indent = indent->as_string();
    } else if (indent->is_int()) {
      options.indent = std::string(std::max<int64_t>(indent->as_int(), 0), ' ');
    } else {
      return ArgError("tojson indent must be an int or a string");
    }
  }
  if (const Value* separators = args.Get(2, "separators");
      separators != nullptr && !separators->is_none()) {
    if (!separators->is_list() || separators->as_list().size() != 2) {
      return ArgError("tojson separators must be an (item, key) pair");
    }
    options.separators = {Str(separators->as_list()[0]), Str(separators->as_list()[1])};
  }
  options.sort_keys = Flag(args, 3, "sort_keys", false);
  absl::StatusOr<std::string> json = DumpJson(v, options);
  if (!json.ok()) return json.status();
  return Value::String(*std::move(json));
}

absl::StatusOr<Value> FilterTrim(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* chars = args.Get(0, "chars");
  std::optional<std::string> set;
  if (chars != nullptr && !chars->is_none()) set = Str(*chars);
  return Value::String(PyStripChars(Str(v), set, true, true));
}

absl::StatusOr<Value> FilterTruncate(Interpreter&, const Value& v, const CallArgs& args) {
  const Value* length_arg = args.Get(0, "length");
  const int64_t length = length_arg != nullptr ? length_arg->as_int() : 255;
  const bool killwords = Flag(args, 1, "killwords", false);
  const Value* end_arg = args.Get(2, "end");
  const std::string end = end_arg != nullptr ? Str(*end_arg) : "...";
  const Value* leeway_arg = args.Get(3, "leeway");
  const int64_t leeway = leeway_arg != nullptr && !leeway_arg->is_none() ? leeway_arg->as_int() : 5;
  const std::vector<char32_t> cps = DecodeUtf8(Str(v));
  const int64_t end_length = CodePointLength(end);
  if (length < end_length) return ArgError("expected length >= len(end)");
  if (static_cast<int64_t>(cps.size()) <= length + leeway) return Value::String(Str(v));
  std::string head =
      EncodeUtf8(std::vector<char32_t>(cps.begin(), cps.begin() + (length - end_length)));
  if (killwords) return Value::String(head + end);
  const size_t space = head.rfind(' ');
  if (space != std::string::npos) head.resize(space);
  return Value::String(head + end);
}

absl::StatusOr<Value> FilterUnique(Interpreter& interpreter, const Value& v, const CallArgs& args) {
  const bool case_sensitive = Flag(args, 0, "case_sensitive", false);
  const Value* attribute = args.Get(1, "attribute");
  absl::StatusOr<ValueList> items = interpreter.Iterate(v);
  if (!items.ok()) return items.status();
  ValueList out, seen;
  for (const Value& item : *items) {
    Value key = item;
    if (attribute != nullptr && !attribute->is_none()) {
      absl::StatusOr<Value> a = GetPath(interpreter, item, *attribute);
      if (!a.ok()) return a.status();
      key = *std::move(a);
    }
    key = SortKey(key, case_sensitive);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return Equal(s, key); })) {
      continue;
    }
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::Iterator(std::move(out));
}

absl::StatusOr<Value> FilterWordcount(Interpreter&, const Value& v, const CallArgs&) {
  int64_t words = 0;
  bool in_word = false;
  for (char32_t c : DecodeUtf8(Str(v))) {
    std::string one;
    AppendUtf8(c, &one);
    const bool word_char = c == '_' || PyIsAlnum(one);
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return Value::Int(words);
}

const absl::flat_hash_map<std::string, Filter>& Filters() {
  static const auto* filters = new absl::flat_hash_map<std::string, Filter>{
      {"abs", FilterAbs},           {"attr", FilterAttr},
      {"batch", FilterBatch},       {"capitalize", FilterCapitalize},
      {"center", FilterCenter},     {"count", FilterLength},
      {"d", FilterDefault},         {"default", FilterDefault},
      {"dictsort", FilterDictsort}, {"e", FilterEscape},
      {"escape", FilterEscape},     {"forceescape", FilterForceEscape},
      {"first", FilterFirst},       {"float", FilterFloat},
      {"format", FilterFormat},     {"indent", FilterIndent},
      {"int", FilterInt},           {"items", FilterItems},
      {"join", FilterJoin},         {"last", FilterLast},
      {"length", FilterLength},     {"list", FilterList},
      {"lower", FilterLower},       {"map", FilterMap},
      {"max", FilterMax},           {"min", FilterMin},
      {"reject", FilterReject},     {"rejectattr", FilterRejectAttr},
      {"replace", FilterReplace},   {"reverse", FilterReverse},
      {"round", FilterRound},       {"safe", FilterSafe},
      {"select", FilterSelect},     {"selectattr", FilterSelectAttr},
      {"sort", FilterSort},         {"string", FilterString},
      {"sum", FilterSum},           {"title", FilterTitle},
      {"tojson", FilterToJson},     {"trim", FilterTrim},
      {"truncate", FilterTruncate}, {"unique", FilterUnique},
      {"upper", FilterUpper},       {"wordcount", FilterWordcount},
  };
  return *filters;
}

absl::StatusOr<bool> Compared(const Value& v, const CallArgs& args, absl::string_view op) {
  const Value* other = args.Get(0, "other");
  if (other == nullptr) return ArgError(absl::StrCat("the test '", op, "' needs an argument"));
  if (op == "==") return Equal(v, *other);
  if (op == "!=") return !Equal(v, *other);
  if (v.is_undefined() || other->is_undefined()) return ArgError("a value is undefined");
  absl::StatusOr<int> c = Compare(v, *other);
  if (!c.ok()) return c.status();
  if (op == "<") return *c < 0;
  if (op == "<=") return *c <= 0;
  if (op == ">") return *c > 0;
  return *c >= 0;
}

absl::StatusOr<bool> ApplyTestImpl(Interpreter&, absl::string_view name, const Value& v,
                                   const CallArgs& args) {
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "iterable") {
    return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() || v.is_iterator();
  }
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return v.is_safe_string();
  if (name == "lower") return v.is_string() && PyIsLower(v.as_string());
  if (name == "upper") return v.is_string() && PyIsUpper(v.as_string());
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) {
      return ArgError(absl::StrCat("the test '", name, "' needs an integer"));
    }
    int64_t divisor = 2;
    if (name == "divisibleby") {
      const Value* d = args.Get(0, "num");
      if (d == nullptr || !d->is_int() || d->as_int() == 0) {
        return ArgError("divisibleby needs a non-zero integer");
      }
      divisor = d->as_int();
    }
    const int64_t r = ((v.as_int() % divisor) + divisor) % divisor;
    return name == "odd" ? r == 1 : r == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return Compared(v, args, "==");
  if (name == "ne" || name == "!=") return Compared(v, args, "!=");
  if (name == "lt" || name == "lessthan" || name == "<") return Compared(v, args, "<");
  if (name == "le" || name == "<=") return Compared(v, args, "<=");
  if (name == "gt" || name == "greaterthan" || name == ">") return Compared(v, args, ">");
  if (name == "ge" || name == ">=") return Compared(v, args, ">=");
  if (name == "in") {
    const Value* seq = args.Get(0, "seq");
    if (seq == nullptr) return ArgError("the test 'in' needs a sequence");
    return Contains(*seq, v);
  }
  if (name == "sameas") {
    const Value* other = args.Get(0, "other");
    if (other == nullptr) return ArgError("the test 'sameas' needs an argument");
    if (v.kind() != other->kind()) return false;
    if (v.is_none() || v.is_bool() || v.is_int()) return Equal(v, *other);
    if (v.is_list()) return v.list_ptr() == other->list_ptr();
    return false;
  }
  if (name == "filter") return v.is_string() && HasFilter(v.as_string());
  if (name == "test") return v.is_string() && HasTest(v.as_string());
  return ArgError(absl::StrCat("no test named '", name, "'"));
}

constexpr absl::string_view kTests[] = {
    "defined", "undefined", "none",   "boolean",     "true",     "false",       "string",
    "number",  "integer",   "float",  "mapping",     "sequence", "iterable",    "callable",
    "escaped", "lower",     "upper",  "odd",         "even",     "divisibleby", "eq",
    "equalto", "==",        "ne",     "!=",          "lt",       "lessthan",    "<",
    "le",      "<=",        "gt",     "greaterthan", ">",        "ge",          ">=",
    "in",      "sameas",    "filter", "test"};

constexpr absl::string_view kUnsupportedFilters[] = {
    "filesizeformat", "groupby",   "pprint", "random",   "slice",
    "striptags",      "urlencode", "urlize", "wordwrap", "xmlattr"};

}  // namespace

bool HasFilter(absl::string_view name) { return Filters().contains(name); }

bool HasTest(absl::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

bool IsUnsupportedBuiltinFilter(absl::string_view name) {
  return std::find(std::begin(kUnsupportedFilters), std::end(kUnsupportedFilters), name) !=
         std::end(kUnsupportedFilters);
}

bool IsUnsupportedBuiltinTest(absl::string_view) { return false; }

absl::StatusOr<Value> ApplyFilter(Interpreter& interpreter, absl::string_view name,
                                  const Value& input, const CallArgs& args) {
  auto it = Filters().find(name);
  if (it == Filters().end()) return ArgError(absl::StrCat("no filter named '", name, "'"));
  return it->second(interpreter, input, args);
}

absl::StatusOr<bool> ApplyTest(Interpreter& interpreter, absl::string_view name, const Value& input,
                               const CallArgs& args) {
  return ApplyTestImpl(interpreter, name, input, args);
}

}  // namespace weft::jinja
