#include "runtime/tokenizer/pretokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/utf8.h"

namespace weft::tokenizer_internal {
namespace {

// A piece of the text being split, covering it with its neighbours.
struct Segment {
  size_t begin;
  size_t end;
  bool is_match;
};

// HF's Pattern::find_matches for a regex: matches and the gaps between them.
std::vector<Segment> SegmentsFromMatches(size_t length,
                                         const std::vector<Span>& matches) {
  if (length == 0) return {{0, 0, false}};
  std::vector<Segment> segments;
  size_t previous = 0;
  for (const Span& match : matches) {
    if (previous != match.begin) {
      segments.push_back({previous, match.begin, false});
    }
    segments.push_back({match.begin, match.end, true});
    previous = match.end;
  }
  if (previous != length) segments.push_back({previous, length, false});
  return segments;
}

// HF's Pattern::find_matches for a character predicate: every matching
// character is a match of its own.
template <typename Predicate>
std::vector<Segment> SegmentsFromChars(absl::string_view text,
                                       Predicate predicate) {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Segment> segments;
  size_t last_offset = 0;
  for (size_t pos = 0; pos < text.size();) {
    char32_t c = 0;
    size_t n = DecodeUtf8(text, pos, &c);
    if (n == 0) n = 1;  // not reached: text is valid UTF-8
    if (predicate(c)) {
      if (last_offset < pos) segments.push_back({last_offset, pos, false});
      segments.push_back({pos, pos + n, true});
      last_offset = pos + n;
    }
    pos += n;
  }
  if (text.size() > last_offset) {
    segments.push_back({last_offset, text.size(), false});
  }
  return segments;
}

// HF's NormalizedString::split: applies `behavior` to the segments and
// emits the non-empty pieces that are kept.
void SplitPiece(const PreToken& piece, std::vector<Segment> segments,
                SplitBehavior behavior, bool invert,
                std::vector<PreToken>* out) {
  if (invert) {
    for (Segment& segment : segments) segment.is_match = !segment.is_match;
  }
  struct Kept {
    size_t begin;
    size_t end;
    bool removed;
  };
  std::vector<Kept> kept;
  kept.reserve(segments.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Segment& s : segments) kept.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments) {
        kept.push_back({s.begin, s.end, s.is_match});
      }
      break;
    case SplitBehavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !kept.empty()) {
          kept.back().begin = it->begin;
        } else {
          kept.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const Kept& s : kept) {
    if (s.removed || s.begin == s.end) continue;
    out->push_back({piece.text.substr(s.begin, s.end - s.begin),
                    piece.at_text_start && s.begin == 0});
  }
}

bool StartsWith(absl::string_view text, absl::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string ReplaceChar(absl::string_view text, char from,
                        absl::string_view to) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == from) {
      out.append(to.data(), to.size());
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

void PreTokenizer::AddSplit(std::unique_ptr<Regex> pattern,
                            SplitBehavior behavior, bool invert) {
  Step step;
  step.kind = Kind::kSplit;
  step.pattern = std::move(pattern);
  step.behavior = behavior;
  step.invert = invert;
  steps_.push_back(std::move(step));
}

void PreTokenizer::AddByteLevel(bool add_prefix_space, bool use_regex) {
  Step step;
  step.kind = Kind::kByteLevel;
  step.add_prefix_space = add_prefix_space;
  if (use_regex) {
    // The pattern is a compile-time constant known to compile.
    step.pattern = *Regex::Compile(kGpt2Pattern, /*literal=*/false);
  }
  steps_.push_back(std::move(step));
}

void PreTokenizer::AddDigits(bool individual) {
  Step step;
  step.kind = Kind::kDigits;
  step.individual_digits = individual;
  steps_.push_back(std::move(step));
}

void PreTokenizer::AddMetaspace(char32_t replacement, PrependScheme scheme,
                                bool split) {
  Step step;
  step.kind = Kind::kMetaspace;
  step.replacement = replacement;
  step.prepend_scheme = scheme;
  step.metaspace_split = split;
  steps_.push_back(std::move(step));
}

void PreTokenizer::Run(std::vector<PreToken>* pieces) const {
  for (const Step& step : steps_) {
    std::vector<PreToken> next;
    next.reserve(pieces->size() * 2);
    for (const PreToken& piece : *pieces) RunStep(step, piece, &next);
    *pieces = std::move(next);
  }
}

void PreTokenizer::RunStep(const Step& step, const PreToken& piece,
                           std::vector<PreToken>* out) const {
  switch (step.kind) {
    case Kind::kSplit: {
      const std::vector<Span> matches = step.pattern->FindAll(piece.text);
      SplitPiece(piece, SegmentsFromMatches(piece.text.size(), matches),
                 step.behavior, step.invert, out);
      return;
    }
    case Kind::kByteLevel: {
      PreToken prefixed = piece;
      if (step.add_prefix_space && !StartsWith(prefixed.text, " ")) {
        prefixed.text = absl::StrCat(" ", prefixed.text);
      }
      const size_t first = out->size();
      if (step.pattern != nullptr) {
        const std::vector<Span> matches = step.pattern->FindAll(prefixed.text);
        SplitPiece(prefixed, SegmentsFromMatches(prefixed.text.size(), matches),
                   SplitBehavior::kIsolated, /*invert=*/false, out);
      } else if (!prefixed.text.empty()) {
        out->push_back(std::move(prefixed));
      }
      for (size_t i = first; i < out->size(); ++i) {
        (*out)[i].text = ByteLevelEncode((*out)[i].text);
      }
      return;
    }
    case Kind::kDigits:
      SplitPiece(piece, SegmentsFromChars(piece.text, IsNumeric),
                 step.individual_digits ? SplitBehavior::kIsolated
                                        : SplitBehavior::kContiguous,
                 /*invert=*/false, out);
      return;
    case Kind::kMetaspace: {
      std::string replacement;
      AppendUtf8(step.replacement, &replacement);
      PreToken replaced{ReplaceChar(piece.text, ' ', replacement),
                        piece.at_text_start};
      const bool prepend =
          step.prepend_scheme == PrependScheme::kAlways ||
          (step.prepend_scheme == PrependScheme::kFirst && piece.at_text_start);
      if (prepend && !StartsWith(replaced.text, replacement)) {
        replaced.text.insert(0, replacement);
      }
      if (step.metaspace_split) {
        const char32_t target = step.replacement;
        SplitPiece(
            replaced,
            SegmentsFromChars(replaced.text,
                              [target](char32_t c) { return c == target; }),
            SplitBehavior::kMergedWithNext, /*invert=*/false, out);
      } else if (!replaced.text.empty()) {
        out->push_back(std::move(replaced));
      }
      return;
    }
  }
}

}  // namespace weft::tokenizer_internal
