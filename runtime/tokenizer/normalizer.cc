#include "runtime/tokenizer/normalizer.h"

#include <utility>

#include "unicode/normalizer2.h"
#include "unicode/uniset.h"
#include "unicode/unistr.h"

namespace weft::tokenizer_internal {
namespace {

const icu::Normalizer2* BaseInstance(Normalizer::Form form) {
  UErrorCode status = U_ZERO_ERROR;
  switch (form) {
    case Normalizer::Form::kNfc:
      return icu::Normalizer2::getNFCInstance(status);
    case Normalizer::Form::kNfd:
      return icu::Normalizer2::getNFDInstance(status);
    case Normalizer::Form::kNfkc:
      return icu::Normalizer2::getNFKCInstance(status);
    case Normalizer::Form::kNfkd:
      return icu::Normalizer2::getNFKDInstance(status);
  }
  return nullptr;
}

// `tokenizers` normalizes with the Unicode 9.0 tables of its
// unicode-normalization-alignments crate: a character assigned later has no
// decomposition and combining class 0. ICU's normalizer filtered to the
// characters of Unicode 9.0 treats them the same way (as boundaries left
// as they are), so a combining mark from Unicode 10+ is not reordered.
const icu::Normalizer2* Instance(Normalizer::Form form) {
  static const icu::UnicodeSet* unicode9 = [] {
    UErrorCode status = U_ZERO_ERROR;
    auto* set = new icu::UnicodeSet(icu::UnicodeString(u"[:age=9.0:]"), status);
    set->freeze();
    return set;
  }();
  static const icu::Normalizer2* const filtered[] = {
      new icu::FilteredNormalizer2(*BaseInstance(Normalizer::Form::kNfc),
                                   *unicode9),
      new icu::FilteredNormalizer2(*BaseInstance(Normalizer::Form::kNfd),
                                   *unicode9),
      new icu::FilteredNormalizer2(*BaseInstance(Normalizer::Form::kNfkc),
                                   *unicode9),
      new icu::FilteredNormalizer2(*BaseInstance(Normalizer::Form::kNfkd),
                                   *unicode9),
  };
  return filtered[static_cast<int>(form)];
}

bool IsAscii(absl::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::string ApplyForm(Normalizer::Form form, absl::string_view text) {
  if (IsAscii(text)) return std::string(text);  // ASCII is in every form
  const icu::Normalizer2* normalizer = Instance(form);
  UErrorCode status = U_ZERO_ERROR;
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  const icu::UnicodeString normalized = normalizer->normalize(source, status);
  if (U_FAILURE(status)) return std::string(text);
  std::string out;
  normalized.toUTF8String(out);
  return out;
}

}  // namespace

void Normalizer::AddUnicodeForm(Form form) {
  steps_.push_back({Kind::kForm, form, "", nullptr});
}

void Normalizer::AddPrepend(std::string prefix) {
  steps_.push_back({Kind::kPrepend, Form::kNfc, std::move(prefix), nullptr});
}

void Normalizer::AddReplace(std::unique_ptr<Regex> pattern,
                            std::string content) {
  steps_.push_back(
      {Kind::kReplace, Form::kNfc, std::move(content), std::move(pattern)});
}

std::string Normalizer::Normalize(absl::string_view text) const {
  std::string current(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kForm:
        current = ApplyForm(step.form, current);
        break;
      case Kind::kPrepend:
        if (!current.empty()) current.insert(0, step.text);
        break;
      case Kind::kReplace:
        current = ReplaceAll(*step.pattern, current, step.text);
        break;
    }
  }
  return current;
}

}  // namespace weft::tokenizer_internal
