#include "runtime/tokenizer/regex.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "unicode/utext.h"

namespace weft::tokenizer_internal {
namespace {

struct UTextCloser {
  void operator()(UText* text) const { utext_close(text); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(absl::string_view pattern,
                                                      bool literal) {
  UErrorCode status = U_ZERO_ERROR;
  UParseError parse_error;
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(
      icu::StringPiece(pattern.data(), static_cast<int32_t>(pattern.size())));
  std::unique_ptr<icu::RegexPattern> compiled(icu::RegexPattern::compile(
      source, literal ? UREGEX_LITERAL : 0, parse_error, status));
  if (U_FAILURE(status) || compiled == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "regex '", pattern, "' does not compile (ICU ", u_errorName(status),
        " at offset ", parse_error.offset, ")"));
  }
  return std::unique_ptr<Regex>(new Regex(std::move(compiled)));
}

std::vector<Span> Regex::FindAll(absl::string_view text) const {
  std::vector<Span> matches;
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<UText, UTextCloser> utext(utext_openUTF8(
      nullptr, text.data(), static_cast<int64_t>(text.size()), &status));
  std::unique_ptr<icu::RegexMatcher> matcher(pattern_->matcher(status));
  if (U_FAILURE(status)) return matches;
  matcher->reset(utext.get());
  // ICU's default 8 MB backtracking stack overflows on long runs matched by
  // patterns like \s+(?!\S) (about 1 MB of spaces); let it grow instead.
  matcher->setStackLimit(0, status);
  while (matcher->find(status) && U_SUCCESS(status)) {
    matches.push_back({static_cast<size_t>(matcher->start64(status)),
                       static_cast<size_t>(matcher->end64(status))});
  }
  return matches;
}

std::string ReplaceAll(const Regex& regex, absl::string_view text,
                       absl::string_view content) {
  std::string out;
  size_t last = 0;
  for (const Span& match : regex.FindAll(text)) {
    absl::StrAppend(&out, text.substr(last, match.begin - last));
    absl::StrAppend(&out, content);
    last = match.end;
  }
  absl::StrAppend(&out, text.substr(last));
  return out;
}

}  // namespace weft::tokenizer_internal
