#include "runtime/chat/jinja_operators.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace weft::jinja {
namespace {

absl::Status TypeError(absl::string_view what) { return absl::InvalidArgumentError(what); }

absl::Status UndefinedError(const Value& v) {
  return absl::InvalidArgumentError(v.undefined_name().empty()
                                        ? "a value is undefined"
                                        : absl::StrCat("'", v.undefined_name(), "' is undefined"));
}

// Python's a // b and a % b on integers (rounding toward negative infinity).
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

double FloatMod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

// `seq * times`, refused past 16 MiB or a million items: a prompt is far
// smaller, and memory must stay bounded.
absl::StatusOr<Value> Repeat(const Value& seq, int64_t times) {
  const int64_t unit = seq.is_string() ? static_cast<int64_t>(seq.as_string().size())
                                       : static_cast<int64_t>(seq.as_list().size());
  const int64_t limit = seq.is_string() ? (int64_t{1} << 24) : 1000000;
  if (times > 0 && unit > 0 && times > limit / unit) {
    return absl::InvalidArgumentError(
        absl::StrCat("repeating a ", seq.TypeName(), " ", times, " times is too large"));
  }
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value::String(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < times; ++i) {
    out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  }
  return Value::List(std::move(out), seq.is_tuple());
}

}  // namespace

