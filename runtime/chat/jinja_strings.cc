#include "runtime/chat/jinja_strings.h"

#include <algorithm>

#include "runtime/chat/jinja_lexer.h"
#include "runtime/chat/jinja_value.h"
#include "unicode/locid.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"

namespace weft::jinja {
namespace {

bool IsAscii(absl::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

std::string CaseMap(absl::string_view s, bool upper) {
  if (IsAscii(s)) {
    std::string out(s);
    for (char& c : out) {
      if (upper && c >= 'a' && c <= 'z') c -= 32;
      if (!upper && c >= 'A' && c <= 'Z') c += 32;
    }
    return out;
  }
  icu::UnicodeString u =
      icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  if (upper) {
    u.toUpper(icu::Locale::getRoot());
  } else {
    u.toLower(icu::Locale::getRoot());
  }
  std::string out;
  u.toUTF8String(out);
  return out;
}

std::string CharString(char32_t c) {
  std::string s;
  AppendUtf8(c, &s);
  return s;
}

std::string TitleChar(char32_t c) {
  if (c < 0x80) return std::string(1, static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
  return CharString(static_cast<char32_t>(u_totitle(static_cast<UChar32>(c))));
}

bool IsCased(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_CASED); }

bool IsSpaceChar(char32_t c) {
  std::string s = CharString(c);
  return PyWhitespaceLength(s, 0) > 0;
}

bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

template <typename Pred>
bool AllChars(absl::string_view s, Pred pred) {
  if (s.empty()) return false;
  for (char32_t c : DecodeUtf8(s)) {
    if (!pred(c)) return false;
  }
  return true;
}

bool IsDigitChar(char32_t c) {
  const int type = u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_NUMERIC_TYPE);
  return type == U_NT_DECIMAL || type == U_NT_DIGIT;
}

}  // namespace

std::string PyUpper(absl::string_view s) { return CaseMap(s, true); }
std::string PyLower(absl::string_view s) { return CaseMap(s, false); }

std::string PyCapitalize(absl::string_view s) {
  std::vector<char32_t> chars = DecodeUtf8(s);
  if (chars.empty()) return "";
  std::string rest;
  for (size_t i = 1; i < chars.size(); ++i) AppendUtf8(chars[i], &rest);
  return TitleChar(chars[0]) + PyLower(rest);
}

std::string PyTitle(absl::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (char32_t c : DecodeUtf8(s)) {
    out += previous_cased ? PyLower(CharString(c)) : TitleChar(c);
    previous_cased = IsCased(c);
  }
  return out;
}

std::string PySwapCase(absl::string_view s) {
  std::string out;
  for (char32_t c : DecodeUtf8(s)) {
    const std::string one = CharString(c);
    if (u_isULowercase(static_cast<UChar32>(c))) {
      out += PyUpper(one);
    } else if (u_isUUppercase(static_cast<UChar32>(c))) {
      out += PyLower(one);
    } else {
      out += one;
    }
  }
  return out;
}

std::string PyStripChars(absl::string_view s, const std::optional<std::string>& chars, bool left,
                         bool right) {
  if (!chars.has_value()) return std::string(PyStrip(s, left, right));
  const std::vector<char32_t> set = DecodeUtf8(*chars);
  auto in_set = [&](char32_t c) { return std::find(set.begin(), set.end(), c) != set.end(); };
  std::vector<char32_t> cps = DecodeUtf8(s);
  size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && in_set(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && in_set(cps[end - 1])) --end;
  }
  return EncodeUtf8(std::vector<char32_t>(cps.begin() + begin, cps.begin() + end));
}

