#include "runtime/tokenizer/decoder.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "runtime/tokenizer/utf8.h"

namespace weft::tokenizer_internal {
namespace {

// The byte a "<0xNN>" token stands for, or -1.
int ByteFallbackValue(absl::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') {
    return -1;
  }
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// A token's characters un-mapped to bytes; a token with any character
// outside the alphabet (e.g. an added token) is kept as its UTF-8 bytes.
void AppendByteLevelBytes(absl::string_view token, std::string* out) {
  std::string bytes;
  for (size_t pos = 0; pos < token.size();) {
    char32_t c = 0;
    const size_t n = DecodeUtf8(token, pos, &c);
    const int byte = n == 0 ? -1 : UnicodeToByte(c);
    if (byte < 0) {
      out->append(token.data(), token.size());
      return;
    }
    bytes.push_back(static_cast<char>(byte));
    pos += n;
  }
  out->append(bytes);
}

std::vector<char32_t> CodePoints(absl::string_view text) {
  std::vector<char32_t> out;
  for (size_t pos = 0; pos < text.size();) {
    char32_t c = 0;
    size_t n = DecodeUtf8(text, pos, &c);
    if (n == 0) {
      c = kReplacementChar;
      n = 1;
    }
    out.push_back(c);
    pos += n;
  }
  return out;
}

std::string ReplaceCodePoint(absl::string_view text, char32_t from,
                             absl::string_view to, bool drop) {
  std::string out;
  for (char32_t c : CodePoints(text)) {
    if (c != from) {
      AppendUtf8(c, &out);
    } else if (!drop) {
      out.append(to.data(), to.size());
    }
  }
  return out;
}

// HF ByteFallback: runs of <0xNN> tokens become their bytes when those are
// valid UTF-8, else one U+FFFD per byte.
std::vector<std::string> ApplyByteFallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    if (IsValidUtf8(pending)) {
      out.push_back(pending);
    } else {
      for (size_t i = 0; i < pending.size(); ++i) {
        std::string replacement;
        AppendUtf8(kReplacementChar, &replacement);
        out.push_back(std::move(replacement));
      }
    }
    pending.clear();
  };
  for (std::string& token : tokens) {
    if (int byte = ByteFallbackValue(token); byte >= 0) {
      pending.push_back(static_cast<char>(byte));
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  return out;
}

std::string StripToken(absl::string_view token, char32_t content, size_t start,
                       size_t stop) {
  const std::vector<char32_t> chars = CodePoints(token);
  size_t start_cut = 0;
  for (size_t i = 0; i < start && i < chars.size(); ++i) {
    if (chars[i] != content) break;
    start_cut = i + 1;
  }
  size_t stop_cut = chars.size();
  for (size_t i = 0; i < stop && i < chars.size(); ++i) {
    const size_t index = chars.size() - i - 1;
    if (chars[index] != content || index < start_cut) break;
    stop_cut = index;
  }
  std::string out;
  for (size_t i = start_cut; i < stop_cut; ++i) AppendUtf8(chars[i], &out);
  return out;
}

}  // namespace

void Decoder::AddStep(Kind kind) {
  Step step;
  step.kind = kind;
  steps_.push_back(std::move(step));
}

void Decoder::AddByteLevel() { AddStep(Kind::kByteLevel); }

void Decoder::AddReplace(std::unique_ptr<Regex> pattern, std::string content) {
  Step step;
  step.kind = Kind::kReplace;
  step.pattern = std::move(pattern);
  step.content = std::move(content);
  steps_.push_back(std::move(step));
}

void Decoder::AddByteFallback() { AddStep(Kind::kByteFallback); }

void Decoder::AddFuse() { AddStep(Kind::kFuse); }

void Decoder::AddStrip(char32_t content, size_t start, size_t stop) {
  Step step;
  step.kind = Kind::kStrip;
  step.character = content;
  step.start = start;
  step.stop = stop;
  steps_.push_back(std::move(step));
}

void Decoder::AddMetaspace(char32_t replacement, PrependScheme scheme) {
  Step step;
  step.kind = Kind::kMetaspace;
  step.character = replacement;
  step.prepend_scheme = scheme;
  steps_.push_back(std::move(step));
}

std::string Decoder::Decode(std::vector<std::string> tokens) const {
  if (steps_.empty()) return absl::StrJoin(tokens, " ");
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel: {
        std::string bytes;
        for (const std::string& token : tokens) {
          AppendByteLevelBytes(token, &bytes);
        }
        tokens.assign(1, Utf8Lossy(bytes));
        break;
      }
      case Kind::kReplace:
        for (std::string& token : tokens) {
          token = ReplaceAll(*step.pattern, token, step.content);
        }
        break;
      case Kind::kByteFallback:
        tokens = ApplyByteFallback(std::move(tokens));
        break;
      case Kind::kFuse:
        tokens.assign(1, absl::StrJoin(tokens, ""));
        break;
      case Kind::kStrip:
        for (std::string& token : tokens) {
          token = StripToken(token, step.character, step.start, step.stop);
        }
        break;
      case Kind::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool drop =
              i == 0 && step.prepend_scheme != PrependScheme::kNever;
          tokens[i] = ReplaceCodePoint(tokens[i], step.character, " ", drop);
        }
        break;
    }
  }
  return absl::StrJoin(tokens, "");
}

std::string Decoder::TokenBytes(absl::string_view token) const {
  std::string current(token);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel: {
        std::string bytes;
        AppendByteLevelBytes(current, &bytes);
        current = std::move(bytes);
        break;
      }
      case Kind::kReplace:
        current = ReplaceAll(*step.pattern, current, step.content);
        break;
      case Kind::kByteFallback:
        if (int byte = ByteFallbackValue(current); byte >= 0) {
          current.assign(1, static_cast<char>(byte));
        }
        break;
      case Kind::kMetaspace:
        current = ReplaceCodePoint(current, step.character, " ", false);
        break;
      case Kind::kFuse:
      case Kind::kStrip:
        break;
    }
  }
  return current;
}

bool Decoder::strips_leading_space() const {
  for (const Step& step : steps_) {
    if (step.kind == Kind::kStrip && step.character == ' ' && step.start > 0) {
      return true;
    }
    if (step.kind == Kind::kMetaspace &&
        step.prepend_scheme != PrependScheme::kNever) {
      return true;
    }
  }
  return false;
}

}  // namespace weft::tokenizer_internal