absl::StatusOr<Value> Arithmetic(absl::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  const bool numbers = a.is_number() && b.is_number();
  const bool floats = numbers && (a.is_float() || b.is_float());
  if (op == "+") {
    if (numbers) {
      return floats ? Value::Float(a.as_double() + b.as_double())
                    : Value::Int(a.as_int() + b.as_int());
    }
    if (a.is_string() && b.is_string()) {
      if (a.is_safe_string() || b.is_safe_string()) {
        return Value::SafeString((a.is_safe_string() ? a.as_string() : HtmlEscape(a.as_string())) +
                                 (b.is_safe_string() ? b.as_string() : HtmlEscape(b.as_string())));
      }
      return Value::String(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      ValueList items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return Value::List(std::move(items), a.is_tuple());
    }
  } else if (op == "-") {
    if (numbers) {
      return floats ? Value::Float(a.as_double() - b.as_double())
                    : Value::Int(a.as_int() - b.as_int());
    }
  } else if (op == "*") {
    if (numbers) {
      return floats ? Value::Float(a.as_double() * b.as_double())
                    : Value::Int(a.as_int() * b.as_int());
    }
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
      return Repeat(a, b.as_int());
    }
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) {
      return Repeat(b, a.as_int());
    }
  } else if (op == "/") {
    if (numbers) {
      if (b.as_double() == 0) return absl::InvalidArgumentError("division by zero");
      return Value::Float(a.as_double() / b.as_double());
    }
  } else if (op == "//") {
    if (numbers) {
      if (b.as_double() == 0)
        return absl::InvalidArgumentError("integer division or modulo by zero");
      if (floats) return Value::Float(std::floor(a.as_double() / b.as_double()));
      return Value::Int(FloorDiv(a.as_int(), b.as_int()));
    }
  } else if (op == "%") {
    if (a.is_string()) {
      absl::StatusOr<std::string> s = PercentFormat(a.as_string(), b, a.is_safe_string());
      if (!s.ok()) return s.status();
      return a.is_safe_string() ? Value::SafeString(*std::move(s)) : Value::String(*std::move(s));
    }
    if (numbers) {
      if (b.as_double() == 0)
        return absl::InvalidArgumentError("integer division or modulo by zero");
      if (floats) return Value::Float(FloatMod(a.as_double(), b.as_double()));
      return Value::Int(a.as_int() - FloorDiv(a.as_int(), b.as_int()) * b.as_int());
    }
  } else if (op == "**") {
    if (numbers) {
      if (!floats && b.as_int() >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < b.as_int(); ++i) result *= a.as_int();
        return Value::Int(result);
      }
      return Value::Float(std::pow(a.as_double(), b.as_double()));
    }
  }
  return TypeError(absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(),
                                "' and '", b.TypeName(), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        return TypeError(
            absl::StrCat("'in <string>' requires string as left operand, not ", item.TypeName()));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.as_list()) {
        if (Equal(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return container.FindKey(item) != nullptr;
    case Value::Kind::kIterator: {
      // Python consumes a generator up to the item it finds.
      IteratorState& it = container.as_iterator();
      while (it.position < it.items.size()) {
        if (Equal(it.items[it.position++], item)) return true;
      }
      return false;
    }
    default:
      return TypeError(
          absl::StrCat("argument of type '", container.TypeName(), "' is not iterable"));
  }
}

absl::StatusOr<std::string> PercentFormat(const std::string& format, const Value& args,
                                          bool escape) {
  ValueList positional;
  const Value* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.as_list();
  } else if (args.is_dict()) {
    mapping = &args;
  } else {
    positional.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) return absl::InvalidArgumentError("incomplete format");
    const Value* value = nullptr;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos || mapping == nullptr) {
        return absl::InvalidArgumentError("format requires a mapping");
      }
      value = mapping->FindKey(absl::string_view(format).substr(i + 1, close - i - 1));
      if (value == nullptr) return absl::InvalidArgumentError("format key not found");
      i = close + 1;
    }
    std::string spec = "%";
    while (i < format.size() &&
           absl::string_view("-+ 0#").find(format[i]) != absl::string_view::npos) {
      spec.push_back(format[i++]);
    }
    while (i < format.size() && ((format[i] >= '0' && format[i] <= '9') || format[i] == '.')) {
      spec.push_back(format[i++]);
    }
    if (i >= format.size()) return absl::InvalidArgumentError("incomplete format");
    const char conversion = format[i];
    if (conversion == '%') {
      out.push_back('%');
      continue;
    }
    if (value == nullptr) {
      if (next >= positional.size()) {
        return absl::InvalidArgumentError("not enough arguments for format string");
      }
      value = &positional[next++];
    }
    char buf[512];
    switch (conversion) {
      case 's':
      case 'r': {
        std::string text = conversion == 's' ? ToPythonStr(*value) : ToPythonRepr(*value);
        if (escape && !value->is_safe_string()) text = HtmlEscape(text);
        // Flags, width and precision apply to code points, as in Python.
        const size_t dot = spec.find('.');
        std::vector<char32_t> chars = DecodeUtf8(text);
        if (dot != std::string::npos) {
          const size_t precision = std::strtoul(spec.c_str() + dot + 1, nullptr, 10);
          if (chars.size() > precision) chars.resize(precision);
        }
        size_t first_digit = spec.find_first_of("123456789");
        const size_t width = first_digit != std::string::npos && first_digit < dot
                                 ? std::strtoul(spec.c_str() + first_digit, nullptr, 10)
                                 : 0;
        const std::string padding(width > chars.size() ? width - chars.size() : 0, ' ');
        const bool left = spec.find('-') != std::string::npos;
        out += left ? EncodeUtf8(chars) + padding : padding + EncodeUtf8(chars);
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        if (!value->is_number()) {
          return TypeError(absl::StrCat("%", std::string(1, conversion),
                                        " format: a number is required, not ", value->TypeName()));
        }
        const long long n =
            value->is_float() ? static_cast<long long>(value->as_double()) : value->as_int();
        if (conversion == 'c') {
          AppendUtf8(static_cast<char32_t>(n), &out);
          break;
        }
        const char c = conversion == 'i' ? 'd' : conversion;
        std::snprintf(buf, sizeof(buf), (spec + "ll" + std::string(1, c)).c_str(), n);
        out += buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!value->is_number()) {
          return TypeError(absl::StrCat("must be real number, not ", value->TypeName()));
        }
        std::snprintf(buf, sizeof(buf), (spec + std::string(1, conversion)).c_str(),
                      value->as_double());
        out += buf;
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported format character '", std::string(1, conversion), "'"));
    }
  }
  if (mapping == nullptr && next < positional.size()) {
    return absl::InvalidArgumentError("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace weft::jinja
