#include "runtime/tokenizer/utf8.h"

#include <array>

#include "unicode/uchar.h"

namespace weft::tokenizer_internal {
namespace {

// Valid second-byte range for each lead byte (Unicode Table 3-7); later
// continuation bytes are always 0x80..0xBF.
struct LeadInfo {
  int length;  // 0 for a byte that cannot start a sequence
  unsigned char second_min;
  unsigned char second_max;
};

LeadInfo Lead(unsigned char byte) {
  if (byte < 0x80) return {1, 0, 0};
  if (byte < 0xC2) return {0, 0, 0};
  if (byte < 0xE0) return {2, 0x80, 0xBF};
  if (byte == 0xE0) return {3, 0xA0, 0xBF};
  if (byte == 0xED) return {3, 0x80, 0x9F};
  if (byte < 0xF0) return {3, 0x80, 0xBF};
  if (byte == 0xF0) return {4, 0x90, 0xBF};
  if (byte < 0xF4) return {4, 0x80, 0xBF};
  if (byte == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Length of the longest prefix at `pos` that is a valid start of a sequence
// (at least 1), and whether it is complete.
size_t ValidPrefix(absl::string_view text, size_t pos, bool* complete) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  const LeadInfo lead = Lead(byte);
  *complete = false;
  if (lead.length == 0) return 1;
  if (lead.length == 1) {
    *complete = true;
    return 1;
  }
  size_t n = 1;
  for (; n < static_cast<size_t>(lead.length); ++n) {
    if (pos + n >= text.size()) return n;
    const auto c = static_cast<unsigned char>(text[pos + n]);
    const unsigned char lo = n == 1 ? lead.second_min : 0x80;
    const unsigned char hi = n == 1 ? lead.second_max : 0xBF;
    if (c < lo || c > hi) return n;
  }
  *complete = true;
  return n;
}

struct ByteTables {
  std::array<char32_t, 256> byte_to_unicode{};
  std::array<int, 324> unicode_to_byte{};  // the alphabet ends at U+0143
  ByteTables() {
    unicode_to_byte.fill(-1);
    int next_extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t c =
          printable ? static_cast<char32_t>(b) : 256 + next_extra++;
      byte_to_unicode[b] = c;
      unicode_to_byte[c] = b;
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables* tables = new ByteTables();
  return *tables;
}

}  // namespace

size_t DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point) {
  bool complete = false;
  const size_t n = ValidPrefix(text, pos, &complete);
  if (!complete) return 0;
  const auto b0 = static_cast<unsigned char>(text[pos]);
  char32_t cp = n == 1   ? b0
                : n == 2 ? (b0 & 0x1F)
                : n == 3 ? (b0 & 0x0F)
                         : (b0 & 0x07);
  for (size_t i = 1; i < n; ++i) {
    cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  }
  *code_point = cp;
  return n;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(absl::string_view bytes) {
  for (size_t pos = 0; pos < bytes.size();) {
    bool complete = false;
    const size_t n = ValidPrefix(bytes, pos, &complete);
    if (!complete) return false;
    pos += n;
  }
  return true;
}

std::string Utf8Lossy(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    bool complete = false;
    const size_t n = ValidPrefix(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.data() + pos, n);
    } else {
      AppendUtf8(kReplacementChar, &out);
    }
    pos += n;
  }
  return out;
}

size_t CountCodePoints(absl::string_view text) {
  size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::vector<size_t> CodePointLengths(absl::string_view text) {
  std::vector<size_t> lengths;
  lengths.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t n = 1;
    while (pos + n < text.size() &&
           (static_cast<unsigned char>(text[pos + n]) & 0xC0) == 0x80) {
      ++n;
    }
    lengths.push_back(n);
    pos += n;
  }
  return lengths;
}

char32_t ByteToUnicode(unsigned char byte) {
  return Tables().byte_to_unicode[byte];
}

int UnicodeToByte(char32_t code_point) {
  const auto& table = Tables().unicode_to_byte;
  return code_point < table.size() ? table[code_point] : -1;
}

std::string ByteLevelEncode(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    AppendUtf8(ByteToUnicode(static_cast<unsigned char>(c)), &out);
  }
  return out;
}

bool IsWhitespace(char32_t code_point) {
  return u_hasBinaryProperty(static_cast<UChar32>(code_point),
                             UCHAR_WHITE_SPACE);
}

bool IsNumeric(char32_t code_point) {
  return (U_GET_GC_MASK(static_cast<UChar32>(code_point)) & U_GC_N_MASK) != 0;
}

bool IsAlphanumeric(char32_t code_point) {
  return IsNumeric(code_point) ||
         u_hasBinaryProperty(static_cast<UChar32>(code_point),
                             UCHAR_ALPHABETIC);
}

}  // namespace weft::tokenizer_internal