std::vector<std::string> PySplit(absl::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep.has_value()) {
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t at = s.find(*sep, start);
        if (at == absl::string_view::npos) break;
        parts.emplace_back(s.substr(start, at - start));
        start = at + sep->size();
      }
      parts.emplace_back(s.substr(start));
      return parts;
    }
    size_t end = s.size();
    int64_t splits = 0;
    while (maxsplit < 0 || splits < maxsplit) {
      if (end < sep->size()) break;
      const size_t at = s.rfind(*sep, end - sep->size());
      if (at == absl::string_view::npos) break;
      parts.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
      ++splits;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Whitespace runs separate words; with maxsplit the remainder keeps its
  // inner whitespace but loses the leading run.
  std::vector<char32_t> cps = DecodeUtf8(s);
  if (from_right) std::reverse(cps.begin(), cps.end());
  size_t i = 0;
  const size_t n = cps.size();
  while (true) {
    while (i < n && IsSpaceChar(cps[i])) ++i;
    if (i == n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t end = n;
      while (end > i && IsSpaceChar(cps[end - 1])) --end;
      std::vector<char32_t> rest(cps.begin() + i, cps.begin() + end);
      if (from_right) std::reverse(rest.begin(), rest.end());
      parts.push_back(EncodeUtf8(rest));
      break;
    }
    size_t j = i;
    while (j < n && !IsSpaceChar(cps[j])) ++j;
    std::vector<char32_t> word(cps.begin() + i, cps.begin() + j);
    if (from_right) std::reverse(word.begin(), word.end());
    parts.push_back(EncodeUtf8(word));
    i = j;
  }
  if (from_right) std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> PySplitLines(absl::string_view s, bool keepends) {
  std::vector<std::string> lines;
  const std::vector<char32_t> cps = DecodeUtf8(s);
  std::vector<char32_t> line;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (!IsLineBreak(cps[i])) {
      line.push_back(cps[i]);
      continue;
    }
    std::vector<char32_t> ending = {cps[i]};
    if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ending.push_back(cps[++i]);
    if (keepends) line.insert(line.end(), ending.begin(), ending.end());
    lines.push_back(EncodeUtf8(line));
    line.clear();
  }
  if (!line.empty()) lines.push_back(EncodeUtf8(line));
  return lines;
}

std::string PyReplace(absl::string_view s, absl::string_view old_text, absl::string_view new_text,
                      int64_t count) {
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new` before every character and at the end.
    const std::vector<char32_t> cps = DecodeUtf8(s);
    int64_t done = 0;
    for (char32_t c : cps) {
      if (count < 0 || done < count) {
        out.append(new_text.data(), new_text.size());
        ++done;
      }
      AppendUtf8(c, &out);
    }
    if (count < 0 || done < count) out.append(new_text.data(), new_text.size());
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old_text, start);
    if (at == absl::string_view::npos) break;
    out.append(s.data() + start, at - start);
    out.append(new_text.data(), new_text.size());
    start = at + old_text.size();
    ++done;
  }
  out.append(s.data() + start, s.size() - start);
  return out;
}

int64_t PyFind(absl::string_view s, absl::string_view sub, bool from_right) {
  const size_t at = from_right ? s.rfind(sub) : s.find(sub);
  if (at == absl::string_view::npos) return -1;
  return CodePointLength(s.substr(0, at));
}

int64_t PyCount(absl::string_view s, absl::string_view sub) {
  if (sub.empty()) return CodePointLength(s) + 1;
  int64_t n = 0;
  for (size_t at = s.find(sub); at != absl::string_view::npos; at = s.find(sub, at + sub.size())) {
    ++n;
  }
  return n;
}

bool PyIsDigit(absl::string_view s) { return AllChars(s, IsDigitChar); }
bool PyIsAlpha(absl::string_view s) {
  return AllChars(s, [](char32_t c) { return u_isalpha(static_cast<UChar32>(c)) != 0; });
}
bool PyIsAlnum(absl::string_view s) {
  return AllChars(s, [](char32_t c) {
    return u_isalpha(static_cast<UChar32>(c)) || IsDigitChar(c) ||
           u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_NUMERIC_TYPE) == U_NT_NUMERIC;
  });
}
bool PyIsSpace(absl::string_view s) { return AllChars(s, IsSpaceChar); }

bool PyIsUpper(absl::string_view s) {
  bool cased = false;
  for (char32_t c : DecodeUtf8(s)) {
    if (u_isULowercase(static_cast<UChar32>(c)) || u_istitle(static_cast<UChar32>(c))) return false;
    cased |= u_isUUppercase(static_cast<UChar32>(c)) != 0;
  }
  return cased;
}

bool PyIsLower(absl::string_view s) {
  bool cased = false;
  for (char32_t c : DecodeUtf8(s)) {
    if (u_isUUppercase(static_cast<UChar32>(c)) || u_istitle(static_cast<UChar32>(c))) return false;
    cased |= u_isULowercase(static_cast<UChar32>(c)) != 0;
  }
  return cased;
}

std::string PyCenter(absl::string_view s, int64_t width) {
  const int64_t length = CodePointLength(s);
  if (width <= length) return std::string(s);
  const int64_t margin = width - length;
  const int64_t left = margin / 2 + (margin & width & 1);
  return std::string(left, ' ') + std::string(s) + std::string(margin - left, ' ');
}

}  // namespace weft::jinja
