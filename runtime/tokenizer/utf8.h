// UTF-8 helpers and the GPT-2 byte-level alphabet shared by the tokenizer
// pieces. Offsets are byte offsets into UTF-8 strings throughout.
#ifndef WEFT_RUNTIME_TOKENIZER_UTF8_H_
#define WEFT_RUNTIME_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace weft::tokenizer_internal {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes the code point starting at `text[pos]`. Returns its length in
// bytes (1-4), or 0 when the bytes there are not well-formed UTF-8.
size_t DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point);

void AppendUtf8(char32_t code_point, std::string* out);

bool IsValidUtf8(absl::string_view bytes);

// As Rust's String::from_utf8_lossy: each maximal ill-formed subsequence
// (W3C/Unicode "maximal subpart") becomes one U+FFFD.
std::string Utf8Lossy(absl::string_view bytes);

// Number of code points in valid UTF-8 `text`.
size_t CountCodePoints(absl::string_view text);

// The byte lengths of the code points of valid UTF-8 `text`, in order.
std::vector<size_t> CodePointLengths(absl::string_view text);

// GPT-2's bytes_to_unicode(): printable bytes map to themselves, the others
// to U+0100 and up, so every byte string becomes printable text.
char32_t ByteToUnicode(unsigned char byte);
// The byte `code_point` stands for, or -1 when it is not in the alphabet.
int UnicodeToByte(char32_t code_point);
// `bytes` with every byte replaced by its alphabet character (UTF-8).
std::string ByteLevelEncode(absl::string_view bytes);

// Unicode properties as Rust's `char` methods define them (which is what
// Hugging Face `tokenizers` uses), answered from ICU.
bool IsWhitespace(char32_t code_point);    // White_Space
bool IsNumeric(char32_t code_point);       // general category N*
bool IsAlphanumeric(char32_t code_point);  // Alphabetic or N*

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_UTF8_H_
