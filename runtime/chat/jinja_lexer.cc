#include "runtime/chat/jinja_lexer.h"

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/chat/jinja_value.h"

namespace weft::jinja {

int PyWhitespaceLength(absl::string_view s, size_t pos) {
  const unsigned char c = s[pos];
  if (c < 0x80) {
    return (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) ? 1 : 0;
  }
  const std::vector<char32_t> cp = DecodeUtf8(s.substr(pos, std::min<size_t>(4, s.size() - pos)));
  const char32_t u = cp[0];
  const bool space = u == 0x85 || u == 0xA0 || u == 0x1680 || (u >= 0x2000 && u <= 0x200A) ||
                     u == 0x2028 || u == 0x2029 || u == 0x202F || u == 0x205F || u == 0x3000;
  if (!space) return 0;
  return u < 0x800 ? 2 : 3;
}

absl::string_view PyStrip(absl::string_view s, bool left, bool right) {
  if (left) {
    size_t i = 0;
    while (i < s.size()) {
      const int n = PyWhitespaceLength(s, i);
      if (n == 0) break;
      i += n;
    }
    s.remove_prefix(i);
  }
  if (right) {
    // Scan forward, remembering where the trailing whitespace run starts.
    size_t end = s.size(), i = 0;
    size_t run_start = s.size();
    bool in_run = false;
    while (i < s.size()) {
      const int n = PyWhitespaceLength(s, i);
      if (n > 0) {
        if (!in_run) run_start = i, in_run = true;
        i += n;
      } else {
        in_run = false;
        const unsigned char c = s[i];
        i += c < 0xC0 ? 1 : (c < 0xE0 ? 2 : (c < 0xF0 ? 3 : 4));
      }
    }
    if (in_run) end = run_start;
    s = s.substr(0, end);
  }
  return s;
}

namespace {

absl::Status Error(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
}

int CountNewlines(absl::string_view s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// Length of the whitespace run at `pos` (Python's \s*).
size_t WhitespaceRun(absl::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size()) {
    const int n = PyWhitespaceLength(s, i);
    if (n == 0) break;
    i += n;
  }
  return i - pos;
}

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The body of a string literal, decoded as Python's "unicode-escape" codec
// decodes it (what jinja2 does).
absl::StatusOr<std::string> DecodeStringLiteral(absl::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out.push_back(body[i]);
      continue;
    }
    const char e = body[++i];
    switch (e) {
      case '\n':
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const int digits = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
        char32_t cp = 0;
        for (int k = 0; k < digits; ++k) {
          if (i + 1 + k >= body.size() || HexValue(body[i + 1 + k]) < 0) {
            return Error(line, absl::StrCat("truncated \\", std::string(1, e),
                                            " escape in a string literal"));
          }
          cp = cp * 16 + HexValue(body[i + 1 + k]);
        }
        i += digits;
        AppendUtf8(cp, &out);
        break;
      }
      case 'N':
        return Error(line, "\\N{...} escapes in string literals are not supported");
      default:
        if (e >= '0' && e <= '7') {
          char32_t cp = e - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7';
               ++k) {
            cp = cp * 8 + (body[++i] - '0');
          }
          AppendUtf8(cp, &out);
        } else {
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : source_(std::move(source)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    const absl::string_view s = source_;
    while (pos_ < s.size()) {
      // The next tag start: {% {{ {#, whichever comes first.
      size_t start = pos_;
      while (true) {
        start = s.find('{', start);
        if (start == absl::string_view::npos || start + 1 >= s.size()) {
          start = absl::string_view::npos;
          break;
        }
        const char k = s[start + 1];
        if (k == '%' || k == '{' || k == '#') break;
        ++start;
      }
      if (start == absl::string_view::npos) {
        Emit(Token::Type::kData, std::string(s.substr(pos_)));
        line_ += CountNewlines(s.substr(pos_));
        break;
      }
      const char kind = s[start + 1];
      size_t after = start + 2;
      char sign = 0;
      if (after < s.size() && (s[after] == '-' || s[after] == '+')) sign = s[after++];
      std::string text(s.substr(pos_, start - pos_));
      const int text_lines = CountNewlines(text);
      size_t raw_end = 0;
      const bool raw = kind == '%' && IsRawBegin(after, &raw_end);
      ApplyLeftStrip(&text, sign, /*is_variable=*/kind == '{');
      Emit(Token::Type::kData, std::move(text));
      line_ += text_lines;
      if (raw) {
        line_ += CountNewlines(s.substr(after, raw_end - after));
        line_starting_ = s[raw_end - 1] == '\n';
        pos_ = raw_end;
        if (auto st = LexRawBody(); !st.ok()) return st;
        continue;
      }
      pos_ = after;
      line_starting_ = false;
      absl::Status st = kind == '#' ? LexComment() : LexTag(kind == '%');
      if (!st.ok()) return st;
    }
    tokens_.push_back({Token::Type::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  void Emit(Token::Type type, std::string value) {
    if (type == Token::Type::kData && value.empty()) return;
    tokens_.push_back({type, std::move(value), line_});
  }

  // `text` precedes a tag whose start sign is `sign`.
  void ApplyLeftStrip(std::string* text, char sign, bool is_variable) {
    if (sign == '-') {
      *text = std::string(PyStrip(*text, false, true));
      return;
    }
    if (sign == '+' || is_variable) return;
    const size_t newline = text->rfind('\n');
    const size_t line_start = newline == std::string::npos ? 0 : newline + 1;
    if (line_start == 0 && !line_starting_) return;
    if (line_start == text->size()) return;  // \s+ needs one character
    if (WhitespaceRun(*text, line_start) == text->size() - line_start) {
      text->resize(line_start);
    }
  }

  // At `pos` (after "{%" and its sign): "\s*raw\s*(-%}\s*|%})"?
  bool IsRawBegin(size_t pos, size_t* end) const {
    const absl::string_view s = source_;
    pos += WhitespaceRun(s, pos);
    if (!absl::StartsWith(s.substr(pos), "raw")) return false;
    pos += 3;
    pos += WhitespaceRun(s, pos);
    if (absl::StartsWith(s.substr(pos), "-%}")) {
      pos += 3;
      pos += WhitespaceRun(s, pos);
    } else if (absl::StartsWith(s.substr(pos), "%}")) {
      pos += 2;
    } else {
      return false;
    }
    *end = pos;
    return true;
  }

  // Block or comment end at `pos` ("+%}", "-%}\s*", "%}\n?"); its length,
  // or 0.
  size_t BlockEndLength(size_t pos, char closer) const {
    const absl::string_view s = absl::string_view(source_).substr(pos);
    const std::string end = {closer, '}'};
    if (absl::StartsWith(s, "+" + end)) return 3;
    if (absl::StartsWith(s, "-" + end)) return 3 + WhitespaceRun(s, 3);
    if (absl::StartsWith(s, end)) return 2 + (s.size() > 2 && s[2] == '\n');
    return 0;
  }

  void Consume(size_t length) {
    const absl::string_view consumed = absl::string_view(source_).substr(pos_, length);
    line_ += CountNewlines(consumed);
    line_starting_ = !consumed.empty() && consumed.back() == '\n';
    pos_ += length;
  }

  absl::Status LexComment() {
    const int begin_line = line_;
    size_t i = pos_;
    while (true) {
      i = source_.find("#}", i);
      if (i == std::string::npos) return Error(begin_line, "missing end of comment tag");
      // "-#}" or "+#}" when the # is preceded by a sign.
      const size_t tag = (i > pos_ && (source_[i - 1] == '-' || source_[i - 1] == '+')) ? i - 1 : i;
      const size_t length = BlockEndLength(tag, '#');
      Consume(tag - pos_);
      Consume(length);
      return absl::OkStatus();
    }
  }

  absl::Status LexRawBody() {
    const absl::string_view s = source_;
    const int begin_line = line_;
    size_t i = pos_;
    while (true) {
      i = s.find("{%", i);
      if (i == absl::string_view::npos) return Error(begin_line, "missing end of raw directive");
      size_t p = i + 2;
      char sign = 0;
      if (p < s.size() && (s[p] == '-' || s[p] == '+')) sign = s[p++];
      p += WhitespaceRun(s, p);
      if (!absl::StartsWith(s.substr(p), "endraw")) {
        i += 2;
        continue;
      }
      p += 6;
      p += WhitespaceRun(s, p);
      const size_t end_length = BlockEndLength(p, '%');
      if (end_length == 0) {
        i += 2;
        continue;
      }
      std::string text(s.substr(pos_, i - pos_));
      const int text_lines = CountNewlines(text);
      ApplyLeftStrip(&text, sign, false);
      Emit(Token::Type::kData, std::move(text));
      line_ += text_lines;
      pos_ = i;
      line_ += CountNewlines(s.substr(i, p - i));
      pos_ = p;
      Consume(end_length);
      return absl::OkStatus();
    }
  }

  absl::Status LexTag(bool is_block) {
    const int begin_line = line_;
    Emit(is_block ? Token::Type::kBlockBegin : Token::Type::kVariableBegin, "");
    const absl::string_view s = source_;
    std::vector<char> brackets;  // closers expected, innermost last
    while (true) {
      if (pos_ >= s.size()) {
        return Error(begin_line, is_block ? "missing end of block tag '%}'"
                                          : "missing end of variable tag '}}'");
      }
      if (brackets.empty()) {
        size_t end_length = 0;
        if (is_block) {
          end_length = BlockEndLength(pos_, '%');
        } else if (absl::StartsWith(s.substr(pos_), "-}}")) {
          end_length = 3 + WhitespaceRun(s, pos_ + 3);
        } else if (absl::StartsWith(s.substr(pos_), "}}")) {
          end_length = 2;
        }
        if (end_length > 0) {
          Emit(is_block ? Token::Type::kBlockEnd : Token::Type::kVariableEnd, "");
          Consume(end_length);
          return absl::OkStatus();
        }
      }
      if (const size_t ws = WhitespaceRun(s, pos_); ws > 0) {
        Consume(ws);
        continue;
      }
      const char c = s[pos_];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        LexNumber();
        continue;
      }
      if (IsNameStart(c)) {
        size_t j = pos_;
        while (j < s.size() && IsNameChar(s[j])) ++j;
        Emit(Token::Type::kName, std::string(s.substr(pos_, j - pos_)));
        Consume(j - pos_);
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t j = pos_ + 1;
        while (j < s.size() && s[j] != c) j += s[j] == '\\' ? 2 : 1;
        if (j >= s.size()) return Error(line_, "unterminated string literal");
        absl::StatusOr<std::string> value =
            DecodeStringLiteral(s.substr(pos_ + 1, j - pos_ - 1), line_);
        if (!value.ok()) return value.status();
        Emit(Token::Type::kString, *std::move(value));
        Consume(j + 1 - pos_);
        continue;
      }
      static constexpr absl::string_view kTwoCharOps[] = {"//", "**", "==", "!=", ">=", "<="};
      std::string op;
      for (absl::string_view two : kTwoCharOps) {
        if (absl::StartsWith(s.substr(pos_), two)) op = std::string(two);
      }
      if (op.empty()) {
        if (absl::string_view("+-/*%~[](){}><=.:|,;").find(c) == absl::string_view::npos) {
          return Error(line_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
        }
        op = std::string(1, c);
      }
      if (op == "(" || op == "[" || op == "{") {
        brackets.push_back(op == "(" ? ')' : (op == "[" ? ']' : '}'));
      } else if (op == ")" || op == "]" || op == "}") {
        if (brackets.empty()) return Error(line_, absl::StrCat("unexpected '", op, "'"));
        if (brackets.back() != op[0]) {
          return Error(line_, absl::StrCat("unexpected '", op, "', expected '",
                                           std::string(1, brackets.back()), "'"));
        }
        brackets.pop_back();
      }
      Emit(Token::Type::kOperator, op);
      Consume(op.size());
    }
  }

  // Integer or float literal at pos_ (digits, optional _ separators,
  // fraction, exponent).
  void LexNumber() {
    const absl::string_view s = source_;
    auto digits = [&](size_t j) {
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) ||
                              (s[j] == '_' && j + 1 < s.size() &&
                               std::isdigit(static_cast<unsigned char>(s[j + 1]))))) {
        ++j;
      }
      return j;
    };
    size_t j = digits(pos_);
    bool is_float = false;
    if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
      j = digits(j + 1);
      is_float = true;
    }
    if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
      size_t k = j + 1;
      if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
      if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
        j = digits(k);
        is_float = true;
      }
    }
    std::string text(s.substr(pos_, j - pos_));
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    Emit(is_float ? Token::Type::kFloat : Token::Type::kInteger, text);
    Consume(j - pos_);
  }

  std::string source_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source) {
  std::string normalized;
  normalized.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      normalized.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      normalized.push_back(source[i]);
    }
  }
  // keep_trailing_newline=False: one trailing newline is not output.
  if (!normalized.empty() && normalized.back() == '\n') normalized.pop_back();
  return Lexer(std::move(normalized)).Run();
}

}  // namespace weft::jinja
