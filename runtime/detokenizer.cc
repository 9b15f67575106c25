#include "runtime/detokenizer.h"

#include "runtime/tokenizer/utf8.h"

namespace weft {
namespace {

using tokenizer_internal::Utf8Lossy;

// Expected length of a sequence starting with `lead`, 0 if it cannot lead.
int SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

}  // namespace

size_t CompleteUtf8Prefix(const std::string& bytes) {
  // Only the last (up to) three bytes can belong to an unfinished character.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xc0) == 0x80) continue;  // continuation byte: look further back
    const int len = SequenceLength(c);
    if (len > static_cast<int>(back)) return n - back;  // unfinished
    return n;
  }
  return n;
}

std::string IncrementalDetokenizer::Add(int32_t id) {
  if (skip_special_tokens_ && tokenizer_.IsSpecial(id)) return "";
  pending_ += tokenizer_.TokenBytes(id);
  const size_t complete = CompleteUtf8Prefix(pending_);
  std::string out = Utf8Lossy(pending_.substr(0, complete));
  pending_.erase(0, complete);
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out = Utf8Lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace weft
