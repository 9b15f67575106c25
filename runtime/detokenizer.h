// Incremental detokenization for streaming: text is emitted only in whole
// UTF-8 characters, so a client never sees half a character even when one
// character spans several tokens.
//
// The text continues the prompt: a SentencePiece token's "▁" is a space
// even on the first generated token ("The capital of France is" +
// "▁Paris" streams " Paris"), as vLLM (which primes its detokenizer with
// the prompt's last tokens) and llama.cpp's server stream it, so that
// prompt + completion is the whole text (echo). Tokenizer::Decode of the
// output ids alone drops that space, as Hugging Face's decode does.
#ifndef WEFT_RUNTIME_DETOKENIZER_H_
#define WEFT_RUNTIME_DETOKENIZER_H_

#include <string>

#include "runtime/tokenizer/tokenizer.h"

namespace weft {

class IncrementalDetokenizer {
 public:
  // With `skip_special_tokens`, special tokens produce no text; without,
  // their content (e.g. "<|im_end|>"), as Tokenizer::Decode does.
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer,
                                  bool skip_special_tokens = true)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

  // The new complete text after token `id` (possibly empty). Ill-formed
  // bytes come out as U+FFFD per maximal ill-formed subsequence, as in
  // Tokenizer::Decode.
  std::string Add(int32_t id);
  // What is left at the end; an incomplete character becomes U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes not yet emitted
};

// Length of the longest prefix of `bytes` that ends on a character
// boundary, treating bytes that can never start or continue a character as
// complete (they are emitted as U+FFFD).
size_t CompleteUtf8Prefix(const std::string& bytes);

}  // namespace weft

#endif  // WEFT_RUNTIME_DETOKENIZER_H_
