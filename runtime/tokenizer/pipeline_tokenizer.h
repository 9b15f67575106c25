// The one Tokenizer implementation: the Hugging Face `tokenizers` pipeline
//   added tokens → normalizer → pre-tokenizer → BPE model → post-processor
// and, for decoding, the decoder chain. Both loaders (GGUF metadata in
// gguf_vocab.cc, tokenizer.json in hf_tokenizer_json.cc) only assemble
// TokenizerParts; byte-level and SentencePiece-style vocabularies differ in
// the parts, not in code.
#ifndef WEFT_RUNTIME_TOKENIZER_PIPELINE_TOKENIZER_H_
#define WEFT_RUNTIME_TOKENIZER_PIPELINE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/tokenizer/added_vocabulary.h"
#include "runtime/tokenizer/bpe_model.h"
#include "runtime/tokenizer/decoder.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft::tokenizer_internal {

struct TokenizerParts {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  // Ids resolved (an added token spelled like a vocabulary token has its id).
  std::vector<AddedToken> added_tokens;
  Decoder decoder;
  // Put around the ids when EncodeOptions::add_special_tokens.
  std::vector<int32_t> prefix_ids;
  std::vector<int32_t> suffix_ids;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  std::vector<int32_t> stop_ids;  // eos_id is added when missing
};

// Checks that every id the parts name exists (`source` names the file in
// error messages).
absl::StatusOr<std::unique_ptr<Tokenizer>> MakePipelineTokenizer(
    TokenizerParts parts, absl::string_view source);

// CONTROL-type tokens that end a turn in the families weft serves
// (<|eot_id|>, <|im_end|>, <|endoftext|>, ...), as llama.cpp recognizes
// them by spelling.
bool IsEndOfGenerationSpelling(absl::string_view content);

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_PIPELINE_TOKENIZER_H_
